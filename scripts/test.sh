#!/usr/bin/env bash
# Every test from nothing: installs the Debian packages, builds, runs ctest,
# then the sanitizer runs (scripts/sanitizers.sh: clang thread-safety,
# ASan+UBSan, TSan, the fuzzers; HIPS_SANITIZERS=0 skips them). Each phase's
# time goes to build/phases.txt and the table ends the log (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
source scripts/common.sh
rm -f "$HIPS_PHASES"
run_ctest() { (cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900 -j2); }
phase setup bash scripts/setup.sh
phase build bash scripts/build.sh
phase ctest run_ctest
if [ "${HIPS_SANITIZERS:-1}" != "0" ]; then
  bash scripts/sanitizers.sh
fi
echo "== where the time went"
phase_report
