#!/usr/bin/env bash
# The main job from nothing: installs the Debian packages, builds, and runs
# `hips local` (1 HQ, 2 aggregators, 4 workers on 127.0.0.1 training
# Fashion-MNIST). Extra arguments go to `hips local`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec "${BUILD_DIR:-build}/bin/hips" local "$@"
