#!/usr/bin/env bash
# Installs every Debian 12 package that building, running and testing hips need.
# Idempotent and non-interactive; safe to run again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libgoogle-glog-dev libgtest-dev libgmock-dev
  libtorch-dev libopenblas0-pthread
  python3-torch python3-matplotlib python3-grpcio python3-protobuf
  prometheus-cpp-dev prometheus chromium fonts-dejavu-core
  dataset-fashion-mnist
  zlib1g-dev nlohmann-json3-dev libsodium-dev
  clang-15 llvm-15 curl openssl
  docker.io docker-compose debootstrap
  iproute2 iputils-ping
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The Kubernetes manifests' offline check (deploy/k8s/check.sh) needs kubectl,
# node and npm: Debian's, unless the machine has them from elsewhere already
# (another kubectl or Node.js package would conflict with Debian's).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present, and kubectl, node and npm"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
