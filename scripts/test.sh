#!/usr/bin/env bash
# Every test from nothing: installs the Debian packages, builds, runs ctest,
# then the sanitizer runs (scripts/sanitizers.sh: clang thread-safety,
# ASan+UBSan, TSan; HIPS_SANITIZERS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900 -j2)
if [ "${HIPS_SANITIZERS:-1}" != "0" ]; then
  bash scripts/sanitizers.sh
fi
