# Shared helpers for the test harness scripts. Sourced, never executed.
#
# Layout on disk:
#   $HARNESS_STATE  run-time state of one harness instance (pids, logs, data dirs, the env file);
#                   removed by `down`.
#   $HARNESS_CACHE  built binaries keyed by version, kept across `down` so a second `up` skips builds.
#
# Every component lives in components/NN-name.sh and defines name_up and name_down. `up` runs the
# *_up functions in file order, `down` runs the *_down functions in reverse order. Both must be
# idempotent: `up` on a running component checks it and returns, `down` on a stopped one is a no-op.

set -euo pipefail

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export HARNESS_DIR
export HARNESS_STATE=${HARNESS_STATE:-${TMPDIR:-/tmp}/paperclipctl-harness}
export HARNESS_CACHE=${HARNESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paperclipctl-harness}
mkdir -p "$HARNESS_STATE" "$HARNESS_STATE/logs" "$HARNESS_CACHE"

harness_log() { printf '[harness %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
harness_die() { harness_log "error: $*"; exit 1; }

# harness_env KEY VALUE: record a variable that tests and `env` export. Re-recording replaces it.
# Two `up`s may run at once (test binaries starting together): the lock keeps their rewrites of
# the file from interleaving.
harness_env() {
  local file="$HARNESS_STATE/env"
  (
    flock 9
    touch "$file"
    grep -v "^export $1=" "$file" >"$file.tmp.$$" || true
    printf 'export %s=%q\n' "$1" "$2" >>"$file.tmp.$$"
    mv "$file.tmp.$$" "$file"
  ) 9>>"$HARNESS_STATE/env.lock"
  export "$1=$2"
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s until it succeeds or the deadline passes.
wait_until() {
  local seconds=$1 what=$2
  local deadline=$((SECONDS + seconds))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      harness_die "timed out after ${seconds}s waiting for $what"
    fi
    sleep 0.2
  done
}

# start_daemon NAME CMD...: run CMD in the background with its output in logs/NAME.log and its
# pid in NAME.pid. Does nothing when a live process already owns the pid file.
start_daemon() {
  local name=$1
  shift
  if daemon_running "$name"; then return 0; fi
  setsid "$@" >>"$HARNESS_STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$HARNESS_STATE/$name.pid"
}

daemon_running() {
  local pidfile="$HARNESS_STATE/$1.pid"
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# stop_daemon NAME: stop the process group started by start_daemon, waiting up to 10 s.
stop_daemon() {
  local pidfile="$HARNESS_STATE/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# apt_ensure PKG...: install the Debian packages that are missing (one apt-get update per run).
apt_ensure() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  harness_log "installing Debian packages: ${missing[*]}"
  if [[ ! -f $HARNESS_STATE/.apt-updated ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    touch "$HARNESS_STATE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# components: the component files in run order.
components() { ls "$HARNESS_DIR"/components/*.sh | sort; }
component_name() { basename "$1" .sh | sed 's/^[0-9]*-//; s/-/_/g'; }
