#!/usr/bin/env bash
# Checks the Kubernetes manifests offline (docs/deploy.md): renders the
# kustomization with kubectl, validates every object against the Kubernetes
# API schemas (npm package kubernetes-models, installed once into
# build/k8s-check from the npm registry), runs every container's command
# line and exec probe through its binary with --check_flags, and checks that
# the tiers agree (deploy/k8s/check/check.py).
#
#   deploy/k8s/check.sh [--bin=DIR] [KUSTOMIZATION]
#
# DIR: the hips binaries (default build/bin, scripts/build.sh makes them).
# KUSTOMIZATION: default deploy/k8s; an overlay of yours works too. Makes
# the base's credentials (credentials.sh) when there are none yet. Needs
# kubectl, nodejs with npm, and python3-yaml.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/build/bin
kustomization=$here
for arg in "$@"; do
  case "$arg" in
    --bin=*) bin=${arg#*=} ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    *) kustomization=$arg ;;
  esac
done
for tool in kubectl node npm python3; do
  command -v "$tool" >/dev/null || {
    echo "check.sh: needs $tool (bash scripts/setup.sh installs it)" >&2
    exit 1
  }
done
[ -x "$bin/hips-hq" ] || { echo "check.sh: no hips binaries in $bin (scripts/build.sh)" >&2; exit 1; }
[ -f "$here/secrets/kustomization.yaml" ] || bash "$here/credentials.sh"

# kubernetes-models, pinned by the lock file; installed again only when the
# lock changes.
modules=${HIPS_K8S_CHECK_DIR:-$root/build/k8s-check}
mkdir -p "$modules"
if ! cmp -s "$here/check/package-lock.json" "$modules/package-lock.json" ||
   [ ! -d "$modules/node_modules/kubernetes-models" ]; then
  cp "$here/check/package.json" "$here/check/package-lock.json" "$modules/"
  (cd "$modules" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec /usr/bin/python3 "$here/check/check.py" --bin="$bin" --kustomize="$kustomization" \
  --node_modules="$modules/node_modules"
