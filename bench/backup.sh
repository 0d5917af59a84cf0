#!/usr/bin/env bash
# Benchmark on the test harness: `paperclipctl backup -f` of a database grown in steps (about
# 250 MB, 500 MB, then up to SIZE_GB, 1 by default), against a plain
# `kubectl exec … pg_dump > file` of the same database. For each size it prints the wall times,
# paperclipctl's throughput (database bytes per second, the size from pg_database_size) and its
# peak RSS, then whether the peak RSS stayed flat as the database grew. Asserts nothing (times
# depend on the machine). Run by hand:
#
#   bench/backup.sh                   # release build (cargo build --release), the default
#   SIZE_GB=2 bench/backup.sh         # grow up to 2 GB
#   BENCH_PROFILE=debug bench/backup.sh
#   PAPERCLIPCTL=/path/to/paperclipctl bench/backup.sh
#
# It uses the running harness (`eval "$(tests/harness/up)"` first, or it starts one) and its
# registry fixture `fixtures/platforms:multi`, which the integration tests push. The release's
# database pod is pointed at a database of this run's own in the harness's PostgreSQL (other tests
# share its default database); that database and the run's namespace are deleted at the end.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${HARNESS_KUBECTL:-} || -z ${INFISICAL_API_URL:-} ]]; then
  eval "$("$root/tests/harness/up")"
fi
size_gb=${SIZE_GB:-1}

# --- the binary --------------------------------------------------------------------------------
if [[ -n ${PAPERCLIPCTL:-} ]]; then
  bin=$PAPERCLIPCTL
  build="from PAPERCLIPCTL"
elif [[ ${BENCH_PROFILE:-release} == debug ]]; then
  (cd "$root" && cargo build --quiet --bin paperclipctl)
  bin=${CARGO_TARGET_DIR:-$root/target}/debug/paperclipctl
  build="debug build"
else
  (cd "$root" && cargo build --quiet --release --bin paperclipctl)
  bin=${CARGO_TARGET_DIR:-$root/target}/release/paperclipctl
  build="release build"
fi
echo "binary: $bin ($build)"

