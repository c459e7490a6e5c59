#!/usr/bin/env bash
# One campaign pass (issue 16): run each named target (default: all) for
# SECONDS (default 60), one at a time at nice 19, growing its committed
# corpus, with the same limits as the CI smoke (-timeout=1, the targets' own
# 50 ms check). RUNS_PER_TARGET=N also stops a run after N executions
# (libFuzzer -runs). Appends one line per run to status/runs.tsv:
#   date  target  seconds  execs  cov  ft  corpus  slowest_us  result  cpu_s
# seconds: the requested time (rows before 2026-12-04), the measured wall
# time since; cpu_s: the fuzzer's measured user + system CPU time (rows since
# 2026-12-04). A libFuzzer timeout is run again from its artifact (three
# times, same -timeout=1): when none times out, the run was stopped from
# outside (SIGSTOP during a measurement, or starved of CPU at nice 19) and
# its result is "timeout_not_reproduced"; otherwise it is a FINDING.
# fuzz/STATUS.md is written from that file. Minimize afterwards with
#   cargo +nightly fuzz cmin TARGET corpus/TARGET
set -uo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_PER_TARGET:-60}"
runs=()
[ -z "${RUNS_PER_TARGET:-}" ] || runs=("-runs=$RUNS_PER_TARGET")
bin_dir=target/x86_64-unknown-linux-gnu/release
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p status logs
for t in "${targets[@]}"; do
  case "$t" in
    cbor_*|auth_data|attestation|cose_key|authenticator_ctap2|ctap2_responses|ctaphid_host) dict="-dict=dict/cbor.dict" ;;
    finish_*|client_data|http_router|otpauth_uri) dict="-dict=dict/json.dict" ;;
    authfile) dict="-dict=dict/authfile.dict" ;;
    *) dict="" ;;
  esac
  log="logs/$t.log"
  mkdir -p "corpus/$t"
  mkdir -p "artifacts/$t"
  start="$(date +%s)"
  TIMEFORMAT='%U %S'
  # shellcheck disable=SC2086
  if [ -n "${FUZZ_NO_BUILD:-}" ]; then
    # The binaries of the last build, without rebuilding (cargo fuzz run
    # rebuilds the whole crate when hwkey changed).
    { time nice -n 19 "$bin_dir/$t" -artifact_prefix="artifacts/$t/" \
      -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      "${runs[@]}" $dict "corpus/$t" >"$log" 2>&1; } 2>"$log.cpu"
  else
    { time nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -timeout=1 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "${runs[@]}" $dict >"$log" 2>&1; } 2>"$log.cpu"
  fi
  rc=$?
  wall=$(( $(date +%s) - start ))
  cpu="$(awk '{printf "%d", $1 + $2 + 0.5}' "$log.cpu")"
  execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')"
  last="$(grep -E '^#[0-9]+' "$log" | tail -1)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")"
  slow="$(grep -o 'slowest input so far: [0-9]* us' "$log" | tail -1 | awk '{print $5}')"
  if [ "$rc" -eq 0 ]; then result=ok; else result="FINDING($(grep -m1 -oE 'panicked at [^ ]*|ERROR: [A-Za-z]+: [a-z-]+|ERROR: libFuzzer: [a-z-]+' "$log" | head -1 | tr ' \t' '__'))"; fi
  if [ "$result" = "FINDING(ERROR:_libFuzzer:_timeout)" ]; then
    art="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    if [ -n "$art" ] && [ -f "$art" ] && [ -x "$bin_dir/$t" ]; then
      again=0
      for _ in 1 2 3; do
        nice -n 19 "$bin_dir/$t" -timeout=1 -rss_limit_mb=2048 "$art" >>"$log.recheck" 2>&1 || again=$((again + 1))
      done
      if [ "$again" -eq 0 ]; then
        result=timeout_not_reproduced
        mkdir -p "artifacts/$t/not-reproduced"
        mv "$art" "artifacts/$t/not-reproduced/"
      fi
    fi
  fi
  if [ -z "$execs" ]; then execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$wall" "${execs:-0}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${slow:-<1000}" "$result" "${cpu:-?}" | tee -a status/runs.tsv
done
