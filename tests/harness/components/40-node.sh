# One real cluster member beside the KWOK nodes: this machine runs a kubelet and kube-proxy of the
# control plane's version (built from the Go module proxy), Debian's containerd and runc, a bridge
# CNI network, CoreDNS for `*.svc` names, and a provisioner of `local` volumes (which, unlike
# hostPath, follow a pod's fsGroup).
#
# The node is tainted and labelled harness.paperclipctl.io/real-node=true, so only pods that both
# tolerate and select it run there; everything else keeps landing on KWOK nodes.
#
# Network layout (nothing else on the machine uses these ranges):
#   10.234.0.1/32 on lo   the node's InternalIP (a kubelet refuses loopback addresses); the API
#                         server reaches the kubelet there, and CoreDNS listens there
#   10.235.0.0/24         pods, on the bridge harness0
#   10.0.0.0/16           Services (30-cluster.sh widens the API server's default /24); 10.0.0.10
#                         is cluster DNS
#
# Machine-wide, so one harness instance per machine owns the node ($NODE_OWNER names it).
# Sourced by `up`/`down`, which call node_up and node_down; runs after 35-images (the pause image).

NODE_NAME=harness-real-1
NODE_IP=10.234.0.1
NODE_POD_CIDR=10.235.0.0/24
NODE_BRIDGE=harness0
NODE_DNS_IP=10.0.0.10
NODE_TAINT_KEY=harness.paperclipctl.io/real-node
NODE_STORAGE_CLASS=harness-local
NODE_PROVISIONER=harness.paperclipctl.io/local-volume
NODE_COREDNS_VERSION=v1.12.0
NODE_DIR=$HARNESS_STATE/node
NODE_OWNER=/run/paperclipctl-harness-node.owner

node_up() {
  # containerd pulls, runs and networks the pods; nftables is kube-proxy's back end; iptables is
  # what the kubelet writes its own chains with.
  apt_ensure containerd runc containernetworking-plugins nftables iptables conntrack jq
  node_build
  node_claim
  mkdir -p "$NODE_DIR"
  node_follow_cluster
  node_network_up
  node_containerd_up
  node_kubelet_up
  node_proxy_up
  node_dns_up
  node_storage_up
  harness_env HARNESS_REAL_NODE "$NODE_NAME"
  harness_env HARNESS_REAL_NODE_TAINT "$NODE_TAINT_KEY"
  harness_env HARNESS_REAL_STORAGE_CLASS "$NODE_STORAGE_CLASS"
  harness_env HARNESS_CONTAINERD_SOCKET "$NODE_DIR/containerd.sock"
}

# Pods first (so the kubelet tears their networks and volumes down itself), then the daemons,
# then whatever a killed kubelet or containerd left: containers, mounts, chains, the bridge, the
# address. Every step also works when `up` never ran or was killed half-way.
node_down() {
  [[ -d $NODE_DIR ]] || { node_release; return 0; }
  node_drain
  stop_daemon volume-provisioner
  stop_daemon coredns
  stop_daemon kube-proxy
  stop_daemon kubelet
  node_containers_down
  stop_daemon containerd
  node_shims_down
  node_unmount
  node_cgroups_down
  node_logs_down
  node_network_down
  node_release
}

# --- binaries ----------------------------------------------------------------------------------
# kubelet and kube-proxy come from the same tools/ module as the control plane, CoreDNS from its
# own module (coredns/). Keyed like the control plane: a second `up` builds nothing.

node_bin_key() {
  {
    echo "$CLUSTER_K8S_VERSION $NODE_COREDNS_VERSION $(go env GOVERSION)"
    declare -f node_compile
    cat "$HARNESS_DIR/tools/go.mod" "$HARNESS_DIR/tools/go.sum" \
      "$HARNESS_DIR/coredns/go.mod" "$HARNESS_DIR/coredns/go.sum" "$HARNESS_DIR/coredns/main.go"
  } | sha256sum | cut -c1-16
}

