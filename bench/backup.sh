#!/usr/bin/env bash
# Benchmark on the test harness: `paperclipctl backup -f` of a database grown in steps (about
# 250 MB, 500 MB, then up to SIZE_GB, 1 by default), against a plain
# `kubectl exec … pg_dump > file` of the same database. For each size it prints the wall times,
# paperclipctl's throughput (database bytes per second, the size from pg_database_size) and its
# peak RSS, then whether the peak RSS stayed flat as the database grew. At the largest size it
# then times `restore` of that archive against a raw `kubectl exec -i … psql < dump`, and a
# backup of a tree of many small files under data/storage (TREE_MB, 1024 by default, 16 KiB
# files; the table emptied first) against a raw `kubectl exec … tar -cf - data/storage > file`.
# It ends with the machine's CPUs and load average before and after the runs. Asserts nothing
# (times depend on the machine and what else runs on it). Run by hand:
#
#   bench/backup.sh                   # release build (cargo build --release), the default
#   SIZE_GB=2 bench/backup.sh         # grow up to 2 GB
#   TREE_MB=256 bench/backup.sh       # a smaller tree of uploads
#   BENCH_PROFILE=debug bench/backup.sh
#   PAPERCLIPCTL=/path/to/paperclipctl bench/backup.sh
#
# It uses the running harness (`eval "$(tests/harness/up)"` first, or it starts one) and its
# registry fixture `fixtures/platforms:multi`, which the integration tests push. The release's
# database pod is pointed at a database of this run's own in the harness's PostgreSQL (other tests
# share its default database); that database and the run's namespace are deleted at the end.

set -euo pipefail

# The harness, the scratch directory and the steps shared with the other benches.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
size_gb=${SIZE_GB:-1}
tree_mb=${TREE_MB:-1024}
build_binary release

# Peak RSS comes from GNU time's %M.
if [[ ! -x /usr/bin/time ]]; then
  echo "installing GNU time for peak RSS figures" >&2
  apt-get install -y -qq time >/dev/null
fi

registry_fixture

