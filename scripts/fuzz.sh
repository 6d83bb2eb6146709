#!/usr/bin/env bash
# Runs the libFuzzer targets (docs/security.md, "Fuzzing") under
# AddressSanitizer and UndefinedBehaviorSanitizer, each from its seed corpus
# in fuzz/corpus/<fuzzer>, for FUZZ_SECONDS seconds (default 30), two at a
# time. Builds them first in the clang tree of scripts/sanitizers.sh
# (build-asan, HIPS_FUZZ=ON). A crash, leak, timeout or out-of-memory fails
# the run; its input is kept in <build>/fuzz/findings. Each target's
# executions and coverage go to <build>/fuzz/stats.txt.
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh    the long runs docs/security.md reports
#   bash scripts/fuzz.sh --seeds             rewrite fuzz/corpus from hips-fuzz-seeds
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
SECONDS_EACH=${FUZZ_SECONDS:-30}
FUZZERS="push_stream_fuzzer decoder_fuzzer validator_fuzzer metrics_request_fuzzer checkpoint_fuzzer"

# shellcheck source=scripts/common.sh
source scripts/common.sh
[ -f "$ASAN_DIR/build.ninja" ] || bash scripts/setup.sh
configure_asan_tree "$ASAN_DIR"
# shellcheck disable=SC2086
cmake --build "$ASAN_DIR" --target hips-fuzz-seeds $FUZZERS

if [ "${1:-}" = "--seeds" ]; then
  rm -rf fuzz/corpus
  "$ASAN_DIR/fuzz/hips-fuzz-seeds" fuzz/corpus
  find fuzz/corpus -type f | sort
  exit 0
fi

OUT="$ROOT/$ASAN_DIR/fuzz"
rm -rf "$OUT/work" "$OUT/findings" "$OUT/logs"
mkdir -p "$OUT/work" "$OUT/findings" "$OUT/logs"
SYMBOLIZER=/usr/lib/llvm-15/bin/llvm-symbolizer
export ASAN_OPTIONS="detect_leaks=1 external_symbolizer_path=$SYMBOLIZER"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 external_symbolizer_path=$SYMBOLIZER"

run() {
  local name=$1
  mkdir -p "$OUT/work/$name"
  # New inputs go to the work directory; the seeds in the repository stay.
  "$OUT/$name" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/findings/$name-" \
    "$OUT/work/$name" "$ROOT/fuzz/corpus/$name" >"$OUT/logs/$name.log" 2>&1
}

status=0
pids=()
names=()
for name in $FUZZERS; do
  run "$name" &
  pids+=($!)
  names+=("$name")
  if [ "${#pids[@]}" -ge 2 ]; then
    wait "${pids[0]}" || { echo "fuzz: ${names[0]} failed"; tail -40 "$OUT/logs/${names[0]}.log"; status=1; }
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "fuzz: ${names[$i]} failed"; tail -40 "$OUT/logs/${names[$i]}.log"; status=1; }
done

{
  printf '%-24s %8s %14s %8s %8s %s\n' fuzzer seconds executions cov ft corpus
  for name in $FUZZERS; do
    log="$OUT/logs/$name.log"
    # (A log cut short by a finding may lack any of these.)
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}' || true)
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}' || true)
    corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' | awk '{print $2}' || true)
    printf '%-24s %8s %14s %8s %8s %s\n' "$name" "$SECONDS_EACH" "${execs:-?}" "${cov:-?}" \
      "${ft:-?}" "${corp:-?}"
  done
} | tee "$OUT/stats.txt"
if ls "$OUT/findings"/* >/dev/null 2>&1; then
  echo "fuzz: findings in $OUT/findings"
  status=1
fi
[ "$status" -eq 0 ] && echo "fuzz: no findings"
exit "$status"