node_build() {
  NODE_BIN=$HARNESS_CACHE/node-bin-$(node_bin_key)
  echo "$NODE_BIN" >"$HARNESS_STATE/node-bin"
  if [[ -f $NODE_BIN/.complete ]]; then return 0; fi
  command -v go >/dev/null || harness_die "Go is needed to build the kubelet"
  local lock
  exec {lock}>"$NODE_BIN.lock"
  flock "$lock"
  [[ -f $NODE_BIN/.complete ]] || node_compile
  exec {lock}>&-
}

node_compile() {
  local tmp=$NODE_BIN.partial start=$SECONDS log=$HARNESS_STATE/logs/build.log
  rm -rf "$tmp"
  mkdir -p "$tmp"
  harness_log "building kubelet, kube-proxy and CoreDNS into $NODE_BIN (see $log)"
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$CLUSTER_K8S_VERSION -X $pkg.gitMajor=1"
    ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$CLUSTER_K8S_VERSION") -X $pkg.gitTreeState=clean"
  done
  (
    cd "$HARNESS_DIR/tools"
    GOFLAGS="-trimpath -buildvcs=false" go build -p 2 -ldflags "$ldflags" -o "$tmp/" \
      k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  ) >>"$log" 2>&1 || harness_die "building the kubelet failed: see $log"
  (
    cd "$HARNESS_DIR/coredns"
    GOFLAGS="-trimpath -buildvcs=false" go build -p 2 -ldflags "-s -w" -o "$tmp/coredns" .
  ) >>"$log" 2>&1 || harness_die "building CoreDNS failed: see $log"
  touch "$tmp/.complete"
  rm -rf "$NODE_BIN"
  mv "$tmp" "$NODE_BIN"
  harness_log "built the node binaries in $((SECONDS - start))s"
}

