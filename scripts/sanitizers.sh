#!/usr/bin/env bash
# The concurrency and memory checks (docs/concurrency.md), each in a build
# directory of its own beside build/:
#   build-asan   clang-15 with -Werror=thread-safety, AddressSanitizer and
#                UndefinedBehaviorSanitizer: every target builds (so every
#                thread-safety annotation is checked), the unit tests and the
#                in-process cluster tests run, then every fuzzer for
#                FUZZ_SECONDS (30) from its seeds (scripts/fuzz.sh).
#   build-tsan   ThreadSanitizer on the logic (no gRPC, no LibTorch: Debian
#                builds them uninstrumented) against Abseil 20220623.1 built
#                from Debian's source package with -fsanitize=thread; its
#                tests run, the concurrent ones three times.
# Idempotent: a second run rebuilds only what changed. Each phase's time
# goes to build/phases.txt (scripts/common.sh, docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/common.sh
source scripts/common.sh
bash scripts/setup.sh

# Abseil as Debian ships it (the orig tarball of bookworm's abseil source
# package), built once with ThreadSanitizer into build-tsan/absl.
ABSL_VERSION=20220623.1
ABSL_SHA256=abfe2897f3a30edaa74bc34365afe3c2a3cd012091a97dc7e008f7016adcd5fe
ABSL_URL=http://deb.debian.org/debian/pool/main/a/abseil/abseil_${ABSL_VERSION}.orig.tar.gz
TSAN_DIR=${TSAN_BUILD_DIR:-build-tsan}
ABSL_PREFIX=$ROOT/$TSAN_DIR/absl
build_tsan_abseil() {
  mkdir -p "$TSAN_DIR/absl-src"
  tarball="$TSAN_DIR/abseil_${ABSL_VERSION}.orig.tar.gz"
  if [ ! -f "$tarball" ]; then
    curl -fsSL --retry 3 -o "$tarball.part" "$ABSL_URL"
    mv "$tarball.part" "$tarball"
  fi
  echo "$ABSL_SHA256  $tarball" | sha256sum -c --quiet
  tar -xzf "$tarball" -C "$TSAN_DIR/absl-src" --strip-components=1
  cmake -S "$TSAN_DIR/absl-src" -B "$TSAN_DIR/absl-build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" \
    -DCMAKE_C_COMPILER=clang-15 -DCMAKE_CXX_COMPILER=clang++-15 \
    -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
    -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$ABSL_PREFIX" >/dev/null
  cmake --build "$TSAN_DIR/absl-build"
  cmake --install "$TSAN_DIR/absl-build" >/dev/null
}
if [ ! -f "$ABSL_PREFIX/lib/cmake/absl/abslConfig.cmake" ]; then
  phase tsan-abseil build_tsan_abseil
fi

echo "== ThreadSanitizer: the logic and its tests"
if [ ! -f "$TSAN_DIR/hips/build.ninja" ]; then
  cmake -S . -B "$TSAN_DIR/hips" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" \
    -DCMAKE_CXX_COMPILER=clang++-15 -DHIPS_LOGIC_ONLY=ON -DHIPS_SANITIZE=thread \
    -DCMAKE_PREFIX_PATH="$ABSL_PREFIX"
fi
phase tsan-build cmake --build "$TSAN_DIR/hips"
# The suppressions match function names: without clang-15's own symbolizer
# (Debian's llvm-15) they would silently match nothing.
SYMBOLIZER=/usr/lib/llvm-15/bin/llvm-symbolizer
[ -x "$SYMBOLIZER" ] || { echo "sanitizers: $SYMBOLIZER missing (Debian's llvm-15)"; exit 1; }
export TSAN_OPTIONS="suppressions=$ROOT/tests/tsan_suppressions.txt halt_on_error=1 second_deadlock_stack=1 external_symbolizer_path=$SYMBOLIZER"
tsan_tests() {
  (cd "$TSAN_DIR/hips" && ctest --output-on-failure --timeout 600 -j2)
  for t in time_test numeric_test core_test rounds_test aggregator_test hq_test worker_test \
      checkpoint_test; do
    "$TSAN_DIR/hips/tests/$t" --gtest_repeat=3 --gtest_brief=1 >/dev/null
  done
}
phase tsan-test tsan_tests

echo "== clang-15: -Werror=thread-safety, AddressSanitizer, UndefinedBehaviorSanitizer"
ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
configure_asan_tree "$ASAN_DIR"
phase asan-build cmake --build "$ASAN_DIR"
export ASAN_OPTIONS="detect_leaks=1 strict_string_checks=1 check_initialization_order=1 external_symbolizer_path=$SYMBOLIZER"
export UBSAN_OPTIONS="print_stacktrace=1 external_symbolizer_path=$SYMBOLIZER"
# The unit tests and the in-process clusters; not the clusters of separate
# processes (local_e2e, faults, cluster_security, elastic, noniid,
# Prometheus, the Python worker's, the attackers', the Compose cluster), the
# deployment checks nor the benchmarks.
# (The WAN testbed is a cluster of processes too.)
asan_tests() {
  (cd "$ASAN_DIR" && ctest --output-on-failure --timeout 900 -j2 -LE 'bench|docker|deploy|wan' \
    -E '^(local_e2e_test|faults_test|cluster_security_test|elastic_test|noniid_test|prometheus_test|python_worker_test|attack_test)')
}
phase asan-test asan_tests
echo "== the fuzzers"
phase fuzz env ASAN_BUILD_DIR="$ASAN_DIR" bash scripts/fuzz.sh
echo "sanitizers: all passed"
