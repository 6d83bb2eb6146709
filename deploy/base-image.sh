#!/usr/bin/env bash
# Makes the base image the Dockerfile starts from, debian:bookworm-slim, on
# a machine that cannot pull it (no registry reachable: air-gapped data
# centers, and the machines hips is developed on), from Debian's own
# packages: debootstrap --variant=minbase, then docker import.
#
#   deploy/base-image.sh [--force] [--mirror URL]
#
# Does nothing when the image exists (unless --force). Needs root (or
# sudo), debootstrap and a running Docker engine; takes about a minute.
# The mirror defaults to the one apt on this machine uses.
set -euo pipefail

image=debian:bookworm-slim
force=false
mirror=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=true ;;
    --mirror) mirror="${2:?--mirror needs a URL}"; shift ;;
    --mirror=*) mirror="${1#--mirror=}" ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "base-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
docker=${DOCKER:-docker}

if ! $docker info >/dev/null 2>&1; then
  echo "base-image.sh: no Docker engine answers (start dockerd first)" >&2
  exit 1
fi
if ! $force && $docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image is present"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "base-image.sh: needs debootstrap (apt-get install debootstrap)" >&2
  exit 1
}
if [ -z "$mirror" ]; then
  # The first deb.debian.org-style URI apt uses here (deb822 or one-line).
  mirror=$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' \
             /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null |
           grep -oE 'https?://[^ ]+' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

root=$(mktemp -d /tmp/hips-bookworm-XXXXXX)
trap '$sudo rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root"
$sudo debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2
  exit 1
}
rm -f "$root.log"
# What the official slim image trims: apt lists, caches, docs and man pages.
$sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
$sudo tar -C "$root" -c . | $docker import \
  --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "$image: $($docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