ns=bench-backup-$run_id
database=paperclipctl_bench_${run_id//-/_}
db_pod=paperclip-db-postgresql-0
# psql against the harness's PostgreSQL: the run's database unless PGDATABASE says otherwise.
pg() {
  PGHOST=$HARNESS_PG_HOST PGPORT=$HARNESS_PG_PORT PGUSER=$HARNESS_PG_USER \
    PGPASSWORD=$HARNESS_PG_PASSWORD PGDATABASE=${PGDATABASE:-$database} psql -X -q -tA "$@"
}
# Run by lib.sh's EXIT trap, once the gate has stopped.
cleanup() {
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  PGDATABASE=$HARNESS_PG_DATABASE pg -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
}

infisical_project
namespace "$ns"

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
home=$work/paperclip
start_gate "$ns" "$home"

# --- the install, with the overrides the integration tests use ----------------------------------
mapfile -t set_args < <(sets)
install_release "$ns" "${set_args[@]}"
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

# measure NAME ARGS...: runs `paperclipctl ARGS` against the run's release under GNU time, its
# output in $work/NAME.out and .err, and sets took (wall seconds) and rss_kib (peak RSS); stops
# the bench with paperclipctl's stderr when it fails.
measure() {
  local name=$1 start
  shift
  start=$(now)
  CI=true NO_COLOR=1 /usr/bin/time -f %M -o "$work/rss" \
    "$bin" "$@" --profile frank --namespace "$ns" --kubeconfig "$KUBECONFIG" \
    >"$work/$name.out" 2>"$work/$name.err" || {
    echo "paperclipctl $name failed:" >&2
    cat "$work/$name.err" >&2
    exit 1
  }
  took=$(elapsed "$start" "$(now)")
  rss_kib=$(tail -n 1 "$work/rss")
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
targets=$(awk -v top="$size_gb" 'BEGIN {
  for (s = 0.25; s < top; s *= 2) printf "%.0f ", s * 1e9
  printf "%.0f\n", top * 1e9 }')
results=()
archive=$work/backup.tar.zst
for target in $targets; do
  grow_to "$target"
  pg -c "VACUUM ANALYZE paperclipctl_bench_rows"
  db_bytes=$(pg -c "SELECT pg_database_size(current_database())")

  rm -f "$archive"
  measure backup backup -f "$archive"
  archive_bytes=$(stat -c %s "$archive")

  start=$(now)
  kubectl exec -n "$ns" "$db_pod" -c postgresql -- \
    sh -c 'pg_dump --no-owner --no-privileges' >"$work/raw.sql"
  raw_time=$(elapsed "$start" "$(now)")
  dump_bytes=$(stat -c %s "$work/raw.sql")

  results+=("$db_bytes $took $raw_time $rss_kib $dump_bytes $archive_bytes")
  echo "measured at $((db_bytes / 1000000)) MB" >&2
done

# --- restore of the largest archive against a raw psql load of the same dump --------------------
measure restore restore "$archive" --yes --no-safety-backup
restore_time=$took
restore_rss=$rss_kib
rm -f "$archive"
pg -c "DROP SCHEMA public CASCADE" -c "CREATE SCHEMA public"
start=$(now)
# Not every exec closes the command's stdin at the end of the file: psql reads a counted input.
kubectl exec -i -n "$ns" "$db_pod" -c postgresql -- \
  sh -c 'head -c "$1" | psql -X -q -v ON_ERROR_STOP=1 -1 -f - >/dev/null' sh "$dump_bytes" \
  <"$work/raw.sql"
raw_restore_time=$(elapsed "$start" "$(now)")
rm -f "$work/raw.sql"

# --- a tree of many small files under data/storage -----------------------------------------------
# The table is emptied first, so the backup's time is the tree's.
pg -c "TRUNCATE paperclipctl_bench_rows"
storage=$instance/data/storage
files=$((tree_mb * 64))
mkdir -p "$storage"
for ((d = 0; d < files / 1000 + 1; d++)); do
  mkdir -p "$storage/d$d"
  for ((f = d * 1000; f < (d + 1) * 1000 && f < files; f++)); do
    head -c 16384 /dev/urandom >"$storage/d$d/f$f"
  done
done
chown -R 1000:1000 "$home"
tree_bytes=$(du -sb "$storage" | cut -f1)
app_pod=$(kubectl get pods -n "$ns" -l app.kubernetes.io/component=app \
  -o jsonpath='{.items[0].metadata.name}')
measure tree backup -f "$archive"
tree_backup_time=$took
tree_rss=$rss_kib
tree_archive=$(stat -c %s "$archive")
rm -f "$archive"
start=$(now)
kubectl exec -n "$ns" "$app_pod" -c paperclip -- \
  sh -c 'cd "${PAPERCLIP_HOME:-/paperclip}/instances/default" && tar -cf - data/storage' \
  >"$work/raw.tar"
raw_tree_time=$(elapsed "$start" "$(now)")
rm -f "$work/raw.tar"
rm -rf "$storage"

echo "namespace: $ns, database: $database (both deleted on exit)"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); \
load average before the runs $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
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
awk -v p="$restore_time" -v r="$raw_restore_time" -v rss="$restore_rss" 'BEGIN {
  printf "restore of the largest archive: %.2f s, raw psql load %.2f s, ratio %.2f, peak RSS %.1f MB\n",
    p, r, p / r, rss / 1024 }'
awk -v n="$files" -v t="$tree_bytes" -v b="$tree_backup_time" -v r="$raw_tree_time" \
  -v rss="$tree_rss" -v a="$tree_archive" 'BEGIN {
  printf "backup with %d files (%.0f MB) in data/storage: %.2f s, raw tar of the tree %.2f s, ratio %.2f,\n", n, t / 1e6, b, r, b / r
  printf "  archive %.0f MB, peak RSS %.1f MB\n", a / 1e6, rss / 1024 }'
