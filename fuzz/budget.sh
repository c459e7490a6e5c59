#!/usr/bin/env bash
# Run each named target, in the order given, until its totals in
# status/runs.tsv reach the issue-16 budget (10 M executions, or 2 hours of
# measured CPU time), or until FUZZ_DEADLINE (any `date -d` time) passes.
# Each run is one campaign.sh run (nice 19, the built binaries: run
# `cargo +nightly fuzz build` first) of at most CHUNK_SECONDS (900) with
# -runs set to the executions still missing, so every chunk is recorded in
# runs.tsv as it ends. A target stops at its first finding (the next target
# starts); a timeout that does not reproduce (campaign.sh re-runs it) does
# not stop it. Two of these may run side by side on different targets.
set -uo pipefail
cd "$(dirname "$0")"
deadline="$(date -d "${FUZZ_DEADLINE:?set FUZZ_DEADLINE, e.g. 20:40}" +%s)"
chunk="${CHUNK_SECONDS:-900}"
for t in "$@"; do
  while :; do
    read -r execs cpu < <(awk -F'\t' -v t="$t" '$2 == t { e += $4; if ($10 ~ /^[0-9]+$/) c += $10 } END { printf "%d %d\n", e, c }' status/runs.tsv)
    left=$((10000000 - execs))
    now="$(date +%s)"
    { [ "$left" -gt 0 ] && [ "$cpu" -lt 7200 ] && [ "$((deadline - now))" -ge 30 ]; } || break
    secs=$((deadline - now < chunk ? deadline - now : chunk))
    RUNS_PER_TARGET="$left" SECONDS_PER_TARGET="$secs" FUZZ_NO_BUILD=1 ./campaign.sh "$t"
    result="$(awk -F'\t' -v t="$t" '$2 == t { r = $9 } END { print r }' status/runs.tsv)"
    case "$result" in
      ok | timeout_not_reproduced) ;;
      *) echo "budget: $t stopped at a finding: $result"; break ;;
    esac
  done
done
