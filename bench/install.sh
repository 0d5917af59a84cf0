#!/usr/bin/env bash
# Benchmark on the test harness: how long `paperclipctl install` of the frank profile takes to a
# Ready release, against applying the same objects with `kubectl apply --server-side` and waiting
# with `kubectl wait`, and how long an install of an unchanged release takes. Prints figures;
# asserts nothing (times depend on the machine). Run by hand:
#
#   bench/install.sh                  # debug build (cargo build), the default
#   BENCH_PROFILE=release bench/install.sh
#   PAPERCLIPCTL=/path/to/paperclipctl bench/install.sh
#
# It uses the running harness (`eval "$(tests/harness/up)"` first, or it starts one) and its
# registry fixture `fixtures/platforms:multi`, which the integration tests push. Every run works in
# fresh namespaces and a fresh Infisical project; like the tests, it never deletes them
# (`tests/harness/down` removes the whole cluster).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${HARNESS_KUBECTL:-} || -z ${INFISICAL_API_URL:-} ]]; then
  eval "$("$root/tests/harness/up")"
fi

# --- the binary --------------------------------------------------------------------------------
if [[ -n ${PAPERCLIPCTL:-} ]]; then
  bin=$PAPERCLIPCTL
  echo "binary: $bin (from PAPERCLIPCTL)"
elif [[ ${BENCH_PROFILE:-debug} == release ]]; then
  (cd "$root" && cargo build --quiet --release --bin paperclipctl)
  bin=${CARGO_TARGET_DIR:-$root/target}/release/paperclipctl
  echo "binary: $bin (release build)"
else
  (cd "$root" && cargo build --quiet --bin paperclipctl)
  bin=${CARGO_TARGET_DIR:-$root/target}/debug/paperclipctl
  echo "binary: $bin (debug build)"
fi

kubectl() { "$HARNESS_KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

image=$HARNESS_REGISTRY/fixtures/platforms:multi
if ! curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
  "http://$HARNESS_REGISTRY/v2/fixtures/platforms/manifests/multi"; then
  echo "the registry fixture $image is missing: run the integration tests once to push it" >&2
  exit 1
fi

run_id=$(date +%s)-$$
work=$(mktemp -d)
# The app stand-in runs as uid 1000 in data directories below it.
chmod 755 "$work"
gates=()
cleanup() {
  local pid
  for pid in "${gates[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- Infisical: a project of this run's own, through the double's public API --------------------
token=$(curl -fsS -X POST "$INFISICAL_API_URL/api/v1/auth/universal-auth/login" \
  -H 'Content-Type: application/json' \
  -d "{\"clientId\":\"$INFISICAL_UNIVERSAL_AUTH_CLIENT_ID\",\"clientSecret\":\"$INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET\"}" |
  jq -er .accessToken)
project=bench-$run_id
curl -fsS -X POST "$INFISICAL_API_URL/api/v2/workspace" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d "{\"projectName\":\"$project\",\"slug\":\"$project\"}" >/dev/null

# A fresh address in 198.18.0.0/15 (never routed): LoadBalancer IPs must be unique in the cluster.
unique_ip() { echo "198.$((18 + RANDOM % 2)).$((RANDOM % 256)).$((1 + RANDOM % 254))"; }

# namespace NAME: the namespace with the store's credentials Secret, as an operator creates it.
namespace() {
  kubectl create namespace "$1" >/dev/null
  kubectl label namespace "$1" paperclipctl-bench=true >/dev/null
  kubectl create secret generic infisical-universal-auth -n "$1" \
    --from-literal=clientId="$INFISICAL_UNIVERSAL_AUTH_CLIENT_ID" \
    --from-literal=clientSecret="$INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET" >/dev/null
}

# sets: the profile overrides the integration tests use, as --set arguments.
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

# gate NAMESPACE: what the harness's test fixture does for app pods, in the background. KWOK
# runs exec on this machine and holds app pods back from Ready until they carry the exec-ready
# annotation; each new app pod gets an Exec named after it (the upstream-CLI stand-in with a
# data directory of its own, as uid 1000), and the annotation once KWOK serves that Exec.
gate() {
  local ns=$1 home=$work/$1/paperclip
  mkdir -p "$home"
  chmod 755 "$work/$1"
  chown 1000:1000 "$home"
  local selector=app.kubernetes.io/component=app,app.kubernetes.io/managed-by=paperclipctl
  local db_url="postgres://$HARNESS_PG_USER:$HARNESS_PG_PASSWORD@$HARNESS_PG_HOST:$HARNESS_PG_PORT/$HARNESS_PG_DATABASE"
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
      - {name: PATH, value: "$HARNESS_APP_STUB_DIR:/usr/local/bin:/usr/bin:/bin"}
      - {name: DATABASE_URL, value: "$db_url"}
      - {name: PAPERCLIP_PUBLIC_URL, value: "http://192.168.55.212:3100"}
      securityContext: {runAsUser: 1000, runAsGroup: 1000}
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

install() { # NAMESPACE ARGS...
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

# --- (a) paperclipctl install, and (c) the same install again ----------------------------------
ns_a=bench-install-$run_id
namespace "$ns_a"
gate "$ns_a" &
gates+=($!)
# The same overrides both times (the addresses too), so the second install has nothing to do.
mapfile -t install_args < <(sets)
start=$(now)
install "$ns_a" "${install_args[@]}"
install_time=$(elapsed "$start" "$(now)")
start=$(now)
install "$ns_a" "${install_args[@]}"
noop_time=$(elapsed "$start" "$(now)")
grep -q 'is up to date: nothing changed' "$work/$ns_a.out" ||
  echo "note: the second install was not a no-op:" "$(head -n 1 "$work/$ns_a.out")" >&2

# --- (b) kubectl apply --server-side of the plan, then kubectl wait -----------------------------
# The same project is reused: (a) put every key the ExternalSecrets read into it.
ns_b=bench-kubectl-$run_id
namespace "$ns_b"
gate "$ns_b" &
gates+=($!)
mapfile -t plan_args < <(sets)
start=$(now)
"$bin" plan --profile frank --namespace "$ns_b" --kubeconfig "$KUBECONFIG" "${plan_args[@]}" -o yaml |
  kubectl apply --server-side --field-manager=paperclipctl -f - >/dev/null
kubectl wait -n "$ns_b" --timeout=180s --for=jsonpath='{.status.readyReplicas}'=1 \
  statefulset/paperclip-db-postgresql >/dev/null
kubectl wait -n "$ns_b" --timeout=180s --for=condition=Available deployment/paperclip >/dev/null
kubectl_time=$(elapsed "$start" "$(now)")

echo "namespaces: $ns_a (paperclipctl), $ns_b (kubectl)"
printf '(a) paperclipctl install to Ready:            %8.2f s\n' "$install_time"
printf '(b) kubectl apply --server-side + wait:       %8.2f s\n' "$kubectl_time"
awk -v a="$install_time" -v b="$kubectl_time" \
  'BEGIN { printf "    ratio (a)/(b):                            %8.2f\n", a / b }'
printf '(c) paperclipctl install, unchanged release:  %8.2f s\n' "$noop_time"
