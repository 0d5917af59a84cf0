# A real Kubernetes control plane on loopback, with KWOK standing in for kubelets:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler  built from source (tools/)
#   kwok                 fakes five nodes and the pods on them, serves exec/port-forward/logs
#   External Secrets     CRDs from the upstream bundle and the real controller (eso/), pointed at
#                        the Infisical double
# Runs after 10-services and 20-infisical, whose variables it wires in. Sourced by `up`/`down`,
# which call cluster_up and cluster_down.

CLUSTER_K8S_VERSION=v1.33.13
CLUSTER_KWOK_VERSION=v0.8.0
CLUSTER_ESO_VERSION=v0.20.4
CLUSTER_NAME=paperclipctl
# kwokctl keeps its clusters here instead of ~/.kwok, so `down` removes them with the state.
export KWOK_WORKDIR=$HARNESS_STATE/kwok

cluster_up() {
  # tmux: the guided-install tests answer prompts in a real terminal; python3 picks free ports.
  apt_ensure jq tmux python3-minimal
  cluster_build
  cluster_control_plane_up
  cluster_stages_up
  cluster_storage_up
  cluster_nodes_up
  cluster_debugging_up
  cluster_eso_up
}

cluster_down() {
  stop_daemon external-secrets
  local dir=$KWOK_WORKDIR/clusters/$CLUSTER_NAME bin
  [[ -d $dir ]] || return 0
  # The kwokctl that created the cluster, which is not necessarily the current build's.
  bin=$(cat "$HARNESS_STATE/cluster-bin" 2>/dev/null || true)
  if [[ -x $bin/kwokctl ]] && "$bin/kwokctl" --name "$CLUSTER_NAME" delete cluster \
    --kubeconfig "$HARNESS_STATE/kubeconfig" >>"$HARNESS_STATE/logs/kwokctl.log" 2>&1; then
    return 0
  fi
  harness_log "kwokctl could not delete the cluster; stopping its processes by their pid files"
  local pids=() pidfile
  for pidfile in "$dir"/pids/*.pid; do
    [[ -f $pidfile ]] && pids+=("$(cat "$pidfile")")
  done
  ((${#pids[@]} == 0)) && return 0
  kill "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  until cluster_all_exited "${pids[@]}" || ((SECONDS >= deadline)); do sleep 0.2; done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  rm -rf "$dir"
}

cluster_all_exited() {
  local pid
  for pid; do
    if kill -0 "$pid" 2>/dev/null; then return 1; fi
  done
}

# --- binaries ----------------------------------------------------------------------------------
# Everything is compiled from the Go module proxy. The cache directory is keyed by the versions,
# both modules' go.mod/go.sum, the Go toolchain and the build commands, so a second `up` (or another checkout with the same
# pins) reuses the binaries, and changing any pin builds a fresh set next to the old one.

cluster_bin_key() {
  {
    echo "$CLUSTER_K8S_VERSION $CLUSTER_KWOK_VERSION $CLUSTER_ESO_VERSION $(go env GOVERSION)"
    declare -f cluster_compile # the flags the binaries are built with
    cat "$HARNESS_DIR/tools/go.mod" "$HARNESS_DIR/tools/go.sum" \
      "$HARNESS_DIR/eso/go.mod" "$HARNESS_DIR/eso/go.sum"
  } | sha256sum | cut -c1-16
}

cluster_build() {
  CLUSTER_BIN=$HARNESS_CACHE/bin-$(cluster_bin_key)
  if [[ -f $CLUSTER_BIN/.complete ]]; then return 0; fi
  command -v go >/dev/null || harness_die "Go is needed to build the control plane"
  # The cache is shared by every harness instance of this user; one builds, the others wait.
  local lock
  exec {lock}>"$CLUSTER_BIN.lock"
  flock "$lock"
  [[ -f $CLUSTER_BIN/.complete ]] || cluster_compile
  exec {lock}>&-
}

cluster_compile() {
  local tmp=$CLUSTER_BIN.partial start=$SECONDS log=$HARNESS_STATE/logs/build.log
  rm -rf "$tmp"
  mkdir -p "$tmp"
  harness_log "building the control plane into $CLUSTER_BIN (the first time takes a while: see $log)"

  # The version variables are what `--version` prints and what kwokctl reads to pick flags.
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$CLUSTER_K8S_VERSION -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$CLUSTER_K8S_VERSION") -X $pkg.gitTreeState=clean"
  done
  # -p 2: the machines this runs on have two cores; more jobs only add memory pressure.
  (
    cd "$HARNESS_DIR/tools"
    GOFLAGS="-trimpath -buildvcs=false" go build -p 2 -ldflags "$ldflags" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd
  ) >>"$log" 2>&1 || harness_die "building Kubernetes failed: see $log"
  GOBIN=$tmp GOFLAGS="-trimpath -buildvcs=false" go install -p 2 -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$CLUSTER_KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwokctl@$CLUSTER_KWOK_VERSION" >>"$log" 2>&1 ||
    harness_die "building KWOK failed: see $log"
  (
    cd "$HARNESS_DIR/eso"
    GOFLAGS="-trimpath -buildvcs=false" go build -p 2 -ldflags "-s -w" -o "$tmp/external-secrets" \
      github.com/external-secrets/external-secrets
  ) >>"$log" 2>&1 || harness_die "building External Secrets failed: see $log"

  touch "$tmp/.complete"
  rm -rf "$CLUSTER_BIN"
  mv "$tmp" "$CLUSTER_BIN"
  harness_log "built the control plane in $((SECONDS - start))s"
}

# cluster_module_dir MODULE@VERSION: the module's directory in the Go module cache (downloaded
# on first use), for the manifests that ship inside it. Run from the state directory so no go.mod
# is involved.
cluster_module_dir() {
  (cd "$HARNESS_STATE" && GO111MODULE=on GOFLAGS= go mod download -json "$1") | jq -er .Dir
}

cluster_kubectl() { "$CLUSTER_BIN/kubectl" --kubeconfig "$HARNESS_STATE/kubeconfig" "$@"; }

# --- control plane -----------------------------------------------------------------------------

cluster_healthy() { cluster_kubectl get --raw /readyz >/dev/null 2>&1; }

cluster_control_plane_up() {
  if [[ -f $HARNESS_STATE/kubeconfig ]] && cluster_healthy; then
    cluster_export_env
    return 0
  fi
  # A cluster left half-running (a killed `up`, a reboot) is recreated rather than repaired.
  if [[ -d $KWOK_WORKDIR/clusters/$CLUSTER_NAME ]]; then
    harness_log "removing a cluster that is not healthy"
    cluster_down
  fi

  # Every binary is given explicitly so kwokctl never downloads one. The CRDs let tests (and
  # this script) define stages and exec/port-forward/logs targets as API objects.
  cat >"$HARNESS_STATE/kwokctl.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $CLUSTER_BIN/kube-apiserver
  kubeControllerManagerBinary: $CLUSTER_BIN/kube-controller-manager
  kubeSchedulerBinary: $CLUSTER_BIN/kube-scheduler
  kubectlBinary: $CLUSTER_BIN/kubectl
  etcdBinary: $CLUSTER_BIN/etcd
  kwokControllerBinary: $CLUSTER_BIN/kwok
  enableCRDs:
  - Stage
  - Exec
  - ClusterExec
  - PortForward
  - ClusterPortForward
  - Logs
  - ClusterLogs
  - Attach
  - ClusterAttach
# The real node (40-node.sh) is reached at its InternalIP (its name resolves nowhere); KWOK's
# nodes have only a Hostname (localhost), where kwok answers. KWOK fakes only the nodes annotated
# as fake, so the real node's status and pods are its kubelet's alone.
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - key: kubelet-preferred-address-types
    value: InternalIP,Hostname
  # Tests leave their namespaces (and Services) behind until the next run's cleanup: one run of
  # the suite takes about 200 addresses, near the default /24's 254.
  - key: service-cluster-ip-range
    value: 10.0.0.0/16
- name: kwok-controller
  extraArgs:
  - key: manage-all-nodes
    value: "false"
    override: true
  - key: manage-nodes-with-annotation-selector
    value: kwok.x-k8s.io/node=fake
EOF
  echo "$CLUSTER_BIN" >"$HARNESS_STATE/cluster-bin"
  harness_log "creating the cluster (kube-apiserver $CLUSTER_K8S_VERSION, kwok $CLUSTER_KWOK_VERSION)"
  "$CLUSTER_BIN/kwokctl" --name "$CLUSTER_NAME" create cluster \
    --config "$HARNESS_STATE/kwokctl.yaml" --kubeconfig "$HARNESS_STATE/kubeconfig" \
    --wait 2m >>"$HARNESS_STATE/logs/kwokctl.log" 2>&1 ||
    harness_die "kwokctl create cluster failed: see $HARNESS_STATE/logs/kwokctl.log"
  wait_until 60 "the kube-apiserver" cluster_healthy
  cluster_export_env
}

cluster_export_env() {
  harness_env KUBECONFIG "$HARNESS_STATE/kubeconfig"
  harness_env HARNESS_KUBECTL "$CLUSTER_BIN/kubectl"
  harness_env HARNESS_KWOKCTL "$CLUSTER_BIN/kwokctl"
  harness_env HARNESS_CLUSTER_NAME "$CLUSTER_NAME"
}

# --- stages: what KWOK does to nodes, pods and volumes -----------------------------------------
# With the Stage CRD enabled kwok has no built-in behaviour, so the stages KWOK ships are applied
# from its module: nodes become Ready and keep their lease, pods become Ready/complete/deleted
# without delay. KWOK's volume stages act as a dynamic provisioner (create a PV for a PVC, bind
# both), but only for its own `kwok-volume` class; the harness points them at its storage classes
# instead, so a PVC on `longhorn` or `standard` binds through the normal PV/PVC API objects.

cluster_stages_up() {
  local kwok dir=$HARNESS_STATE/stages
  kwok=$(cluster_module_dir "sigs.k8s.io/kwok@$CLUSTER_KWOK_VERSION")
  mkdir -p "$dir"
  cp "$kwok"/kustomize/stage/node/fast/node-initialize.yaml \
    "$kwok"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$kwok"/kustomize/stage/pod/fast/pod-{ready,complete,delete}.yaml \
    "$kwok"/kustomize/stage/volume/fast/{pv-bind,pv-delete,pvc-provision,pvc-delete}.yaml "$dir/"
  chmod u+w "$dir"/*.yaml
  sed -i "s/self.spec.storageClassName == 'kwok-volume'/self.spec.storageClassName in ['longhorn', 'standard']/" \
    "$dir"/p*-*.yaml
  grep -q "in \['longhorn', 'standard'\]" "$dir/pvc-provision.yaml" ||
    harness_die "KWOK's volume stages changed shape: their storage class selector was not rewritten"
  # A paperclipctl release's app pod stays unready until its test has set up exec and port 3100
  # for it (KWOK picks their targets by pod name, known only once the pod exists): the test
  # fixture (tests/integration/harness/apps.rs) annotates the pod when KWOK serves both, so an
  # install never reads the app before it can; a pod no fixture serves never becomes ready.
  sed -i "/^    matchExpressions:$/a\\
    - key: '(.metadata.labels[\"app.kubernetes.io/managed-by\"] == \"paperclipctl\") and (.metadata.labels[\"app.kubernetes.io/component\"] == \"app\") and (.metadata.annotations[\"harness.paperclipctl.io/exec-ready\"] == null)'\\
      operator: 'NotIn'\\
      values: ['true']" "$dir/pod-ready.yaml"
  grep -q "harness.paperclipctl.io/exec-ready" "$dir/pod-ready.yaml" ||
    harness_die "KWOK's pod-ready stage changed shape: the exec gate was not added"
  # Pods that play a kubelet failure (stages/pod-failures.yaml) must never become ready.
  sed -i "/^    matchExpressions:$/a\\
    - key: '.spec.containers[0].image | startswith(\"harness.invalid/fail:\") or contains(\"/fixtures/fail-crashloop\")'\\
      operator: 'NotIn'\\
      values: ['true']" "$dir/pod-ready.yaml"
  cp "$HARNESS_DIR/stages/pod-failures.yaml" "$dir/"
  cluster_kubectl apply --server-side --field-manager=paperclipctl-harness -f "$dir" >/dev/null
}

# longhorn is what the reference installation uses; standard is the default for claims that name
# no class. Both bind immediately, as Longhorn does.
cluster_storage_up() {
  cluster_kubectl apply --server-side --field-manager=paperclipctl-harness -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: longhorn
provisioner: driver.longhorn.io
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kwok.x-k8s.io/volume
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
}

# --- nodes -------------------------------------------------------------------------------------
# The shape of the reference cluster: three small amd64 control-plane machines that also run
# workloads, one large GPU machine that only takes pods tolerating its taint, one small arm64.

cluster_node() { # NAME ARCH CPU MEMORY EXTRA_LABELS(yaml lines) TAINTS(yaml)
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $1
    kubernetes.io/arch: $2
    kubernetes.io/os: linux
    beta.kubernetes.io/arch: $2
    beta.kubernetes.io/os: linux
    type: kwok
$5
spec:
  taints: $6
status:
  allocatable: {cpu: "$3", memory: $4, pods: "110", ephemeral-storage: 200Gi}
  capacity: {cpu: "$3", memory: $4, pods: "110", ephemeral-storage: 200Gi}
  nodeInfo:
    architecture: $2
    operatingSystem: linux
    kubeletVersion: $CLUSTER_K8S_VERSION
---
EOF
}

cluster_nodes_up() {
  local control_plane='    node-role.kubernetes.io/control-plane: ""' n
  {
    for n in 1 2 3; do cluster_node "mini-$n" amd64 8 64Gi "$control_plane" '[]'; done
    cluster_node gpu-1 amd64 32 128Gi '    nvidia.com/gpu.present: "true"' \
      '[{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]'
    cluster_node arm-1 arm64 4 16Gi '' '[]'
  } | cluster_kubectl apply --server-side --field-manager=paperclipctl-harness -f - >/dev/null
  wait_until 60 "the five nodes to be Ready" cluster_kubectl wait --for=condition=Ready --timeout=1s \
    node/mini-1 node/mini-2 node/mini-3 node/gpu-1 node/arm-1
}

# --- exec, port-forward, logs ------------------------------------------------------------------
# kwok runs `kubectl exec` commands on this host and forwards pod ports to local addresses. It
# picks the target by pod name and namespace only (not by labels), and a namespaced Exec or
# PortForward whose name is the pod's name always wins over every ClusterExec/ClusterPortForward.
# So the defaults below match every pod and give each one the union of what the product's pods
# offer, which is deterministic for pods that do not exist yet:
#   database pods   psql/pg_dump reach the local PostgreSQL through PG* variables
#   shell pods      port 2222 (sshd) is the local sshd
# An app pod's exec and port 3100 are its test's own (tests/integration/harness/apps.rs): a test
# that needs something for one pod creates an Exec/PortForward named after that pod in the
# pod's namespace.

cluster_debugging_up() {
  local logs=$HARNESS_STATE/pod.log previous=$HARNESS_STATE/pod-previous.log
  # kwok serves the files as container logs, so they are in the CRI log format kubelets write.
  [[ -f $logs ]] || printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" \
    "kwok: this pod runs no process; this line stands in for its log" >"$logs"
  # `kubectl logs --previous`: what a container that exited wrote last (every pod gets it; only
  # a container with restarts is ever asked for it).
  [[ -f $previous ]] || printf '%s stderr F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" \
    "Error: kwok stand-in: the previous container exited with status 1" >"$previous"
  cluster_kubectl apply --server-side --field-manager=paperclipctl-harness -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: harness-local
spec:
  execs:
  - local:
      workDir: $HARNESS_STATE
      envs:
      - {name: PGHOST, value: "${HARNESS_PG_HOST:-127.0.0.1}"}
      - {name: PGPORT, value: "${HARNESS_PG_PORT:-}"}
      - {name: PGUSER, value: "${HARNESS_PG_USER:-}"}
      - {name: PGPASSWORD, value: "${HARNESS_PG_PASSWORD:-}"}
      - {name: PGDATABASE, value: "${HARNESS_PG_DATABASE:-}"}
      - {name: PATH, value: "$PATH"}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: harness-local
spec:
  forwards:
  - ports: [2222, 22]
    target: {address: 127.0.0.1, port: ${HARNESS_SSHD_PORT:-22}}
  - ports: [5432]
    target: {address: 127.0.0.1, port: ${HARNESS_PG_PORT:-5432}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: harness-local
spec:
  logs:
  - logsFile: $logs
    previousLogsFile: $previous
EOF
}

# --- External Secrets --------------------------------------------------------------------------

cluster_eso_up() {
  local eso
  eso=$(cluster_module_dir "github.com/external-secrets/external-secrets@$CLUSTER_ESO_VERSION")
  cluster_kubectl apply --server-side --field-manager=paperclipctl-harness \
    -f "$eso/deploy/crds/bundle.yaml" >/dev/null
  wait_until 60 "the External Secrets CRDs" cluster_kubectl wait --for=condition=Established \
    --timeout=1s crd/externalsecrets.external-secrets.io crd/secretstores.external-secrets.io \
    crd/clustersecretstores.external-secrets.io

  if ! daemon_running external-secrets; then
    local live
    live=$(cluster_free_port)
    echo "$live" >"$HARNESS_STATE/external-secrets.live-port"
    # Metrics are off ("0"): nothing scrapes them and a fixed port could collide.
    KUBECONFIG=$HARNESS_STATE/kubeconfig start_daemon external-secrets \
      "$CLUSTER_BIN/external-secrets" --metrics-addr=0 --live-addr="127.0.0.1:$live"
  fi
  wait_until 60 "the External Secrets controller" \
    curl -fsS "http://127.0.0.1:$(cat "$HARNESS_STATE/external-secrets.live-port")/healthz"
}

cluster_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
