# The real services around the cluster, each listening on loopback with its data under
# $HARNESS_STATE:
#   PostgreSQL      the database the app is configured against (127.0.0.1:$HARNESS_PG_PORT)
#   sshd            what the shell sidecar offers users (127.0.0.1:$HARNESS_SSHD_PORT)
#   registry        Distribution 2.8, where built images are pushed (127.0.0.1:$HARNESS_REGISTRY_PORT)
#   podman          a Docker Engine API on a unix socket, for image builds and pushes
# Sourced by `up`/`down`, which call services_up and services_down.

services_up() {
  services_postgres_up
  services_sshd_up
  services_registry_up
  services_podman_up
}

# Reverse order of services_up; every step is a no-op when its service is not running.
services_down() {
  # A harness started by an earlier checkout ran an HTTP stand-in for the app.
  stop_daemon app-http
  services_podman_down
  services_registry_down
  services_sshd_down
  services_postgres_down
}

# A random hex token for passwords; they are kept in $HARNESS_STATE only.
services_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# services_port VARIABLE DEFAULT: the port for a service: the one this harness instance recorded
# when it started (a running daemon keeps its port, even when a later `up` runs with another
# environment), else $VARIABLE, else DEFAULT.
services_port() {
  local recorded
  recorded=$(sed -n "s/^export $1=//p" "$HARNESS_STATE/env" 2>/dev/null | tail -n 1 || true)
  echo "${recorded:-${!1:-$2}}"
}

# services_claim_port NAME PORT VARIABLE: fail clearly when another process already listens on
# the port that daemon NAME is about to take; its readiness check would otherwise talk to the
# stranger (another harness instance, say) and fail in confusing ways.
services_claim_port() {
  daemon_running "$1" && return 0
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
    harness_die "127.0.0.1:$2 is already in use; set $3 to another port for $1"
  fi
}

# --- PostgreSQL --------------------------------------------------------------------------------
# The Debian server binaries run directly as the postgres user from a private data directory, so
# the machine's own cluster (if any) is neither used nor disturbed.

SERVICES_PG_BIN=/usr/lib/postgresql/15/bin