# node_write FILE: stdin into FILE, leaving FILE untouched when it already says the same
# (kube-proxy exits when its configuration file is written to).
node_write() {
  local tmp=$1.tmp.$$
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

node_kubectl() { "$(cat "$HARNESS_STATE/cluster-bin")/kubectl" --kubeconfig "$HARNESS_STATE/kubeconfig" "$@"; }

# --- ownership ---------------------------------------------------------------------------------
# The kubelet's ports, the address, the bridge and the chains exist once per machine. An owner
# whose kubelet is not running (a killed harness, a reboot) no longer counts.

node_claim() {
  local owner
  owner=$(cat "$NODE_OWNER" 2>/dev/null || true)
  if [[ -n $owner && $owner != "$HARNESS_STATE" ]] &&
    kill -0 "$(cat "$owner/kubelet.pid" 2>/dev/null || echo none)" 2>/dev/null; then
    harness_die "the real node belongs to the harness in $owner: run its tests/harness/down first"
  fi
  echo "$HARNESS_STATE" >"$NODE_OWNER"
}

node_release() {
  if [[ $(cat "$NODE_OWNER" 2>/dev/null) == "$HARNESS_STATE" ]]; then rm -f "$NODE_OWNER"; fi
}

# A cluster recreated since the node started (a killed harness brought up again) has new
# credentials: the daemons that talk to it start again with them.
node_follow_cluster() {
  local sum
  sum=$(sha256sum <"$HARNESS_STATE/kubeconfig")
  if [[ -f $NODE_DIR/kubeconfig.sum && $(cat "$NODE_DIR/kubeconfig.sum") != "$sum" ]]; then
    harness_log "the cluster changed; restarting the real node's daemons"
    stop_daemon volume-provisioner
    stop_daemon coredns
    stop_daemon kube-proxy
    stop_daemon kubelet
  fi
  echo "$sum" >"$NODE_DIR/kubeconfig.sum"
}

# --- network -----------------------------------------------------------------------------------
# Pods reach each other over the bridge and Services through kube-proxy, which masquerades all
# Service traffic, so replies come back through the host's stack without br_netfilter.

node_network_up() {
  # `replace` is idempotent; `ip … | grep -q` is not under pipefail (grep's early exit makes ip
  # die of SIGPIPE, so the pipeline fails even when the address is there).
  ip addr replace "$NODE_IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1
  mkdir -p "$NODE_DIR/cni/conf" "$NODE_DIR/cni/ipam"
  node_write "$NODE_DIR/cni/conf/10-harness.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "harness",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
}

node_network_down() {
  ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && ip link delete "$NODE_BRIDGE"
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  local cmd
  for cmd in iptables ip6tables; do node_chains_down "$cmd"; done
}

# node_chains_down IPTABLES: remove every KUBE-* chain (the kubelet's firewall, canary and hint
# chains) and the rules jumping to them, in every table the kubelet writes.
node_chains_down() {
  local cmd=$1 table line chain
  command -v "$cmd" >/dev/null || return 0
  for table in filter nat mangle; do
    while read -r line; do
      eval "$cmd -t $table -D ${line#-A }" 2>/dev/null || true
    done < <("$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A ' | grep -E ' -j KUBE-' | grep -vE '^-A KUBE-')
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

# --- containerd --------------------------------------------------------------------------------
# A private containerd: its socket, state, runc state and network namespaces live under the
# state directory (podman uses /run/netns too, and pods whose namespace podman's cleanup touches
# stay Terminating). The image store is in the cache, so a warm `up` pulls nothing it had.
# restrict_oom_score_adj: runc cannot raise oom_score_adj without CAP_SYS_RESOURCE, which VMs
# and CI runners often withhold.

node_containerd_up() {
  local root=$HARNESS_CACHE/containerd
  mkdir -p "$root" "$NODE_DIR/containerd"
  node_write "$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$root"
state = "$NODE_DIR/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$NODE_DIR/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$HARNESS_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$NODE_DIR/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/conf"
EOF
  start_daemon containerd containerd --config "$NODE_DIR/containerd.toml"
  wait_until 60 "containerd on $NODE_DIR/containerd.sock" \
    ctr --address "$NODE_DIR/containerd.sock" version
}

node_ctr() { ctr --address "$NODE_DIR/containerd.sock" --namespace k8s.io "$@"; }

# What a killed kubelet left running: the containers' processes go first, then their records.
node_containers_down() {
  [[ -S $NODE_DIR/containerd.sock ]] || return 0
  node_ctr version >/dev/null 2>&1 || return 0
  local id
  for id in $(node_ctr tasks list -q 2>/dev/null); do
    node_ctr tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for id in $(node_ctr tasks list -q 2>/dev/null); do
    node_ctr tasks delete --force "$id" >/dev/null 2>&1 || true
  done
  for id in $(node_ctr containers list -q 2>/dev/null); do
    node_ctr containers delete "$id" >/dev/null 2>&1 || true
  done
}

# containerd's shims outlive it by design; they are found by the socket they were started for.
node_shims_down() {
  local pids
  pids=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $NODE_DIR/containerd.sock" || true)
  [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
  return 0
}

# Everything still mounted below the node's directory (pod volumes, the kubelet's bind mount of
# its root, network namespaces, overlay rootfs), deepest first.
node_unmount() {
  local target
  for target in $(awk -v dir="$NODE_DIR" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done
  for target in $(awk -v dir="$HARNESS_CACHE/containerd" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
  done
}

# The kubelet's pod cgroups (cgroupfs driver), children before parents.
node_cgroups_down() {
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# The kubelet links every container's log into /var/log/containers (a fixed path).
node_logs_down() {
  local link
  for link in /var/log/containers/*.log; do
    if [[ -L $link && $(readlink "$link") == "$NODE_DIR"/* ]]; then rm -f "$link"; fi
  done
  rmdir /var/log/containers 2>/dev/null || true
}

# --- kubelet -----------------------------------------------------------------------------------
# The API server talks to the kubelet at the node's InternalIP without a client certificate: the
# kubelet allows anonymous requests, which is fine on an address nothing outside this machine
# routes to. Hybrid cgroup v1 machines need cgroupfs and failCgroupV1: false.

node_kubelet_up() {
  mkdir -p "$NODE_DIR/kubelet" "$NODE_DIR/pod-logs"
  # Pods get cluster DNS and no search domains of the machine's own.
  echo "nameserver $NODE_IP" >"$NODE_DIR/resolv.conf"
  node_write "$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$NODE_DIR/containerd.sock
clusterDNS: [$NODE_DNS_IP]
clusterDomain: cluster.local
resolvConf: $NODE_DIR/resolv.conf
podLogsDir: $NODE_DIR/pod-logs
volumePluginDir: $NODE_DIR/kubelet-plugins
serializeImagePulls: false
registerWithTaints:
- {key: $NODE_TAINT_KEY, value: "true", effect: NoSchedule}
# A shared build machine's disk and memory are never "free enough" by a server's standards; the
# node must not evict the pods under test.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
EOF
  if ! daemon_running kubelet; then
    start_daemon kubelet "$NODE_BIN/kubelet" --config "$NODE_DIR/kubelet.yaml" \
      --kubeconfig "$HARNESS_STATE/kubeconfig" --root-dir "$NODE_DIR/kubelet" \
      --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
      --node-labels "$NODE_TAINT_KEY=true"
  fi
  wait_until 120 "the kubelet's node $NODE_NAME to be Ready" \
    node_kubectl wait --for=condition=Ready --timeout=1s "node/$NODE_NAME"
}

# Pods on the node are deleted while the kubelet still runs, so it stops their containers and
# releases their addresses and volumes itself.
node_drain() {
  daemon_running kubelet || return 0
  [[ -f $HARNESS_STATE/kubeconfig && -f $HARNESS_STATE/cluster-bin ]] || return 0
  node_kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
    --grace-period=1 --wait=true --timeout=60s >/dev/null 2>&1 || true
}

# --- kube-proxy --------------------------------------------------------------------------------

node_proxy_up() {
  node_write "$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $HARNESS_STATE/kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_POD_CIDR
masqueradeAll: true
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The conntrack sysctls belong to the machine; leave them alone.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
EOF
  start_daemon kube-proxy "$NODE_BIN/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"
  wait_until 60 "kube-proxy" curl -fsS http://127.0.0.1:10256/healthz
}

# --- cluster DNS -------------------------------------------------------------------------------
# CoreDNS runs on the node's address as a host process; the kube-dns Service has no selector and
# an EndpointSlice naming that address, so pods reach it through kube-proxy like any Service.

node_dns_up() {
  node_write "$NODE_DIR/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health $NODE_IP:8080
    ready $NODE_IP:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $HARNESS_STATE/kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
  start_daemon coredns "$NODE_BIN/coredns" -conf "$NODE_DIR/Corefile"
  node_kubectl apply --server-side --field-manager=paperclipctl-harness -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $NODE_DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-harness
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: paperclipctl-harness
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF
  wait_until 60 "CoreDNS" curl -fsS "http://$NODE_IP:8181/ready"
}

# --- volumes -----------------------------------------------------------------------------------
# A claim of the harness-local class waits for its pod to be scheduled (WaitForFirstConsumer);
# the provisioner (node-volumes) then creates a directory and a `local` PersistentVolume bound
# to the claim, and deletes both when the claim goes.

node_storage_up() {
  node_kubectl apply --server-side --field-manager=paperclipctl-harness -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $NODE_STORAGE_CLASS
provisioner: $NODE_PROVISIONER
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
  mkdir -p "$NODE_DIR/volumes"
  start_daemon volume-provisioner env KUBECTL="$(cat "$HARNESS_STATE/cluster-bin")/kubectl" \
    KUBECONFIG="$HARNESS_STATE/kubeconfig" NODE_NAME="$NODE_NAME" \
    STORAGE_CLASS="$NODE_STORAGE_CLASS" PROVISIONER="$NODE_PROVISIONER" \
    VOLUME_DIR="$NODE_DIR/volumes" "$HARNESS_DIR/node-volumes"
}
