# shellcheck shell=bash
# Shared steps of the bench scripts (bench/*.sh). Sourced, never executed. Each bench brings a
# frank release up on the running test harness the way the integration tests do: the binary
# under test, a registry fixture for every image, an Infisical project of the run's own, a
# namespace holding the store's credentials, the tests' profile overrides, and what the tests'
# KWOK app fixture gives app pods. What a bench then measures stays in its own script.
#
# Sourcing it starts the harness when its environment is missing, sets
#   root    the repository
#   run_id  unique to this run; names its namespaces and its Infisical project
#   work    a scratch directory for the run
# and traps EXIT: the gate loops stop, then the bench's own function `cleanup` runs when it
# defines one (for what it promises to delete), then the scratch directory goes.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Every bench needs the harness: use the one the caller's environment names, or start (or reuse) it.
if [[ -z ${HARNESS_KUBECTL:-} || -z ${INFISICAL_API_URL:-} ]]; then
  eval "$("$root/tests/harness/up")"
fi

run_id=$(date +%s)-$$
work=$(mktemp -d)
# Exec into app pods runs as uid 1000 in data directories below it.
chmod 755 "$work"
gates=()
# on_exit: the EXIT trap. The gates go first, so none acts on a namespace the cleanup deletes.
on_exit() {
  local pid
  for pid in "${gates[@]}"; do kill "$pid" 2>/dev/null || true; done
  if declare -F cleanup >/dev/null; then cleanup; fi
  rm -rf "$work"
}
trap on_exit EXIT

