#!/usr/bin/env bash
# One campaign pass (issue 16): run each named target (default: all) for
# SECONDS (default 60), one at a time at nice 19, growing its committed
# corpus, with the same limits as the CI smoke (-timeout=1, the targets' own
# 50 ms check). Appends one line per run to status/runs.tsv:
#   date  target  seconds  execs  cov  ft  corpus  slowest_us  result
# fuzz/STATUS.md is written from that file. Minimize afterwards with
#   cargo +nightly fuzz cmin TARGET corpus/TARGET
set -uo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_PER_TARGET:-60}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p status logs
for t in "${targets[@]}"; do
  case "$t" in
    cbor_*|auth_data|attestation|cose_key|authenticator_ctap2|ctap2_responses|ctaphid_host) dict="-dict=dict/cbor.dict" ;;
    finish_*|client_data|http_router|otpauth_uri) dict="-dict=dict/json.dict" ;;
    *) dict="" ;;
  esac
  log="logs/$t.log"
  mkdir -p "corpus/$t"
  # shellcheck disable=SC2086
  if [ -n "${FUZZ_NO_BUILD:-}" ]; then
    # The binaries of the last build, without rebuilding (cargo fuzz run
    # rebuilds the whole crate when hwkey changed).
    nice -n 19 "target/x86_64-unknown-linux-gnu/release/$t" -artifact_prefix="artifacts/$t/" \
      -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      $dict "corpus/$t" >"$log" 2>&1
  else
    nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=1 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 $dict >"$log" 2>&1
  fi
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")"
  slow="$(grep -o 'slowest input so far: [0-9]* us' "$log" | tail -1 | awk '{print $5}')"
  if [ "$rc" -eq 0 ]; then result=ok; else result="FINDING($(grep -m1 -oE 'panicked at [^ ]*|ERROR: [A-Za-z]+: [a-z-]+|ERROR: libFuzzer: [a-z-]+' "$log" | head -1 | tr ' \t' '__'))"; fi
  if [ -z "$execs" ]; then execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$seconds" "${execs:-0}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${slow:-<1000}" "$result" | tee -a status/runs.tsv
done
