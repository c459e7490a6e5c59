#!/usr/bin/env bash
# Fuzz smoke (issue 16): build every cargo-fuzz target in fuzz/ and run each
# for FUZZ_SMOKE_SECONDS (20) from its committed corpus, one at a time. Fails
# on a crash, a leak, an input over 1 s (libFuzzer -timeout) or over 50 ms
# twice in a row (the targets' own check, HWKEY_FUZZ_SLOW_MS), or an
# out-of-memory. Installs the nightly toolchain and cargo-fuzz when missing.
# Bounded: about 18 x 20 s of fuzzing plus one build of the fuzz crate.
# New inputs go to a scratch directory; the committed corpora are read only.
# Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SMOKE_SECONDS:-20}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cd fuzz
targets="$(cargo +nightly fuzz list)"
count="$(printf '%s\n' "$targets" | wc -l)"
echo "fuzz smoke: $count targets, ${seconds}s each"
[ "$count" -ge 15 ] || { echo "expected at least 15 fuzz targets"; exit 1; }
cargo +nightly fuzz build

dict_for() {
  case "$1" in
    cbor_*|auth_data|attestation|cose_key|authenticator_ctap2|ctap2_responses|ctaphid_host) echo "-dict=dict/cbor.dict" ;;
    finish_*|client_data|http_router|otpauth_uri) echo "-dict=dict/json.dict" ;;
    authfile) echo "-dict=dict/authfile.dict" ;;
    *) echo "" ;;
  esac
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in $targets; do
  mkdir -p "$scratch/$t" "corpus/$t"
  echo "=== fuzz $t (${seconds}s)"
  # shellcheck disable=SC2046
  if ! cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 $(dict_for "$t") 2>"$scratch/$t.log"; then
    tail -n 60 "$scratch/$t.log"
    failed+=("$t")
  else
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)|slowest input' "$scratch/$t.log" | tail -n 4 || true
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke failed: ${failed[*]} (reproducers under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz smoke: all $count targets ran ${seconds}s without a finding"