services_postgres_up() {
  apt_ensure postgresql-15 postgresql-client-15
  local dir=$HARNESS_STATE/postgres port user=paperclip db=paperclip
  port=$(services_port HARNESS_PG_PORT 55432)
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  chmod 700 "$dir"
  runuser -u postgres -- test -x "$dir" ||
    harness_die "the postgres user cannot reach $dir: choose a HARNESS_STATE outside private directories"
  if [[ ! -s $dir/password ]]; then
    services_secret >"$dir/password"
    chown postgres:postgres "$dir/password"
    chmod 600 "$dir/password"
  fi
  local password
  password=$(cat "$dir/password")

  if [[ ! -f $dir/data/PG_VERSION ]]; then
    harness_log "initialising PostgreSQL in $dir/data"
    runuser -u postgres -- "$SERVICES_PG_BIN/initdb" --pgdata="$dir/data" --username="$user" \
      --pwfile="$dir/password" --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
      >"$HARNESS_STATE/logs/initdb.log"
  fi
  # A server still running from this data directory after its daemon record was lost (the
  # runuser parent killed alone) is this harness's own: stop it rather than refuse its port.
  if ! daemon_running postgres && [[ -f $dir/data/postmaster.pid ]] &&
    kill -0 "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null; then
    runuser -u postgres -- "$SERVICES_PG_BIN/pg_ctl" stop -D "$dir/data" -m fast -w -t 10 >/dev/null || true
  fi
  services_claim_port postgres "$port" HARNESS_PG_PORT
  # The socket directory is the private one: /run/postgresql may not exist or may belong to
  # the machine's own cluster.
  start_daemon postgres runuser -u postgres -- "$SERVICES_PG_BIN/postgres" -D "$dir/data" \
    -c listen_addresses=127.0.0.1 -c port="$port" -c unix_socket_directories="$dir"
  wait_until 60 "PostgreSQL on 127.0.0.1:$port" \
    "$SERVICES_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres

  export PGPASSWORD=$password
  if [[ -z $(psql -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    psql -q -h 127.0.0.1 -p "$port" -U "$user" -d postgres -c "CREATE DATABASE $db"
  fi
  unset PGPASSWORD

  harness_env HARNESS_PG_HOST 127.0.0.1
  harness_env HARNESS_PG_PORT "$port"
  harness_env HARNESS_PG_USER "$user"
  harness_env HARNESS_PG_PASSWORD "$password"
  harness_env HARNESS_PG_DATABASE "$db"
}

services_postgres_down() {
  local data=$HARNESS_STATE/postgres/data
  # A fast shutdown ends open sessions; the plain SIGTERM of stop_daemon would wait for them.
  if daemon_running postgres && [[ -f $data/postmaster.pid ]]; then
    runuser -u postgres -- "$SERVICES_PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t 10 >/dev/null || true
  fi
  stop_daemon postgres
}

# --- sshd --------------------------------------------------------------------------------------
# A second sshd with its own config, host key and authorized key; the machine's sshd (if any) is
# untouched. The login user `agent` has uid 1000, like the shell sidecar's user.

services_sshd_up() {
  apt_ensure openssh-server openssh-client
  local dir=$HARNESS_STATE/sshd port
  port=$(services_port HARNESS_SSHD_PORT 52222)
  services_ensure_agent_user
  mkdir -p "$dir" /run/sshd
  [[ -f $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C harness-sshd -f "$dir/host_ed25519"
  [[ -f $dir/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C harness-client -f "$dir/client_ed25519"
  cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"

  # StrictModes is off because the state directory usually sits below /tmp, which is
  # world-writable, and sshd would then ignore the authorized_keys file. UsePAM is off so that
  # no PAM session modules of the machine are involved; the agent account is therefore not
  # locked (password field `*`), which sshd requires without PAM.
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile none
AuthorizedKeysFile $dir/authorized_keys
AllowUsers agent
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  services_claim_port sshd "$port" HARNESS_SSHD_PORT
  start_daemon sshd /usr/sbin/sshd -D -e -f "$dir/sshd_config"
  wait_until 30 "sshd on 127.0.0.1:$port" ssh-keyscan -p "$port" 127.0.0.1

  harness_env HARNESS_SSHD_PORT "$port"
  harness_env HARNESS_SSH_USER agent
  harness_env HARNESS_SSH_KEY "$dir/client_ed25519"
  harness_env HARNESS_SSH_KNOWN_HOSTS "$dir/known_hosts"
}

services_sshd_down() { stop_daemon sshd; }

# The account is machine-wide like the installed packages, so `down` leaves it in place. Debian
# images often give uid 1000 to a default user already; `agent` then shares that uid (-o), which
# is what matters to the tests and to file ownership.
services_ensure_agent_user() {
  if ! id agent >/dev/null 2>&1; then
    local group=(--user-group)
    getent group 1000 >/dev/null && group=(--gid 1000)
    useradd --non-unique --uid 1000 "${group[@]}" --home-dir /home/agent --create-home \
      --shell /bin/bash agent
  fi
  [[ $(id -u agent) == 1000 ]] || harness_die "user agent exists with uid $(id -u agent), not 1000"
  usermod -p '*' agent
}

# --- registry ----------------------------------------------------------------------------------
# Debian's Distribution 2.8 without auth or TLS; deletion is on so tests can remove what they
# pushed.

services_registry_up() {
  apt_ensure docker-registry curl
  local dir=$HARNESS_STATE/registry port
  port=$(services_port HARNESS_REGISTRY_PORT 55000)
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
  services_claim_port registry "$port" HARNESS_REGISTRY_PORT
  start_daemon registry /usr/bin/docker-registry serve "$dir/config.yml"
  wait_until 30 "the registry on 127.0.0.1:$port" curl -fsS "http://127.0.0.1:$port/v2/"

  harness_env HARNESS_REGISTRY_PORT "$port"
  harness_env HARNESS_REGISTRY "127.0.0.1:$port"
}

services_registry_down() { stop_daemon registry; }

# --- podman (Docker Engine API) ----------------------------------------------------------------
# `podman system service` answers the Docker API on a unix socket. Its configuration comes only
# from the three files below (selected through CONTAINERS_* variables), so the machine's own
# podman or docker setup is neither read nor changed: vfs storage (works on any filesystem,
# needs no fuse or overlay support), cgroupfs (there is no systemd to ask), events in a file
# (there is no journald), and the harness registry reachable over plain HTTP. The OCI runtime is
# runc: crun refuses to start containers (so Dockerfile RUN steps fail) on machines whose cgroup
# layout is hybrid (v1 controllers plus a v2 hierarchy that has a controller enabled), which is
# common on VMs and CI runners; runc handles that layout.

services_podman_up() {
  apt_ensure podman runc
  local dir=$HARNESS_STATE/podman sock=$HARNESS_STATE/podman.sock
  mkdir -p "$dir/tmp"
  cat >"$dir/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
  cat >"$dir/containers.conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"
EOF
  cat >"$dir/registries.conf" <<EOF
unqualified-search-registries = []

[[registry]]
location = "$HARNESS_REGISTRY"
insecure = true
EOF
  CONTAINERS_CONF=$dir/containers.conf CONTAINERS_STORAGE_CONF=$dir/storage.conf \
    CONTAINERS_REGISTRIES_CONF=$dir/registries.conf \
    start_daemon podman podman system service --time=0 "unix://$sock"
  wait_until 60 "the podman API on $sock" curl -fsS --unix-socket "$sock" http://podman/_ping

  # No base image can be pulled here, so Dockerfiles that need a RUN step copy this static
  # shell into a `FROM scratch` image.
  apt_ensure busybox-static
  harness_env DOCKER_HOST "unix://$sock"
  harness_env HARNESS_BUSYBOX /bin/busybox
}

services_podman_down() { stop_daemon podman; }
