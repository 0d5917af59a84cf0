# The Infisical test double (tests/infisical-double): Infisical's API, in memory, on loopback,
# with a bootstrap machine identity whose universal-auth credentials are made anew each time the
# double starts and kept in $HARNESS_STATE only. Exports:
#   INFISICAL_API_URL                       the site URL, as the infisical crate and External
#                                           Secrets' `hostAPI` take it (both append /api/...)
#   INFISICAL_UNIVERSAL_AUTH_CLIENT_ID      the bootstrap identity's credentials
#   INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET
#   HARNESS_INFISICAL_CONTROL_URL           the double's test controls (faults, request log,
#                                           extra identities), see its src/control.rs
# The port is 58080 unless HARNESS_INFISICAL_PORT says otherwise. Every `up` rebuilds the double
# (a no-op when unchanged) and restarts it when its binary changed; its state lives in the
# process, so a restart starts from nothing. Sourced by `up`/`down`, which call infisical_up and
# infisical_down.

infisical_up() {
  local dir=$HARNESS_STATE/infisical port=${HARNESS_INFISICAL_PORT:-58080}
  local url="http://127.0.0.1:$port" log=$HARNESS_STATE/logs/infisical.log
  mkdir -p "$dir"
  chmod 700 "$dir"

  # A restart forgets every project and issues new credentials, so it happens only when the
  # double's source changed — not because another checkout of the same source built it.
  local source
  source=$(cd "$HARNESS_DIR/../infisical-double" && cat Cargo.toml src/*.rs | sha256sum | cut -d' ' -f1)
  if daemon_running infisical && [[ $source == "$(cat "$dir/source" 2>/dev/null)" ]]; then
    infisical_env "$dir" "$url"
    return 0
  fi
  infisical_build "$dir/infisical-double.new"
  if daemon_running infisical; then
    harness_log "the Infisical double changed; restarting it"
    stop_daemon infisical
  fi
  if ! daemon_running infisical; then
    # Without this check a double that cannot bind would leave `up` talking to whatever owns
    # the port, with credentials it does not know.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      harness_die "127.0.0.1:$port is taken by another process; set HARNESS_INFISICAL_PORT"
    fi
    mv "$dir/infisical-double.new" "$dir/infisical-double"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' |
      sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/' >"$dir/client_id"
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$dir/client_secret"
    chmod 600 "$dir/client_id" "$dir/client_secret"
    # The secret reaches the double through its environment, not argv, which any user can read.
    INFISICAL_DOUBLE_LISTEN="127.0.0.1:$port" \
      INFISICAL_DOUBLE_CLIENT_ID=$(cat "$dir/client_id") \
      INFISICAL_DOUBLE_CLIENT_SECRET=$(cat "$dir/client_secret") \
      start_daemon infisical "$dir/infisical-double"
  fi
  rm -f "$dir/infisical-double.new"
  echo "$source" >"$dir/source"
  wait_until 30 "the Infisical double on $url (log: $log)" curl -fsS "$url/api/status"
  infisical_env "$dir" "$url"
}

infisical_env() {
  local dir=$1 url=$2
  harness_env INFISICAL_API_URL "$url"
  harness_env INFISICAL_UNIVERSAL_AUTH_CLIENT_ID "$(cat "$dir/client_id")"
  harness_env INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET "$(cat "$dir/client_secret")"
  harness_env HARNESS_INFISICAL_CONTROL_URL "$url/__double"
}

infisical_down() { stop_daemon infisical; }

# infisical_build DEST: build the double from this checkout and copy the binary to DEST; the
# double runs from that copy, so later builds of the workspace never replace it under the
# running process.
infisical_build() {
  local root target
  root=$(cd "$HARNESS_DIR/../.." && pwd)
  target=${CARGO_TARGET_DIR:-$root/target}
  [[ $target = /* ]] || target=$root/$target
  (cd "$root" && cargo build --quiet -p infisical-double) >>"$HARNESS_STATE/logs/infisical-build.log" 2>&1 ||
    harness_die "building the Infisical double failed, see $HARNESS_STATE/logs/infisical-build.log"
  cp "$target/debug/infisical-double" "$1"
}