# kubectl against the harness's cluster, whatever kubectl or kubeconfig the shell has.
kubectl() { "$HARNESS_KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
# now, elapsed START END: wall times to the nanosecond, and the seconds between two of them.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# build_binary DEFAULT_PROFILE: set bin to the paperclipctl under test and say which it is.
# PAPERCLIPCTL names one outright; otherwise BENCH_PROFILE (debug or release, anything else
# meaning the default) picks the cargo build. Each bench passes its own default.
build_binary() {
  local profile=${BENCH_PROFILE:-$1}
  [[ $profile == debug || $profile == release ]] || profile=$1
  if [[ -n ${PAPERCLIPCTL:-} ]]; then
    bin=$PAPERCLIPCTL
    echo "binary: $bin (from PAPERCLIPCTL)"
  elif [[ $profile == release ]]; then
    (cd "$root" && cargo build --quiet --release --bin paperclipctl)
    bin=${CARGO_TARGET_DIR:-$root/target}/release/paperclipctl
    echo "binary: $bin (release build)"
  else
    (cd "$root" && cargo build --quiet --bin paperclipctl)
    bin=${CARGO_TARGET_DIR:-$root/target}/debug/paperclipctl
    echo "binary: $bin (debug build)"
  fi
}

# registry_fixture: set image to the multi-platform fixture that stands in for every image of the
# profile, and stop early with a hint when the integration tests have not pushed it yet.
registry_fixture() {
  image=$HARNESS_REGISTRY/fixtures/platforms:multi
  if ! curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$HARNESS_REGISTRY/v2/fixtures/platforms/manifests/multi"; then
    echo "the registry fixture $image is missing: run the integration tests once to push it" >&2
    exit 1
  fi
}

# infisical_project: create a project of this run's own through the Infisical double's public
# API, so no run reads another's secrets, and set project to its slug.
infisical_project() {
  local token
  token=$(curl -fsS -X POST "$INFISICAL_API_URL/api/v1/auth/universal-auth/login" \
    -H 'Content-Type: application/json' \
    -d "{\"clientId\":\"$INFISICAL_UNIVERSAL_AUTH_CLIENT_ID\",\"clientSecret\":\"$INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET\"}" |
    jq -er .accessToken)
  project=bench-$run_id
  curl -fsS -X POST "$INFISICAL_API_URL/api/v2/workspace" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"projectName\":\"$project\",\"slug\":\"$project\"}" >/dev/null
}

# A fresh address in 198.18.0.0/15 (never routed): LoadBalancer IPs must be unique in the cluster.
unique_ip() { echo "198.$((18 + RANDOM % 2)).$((RANDOM % 256)).$((1 + RANDOM % 254))"; }

# namespace NAME: the namespace with the store's credentials Secret, as an operator creates it,
# labelled so bench leftovers are easy to find.
namespace() {
  kubectl create namespace "$1" >/dev/null
  kubectl label namespace "$1" paperclipctl-bench=true >/dev/null
  kubectl create secret generic infisical-universal-auth -n "$1" \
    --from-literal=clientId="$INFISICAL_UNIVERSAL_AUTH_CLIENT_ID" \
    --from-literal=clientSecret="$INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET" >/dev/null
}

# sets: the profile overrides the integration tests use (this run's project, the fixture image,
# fresh LoadBalancer addresses), as --set arguments one a line, for mapfile.
sets() {
  local app_ip shell_ip
  app_ip=$(unique_ip)
  shell_ip=$(unique_ip)
  local values=(
    secrets.store.kind=SecretStore secrets.store.name=paperclip-infisical
    "secrets.store.hostApi=$INFISICAL_API_URL" "secrets.store.projectSlug=$project"
    secrets.store.environmentSlug=prod secrets.store.secretsPath=/paperclip
    secrets.store.credentials.namespace=null
    "app.image=$image" "database.image=$image" "database.metrics.image=$image" "shell.image=$image"
    "app.service.loadBalancerIp=$app_ip" "shell.service.loadBalancerIp=$shell_ip"
  )
  local v
  for v in "${values[@]}"; do printf -- '--set\n%s\n' "$v"; done
}

# start_gate NAMESPACE HOME: what the integration tests' KWOK app fixture
# (tests/integration/harness/apps.rs) does for app pods, in the background (the EXIT trap stops
# it). KWOK runs exec on this machine and holds app pods back from Ready until they carry the
# exec-ready annotation; each new app pod gets an Exec named after it (HOME as its data
# directory, holding an onboarded instance, so onboarding has nothing to do; as uid 1000) and a
# PortForward (3100 to a file server whose api/health is a healthy instance's answer, the shell's
# ports to the harness's sshd), and the annotation once KWOK serves that Exec. HOME is made
# here, before the loop starts, so the bench may write to it.
start_gate() {
  local instance=$2/instances/default health=$work/health-$1 port
  mkdir -p "$instance/secrets" "$health/api"
  echo '{}' >"$instance/config.json"
  printf 'PAPERCLIP_AGENT_JWT_SECRET=bench\nPAPERCLIP_TOOL_ACTION_SIGNING_SECRET=bench\n' >"$instance/.env"
  head -c 32 /dev/urandom | base64 >"$instance/secrets/master.key"
  chmod 755 "$(dirname "$2")"
  chown -R 1000:1000 "$2"
  printf '%s' '{"status":"ok","deploymentMode":"authenticated","deploymentExposure":"private","commit":null,"bootstrapStatus":"bootstrap_pending","bootstrapInviteActive":true}' \
    >"$health/api/health"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$health" "$port" >/dev/null 2>&1 &
  gates+=($!)
  gate "$1" "$2" "$port" &
  gates+=($!)
}

# gate NAMESPACE HOME HEALTH_PORT: the loop behind start_gate.
gate() {
  local ns=$1 home=$2 health_port=$3
  local selector=app.kubernetes.io/component=app,app.kubernetes.io/managed-by=paperclipctl
  local pod ready
  while true; do
    while read -r pod ready; do
      [[ -n $pod && $ready != true ]] || continue
      kubectl apply --server-side --field-manager=paperclipctl-bench -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Exec
metadata: {name: $pod, namespace: $ns}
spec:
  execs:
  - local:
      workDir: $home
      envs:
      - {name: PAPERCLIP_HOME, value: "$home"}
      - {name: PATH, value: "/usr/local/bin:/usr/bin:/bin"}
      securityContext: {runAsUser: 1000, runAsGroup: 1000}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: PortForward
metadata: {name: $pod, namespace: $ns}
spec:
  forwards:
  - ports: [3100]
    target: {address: 127.0.0.1, port: $health_port}
  - ports: [2222, 22]
    target: {address: 127.0.0.1, port: $HARNESS_SSHD_PORT}
EOF
      local deadline=$((SECONDS + 30))
      until [[ $(kubectl exec -n "$ns" "$pod" -c paperclip -- printenv PAPERCLIP_HOME 2>/dev/null) == "$home" ]]; do
        ((SECONDS < deadline)) || break
        sleep 0.1
      done
      kubectl annotate -n "$ns" pod "$pod" harness.paperclipctl.io/exec-ready=true >/dev/null
    done < <(kubectl get pods -n "$ns" -l "$selector" \
      -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.annotations.harness\.paperclipctl\.io/exec-ready}{"\n"}{end}' 2>/dev/null)
    sleep 0.2
  done
}

# install_release NAMESPACE ARGS...: `paperclipctl install` of the frank profile to Ready, its
# output kept in $work/NAMESPACE.out and .err; a failure prints the errors and ends the bench.
install_release() {
  local ns=$1
  shift
  PAPERCLIP_LITELLM_KEY=bench-llm-key CI=true NO_COLOR=1 \
    "$bin" install --profile frank --namespace "$ns" --kubeconfig "$KUBECONFIG" --timeout 180s \
    "$@" >"$work/$ns.out" 2>"$work/$ns.err" || {
    echo "paperclipctl install in $ns failed:" >&2
    cat "$work/$ns.err" >&2
    exit 1
  }
}