# Peak RSS comes from GNU time's %M.
if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time for peak RSS figures" >&2
  apt-get install -y -qq time >/dev/null
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
ns=bench-backup-$run_id
database=paperclipctl_bench_${run_id//-/_}
db_pod=paperclip-db-postgresql-0
work=$(mktemp -d)
# The app stand-in runs as uid 1000 in data directories below it.
chmod 755 "$work"
gate_pid=
# psql against the harness's PostgreSQL: the run's database unless PGDATABASE says otherwise.
pg() {
  PGHOST=$HARNESS_PG_HOST PGPORT=$HARNESS_PG_PORT PGUSER=$HARNESS_PG_USER \
    PGPASSWORD=$HARNESS_PG_PASSWORD PGDATABASE=${PGDATABASE:-$database} psql -X -q -tA "$@"
}
cleanup() {
  [[ -n $gate_pid ]] && kill "$gate_pid" 2>/dev/null
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  PGDATABASE=$HARNESS_PG_DATABASE pg -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
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

# --- the namespace, with the store's credentials Secret as an operator creates it ---------------
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" paperclipctl-bench=true >/dev/null
kubectl create secret generic infisical-universal-auth -n "$ns" \
  --from-literal=clientId="$INFISICAL_UNIVERSAL_AUTH_CLIENT_ID" \
  --from-literal=clientSecret="$INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET" >/dev/null

# --- the database pod: libpq variables naming this run's database -------------------------------
PGDATABASE=$HARNESS_PG_DATABASE pg -c "CREATE DATABASE $database"
kubectl apply --server-side --field-manager=paperclipctl-bench -f - >/dev/null <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Exec
metadata: {name: $db_pod, namespace: $ns}
spec:
  execs:
  - local:
      envs:
      - {name: PGHOST, value: "$HARNESS_PG_HOST"}
      - {name: PGPORT, value: "$HARNESS_PG_PORT"}
      - {name: PGUSER, value: "$HARNESS_PG_USER"}
      - {name: PGPASSWORD, value: "$HARNESS_PG_PASSWORD"}
      - {name: PGDATABASE, value: "$database"}
      - {name: PATH, value: "/usr/local/bin:/usr/bin:/bin"}
EOF

# --- the app pods: what the harness's test fixture does, in the background ----------------------
# KWOK runs exec on this machine and holds app pods back from Ready until they carry the
# exec-ready annotation; each new app pod gets an Exec named after it (the upstream-CLI stand-in
# with a data directory of its own, as uid 1000), and the annotation once KWOK serves that Exec.
home=$work/paperclip
mkdir -p "$home"
chown 1000:1000 "$home"
gate() {
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
gate &
gate_pid=$!

# --- the install, with the overrides the integration tests use ----------------------------------
unique_ip() { echo "198.$((18 + RANDOM % 2)).$((RANDOM % 256)).$((1 + RANDOM % 254))"; }
sets=(
  secrets.store.kind=SecretStore secrets.store.name=paperclip-infisical
  "secrets.store.hostApi=$INFISICAL_API_URL" "secrets.store.projectSlug=$project"
  secrets.store.environmentSlug=prod secrets.store.secretsPath=/paperclip
  secrets.store.credentials.namespace=null
  "app.image=$image" "database.image=$image" "database.metrics.image=$image" "shell.image=$image"
  "app.service.loadBalancerIp=$(unique_ip)" "shell.service.loadBalancerIp=$(unique_ip)"
)
set_args=()
for v in "${sets[@]}"; do set_args+=(--set "$v"); done
PAPERCLIP_LITELLM_KEY=bench-llm-key CI=true NO_COLOR=1 \
  "$bin" install --profile frank --namespace "$ns" --kubeconfig "$KUBECONFIG" --timeout 180s \
  "${set_args[@]}" >"$work/install.out" 2>"$work/install.err" || {
  echo "paperclipctl install in $ns failed:" >&2
  cat "$work/install.err" >&2
  exit 1
}
# The instance files a backup carries along with the dump.
instance=$home/instances/default
mkdir -p "$instance/secrets"
head -c 32 /dev/urandom | base64 >"$instance/secrets/master.key"
[[ -f $instance/config.json ]] || echo '{}' >"$instance/config.json"
chown -R 1000:1000 "$home"

# --- the database, grown in steps ---------------------------------------------------------------
# Rows of about 220 bytes on disk: ids, times and text that compresses as real data does.
pg -c "CREATE TABLE paperclipctl_bench_rows (id bigint, created timestamptz, kind text, body text)"
grow_to() { # BYTES
  local size rows
  while size=$(pg -c "SELECT pg_database_size(current_database())") && ((size < $1)); do
    rows=$((($1 - size) / 220 + 1000))
    ((rows > 2000000)) && rows=2000000
    pg -c "INSERT INTO paperclipctl_bench_rows
      SELECT g, now() - g * interval '1 second', (ARRAY['task','comment','run','event'])[1 + g % 4],
             'agent ' || (g % 97) || ' wrote: ' || md5(g::text) || ' status=' ||
             (ARRAY['done','todo','blocked'])[1 + g % 3] || ' ' || repeat(md5(random()::text), 2) ||
             ' {\"cost\": ' || (random() * 100)::int || ', \"tokens\": ' || (random() * 10000)::int || '}'
      FROM generate_series((SELECT coalesce(max(id), 0) + 1 FROM paperclipctl_bench_rows),
                           (SELECT coalesce(max(id), 0) + $rows FROM paperclipctl_bench_rows)) g"
  done
}

targets=$(awk -v top="$size_gb" 'BEGIN {
  for (s = 0.25; s < top; s *= 2) printf "%.0f ", s * 1e9
  printf "%.0f\n", top * 1e9 }')
results=()
for target in $targets; do
  grow_to "$target"
  pg -c "VACUUM ANALYZE paperclipctl_bench_rows"
  db_bytes=$(pg -c "SELECT pg_database_size(current_database())")

  archive=$work/backup.tar.zst
  start=$(now)
  CI=true NO_COLOR=1 /usr/bin/time -f %M -o "$work/rss" \
    "$bin" backup -f "$archive" --profile frank --namespace "$ns" --kubeconfig "$KUBECONFIG" \
    >"$work/backup.out" 2>"$work/backup.err" || {
    echo "paperclipctl backup failed:" >&2
    cat "$work/backup.err" >&2
    exit 1
  }
  backup_time=$(elapsed "$start" "$(now)")
  rss_kib=$(tail -n 1 "$work/rss")
  archive_bytes=$(stat -c %s "$archive")
  rm -f "$archive"

  start=$(now)
  kubectl exec -n "$ns" "$db_pod" -c postgresql -- \
    sh -c 'pg_dump --no-owner --no-privileges' >"$work/raw.sql"
  raw_time=$(elapsed "$start" "$(now)")
  dump_bytes=$(stat -c %s "$work/raw.sql")
  rm -f "$work/raw.sql"

  results+=("$db_bytes $backup_time $raw_time $rss_kib $dump_bytes $archive_bytes")
  echo "measured at $((db_bytes / 1000000)) MB" >&2
done

echo "namespace: $ns, database: $database (both deleted on exit)"
printf '%9s %10s %8s %9s %14s %7s %9s %10s\n' \
  "DB MB" "DUMP MB" "ARCHIVE" "backup s" "backup DB MB/s" "raw s" "ratio" "peak RSS"
for r in "${results[@]}"; do
  read -r db_bytes backup_time raw_time rss_kib dump_bytes archive_bytes <<<"$r"
  awk -v db="$db_bytes" -v b="$backup_time" -v r="$raw_time" -v rss="$rss_kib" \
    -v d="$dump_bytes" -v a="$archive_bytes" 'BEGIN {
      printf "%9.0f %10.0f %7.0f%% %9.2f %14.1f %7.2f %9.2f %7.1f MB\n",
        db / 1e6, d / 1e6, 100 * a / d, b, db / 1e6 / b, r, b / r, rss / 1024 }'
done
printf '%s\n' "${results[@]}" | awk '
  { rss = $4; if (NR == 1 || rss < min) min = rss; if (rss > max) max = rss }
  END { printf "peak RSS max/min: %.2f (%s)\n", max / min, max / min < 1.5 ? "flat" : "grows with the database" }'
echo "ARCHIVE: the archive's size as a share of the plain dump; ratio: backup s / raw s"
