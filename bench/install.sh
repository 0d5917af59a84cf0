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

# The harness, the scratch directory and the steps shared with the other benches.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
build_binary debug
registry_fixture
infisical_project

# --- (a) paperclipctl install, and (c) the same install again ----------------------------------
ns_a=bench-install-$run_id
namespace "$ns_a"
start_gate "$ns_a" "$work/$ns_a/paperclip"
# The same overrides both times (the addresses too), so the second install has nothing to do.
mapfile -t install_args < <(sets)
start=$(now)
install_release "$ns_a" "${install_args[@]}"
install_time=$(elapsed "$start" "$(now)")
start=$(now)
install_release "$ns_a" "${install_args[@]}"
noop_time=$(elapsed "$start" "$(now)")
grep -q 'is up to date: nothing changed' "$work/$ns_a.out" ||
  echo "note: the second install was not a no-op:" "$(head -n 1 "$work/$ns_a.out")" >&2

# --- (b) kubectl apply --server-side of the plan, then kubectl wait -----------------------------
# The same project is reused: (a) put every key the ExternalSecrets read into it.
ns_b=bench-kubectl-$run_id
namespace "$ns_b"
start_gate "$ns_b" "$work/$ns_b/paperclip"
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
