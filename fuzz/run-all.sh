#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30), one after
# another, from the committed seeds plus a working corpus under
# fuzz/corpus/<target> (not committed). Stops at the first crash; the
# input is left in fuzz/artifacts/<target>/. Usage: fuzz/run-all.sh [SECONDS] [TARGET...]
#
# libFuzzer needs nightly-only compiler flags (-Z sanitizer, sancov);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. FUZZ_SANITIZER
# picks the sanitizer (default address; `none` builds and runs faster).
# FUZZ_BUILD_ONLY=1 builds the targets and stops (run-tests.sh does it in
# the background, while tests run; the later run then starts at once).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(codec_decode codec_roundtrip topic_match acl_pattern mosquitto_conf mosquitto_files mosquitto_db config_toml v1_client_cert proxy_header cluster_subject)
fi
sanitizer="${FUZZ_SANITIZER:-address}"
cargo_fuzz="${CARGO_FUZZ:-cargo-fuzz}"
export RUSTC_BOOTSTRAP=1
"$cargo_fuzz" build -O -s "$sanitizer"
if [ -n "${FUZZ_BUILD_ONLY:-}" ]; then exit 0; fi
mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "== fuzz $target for ${seconds}s"
  # -rss_limit_mb: a leak or an unbounded allocation is a finding too.
  log="logs/$target.log"
  status=0
  "$cargo_fuzz" run -O -s "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz $target FAILED (exit $status); the end of $PWD/$log:"
    tail -40 "$log"
    exit 1
  fi
done
