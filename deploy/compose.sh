#!/usr/bin/env bash
# The Docker Compose cluster of deploy/docker-compose.yml, from nothing
# (docs/deploy.md):
#
#   deploy/compose.sh up [--prebuilt]    start dockerd when none answers, make the base image
#                                        (deploy/base-image.sh) and the credentials
#                                        (deploy/compose-credentials.sh), build the images,
#                                        start the cluster, wait for HQ's final evaluation
#                                        and print it with `hips status`
#   deploy/compose.sh images [--prebuilt]  only build the three images
#   deploy/compose.sh status             `hips status` inside HQ's container
#   deploy/compose.sh down               remove the containers, network and volumes
#
# The images compile hips in a build stage; --prebuilt copies build/bin
# (scripts/build.sh) instead. Needs root (or sudo) for dockerd and
# debootstrap: scripts/setup.sh installs docker.io, docker-compose and
# debootstrap.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# Debian's client matches Debian's engine, and builds with BuildKit without
# the buildx plugin.
docker=docker
[ -x /usr/bin/docker ] && docker=/usr/bin/docker
compose=(docker-compose -f "$here/docker-compose.yml")
cli_credentials=(--token_file=/run/secrets/cluster.token --tls_ca=/run/secrets/ca.pem
                 --tls_cert=/run/secrets/cli.pem --tls_key=/run/secrets/cli.key)

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

ensure_engine() {
  $docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || {
    echo "compose.sh: no Docker engine: bash scripts/setup.sh installs docker.io" >&2
    exit 1
  }
  echo "starting dockerd (log: /var/log/hips-dockerd.log)"
  nohup dockerd >/var/log/hips-dockerd.log 2>&1 &
  for _ in $(seq 90); do
    $docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "compose.sh: dockerd did not answer within 90 s (see /var/log/hips-dockerd.log)" >&2
  exit 1
}

# --prebuilt or nothing: "source" or "prebuilt". Checked before anything starts.
binaries_of() {
  case "${1:-}" in
    "") echo source ;;
    --prebuilt) echo prebuilt ;;
    *) echo "compose.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
}

images() {
  local binaries=$1
  bash "$here/base-image.sh"
  for target in aggregator torch prometheus; do
    echo "building hips-$target (binaries: $binaries)"
    DOCKER_BUILDKIT=1 $docker build -q -f "$here/Dockerfile" --build-arg "BINARIES=$binaries" \
      --target "$target" -t "hips-$target" "$root" >/dev/null
    $docker image inspect -f "hips-$target: {{.Size}} bytes" "hips-$target"
  done
}

status() {
  "${compose[@]}" exec -T hq hips status --hq=127.0.0.1:7000 "${cli_credentials[@]}"
}

case "${1:-}" in
  up)
    binaries=$(binaries_of "${2:-}")
    ensure_engine
    images "$binaries"
    bash "$here/compose-credentials.sh"
    "${compose[@]}" up -d --no-build
    echo "training; HQ's log: docker-compose -f deploy/docker-compose.yml logs -f hq"
    for _ in $(seq 720); do  # at most an hour
      final=$("${compose[@]}" logs --no-color hq | grep -o 'eval version=.*(final)' || true)
      if [ -n "$final" ]; then
        echo "HQ: $final"
        status
        exit 0
      fi
      sleep 5
    done
    echo "compose.sh: no final evaluation in HQ's log after an hour" >&2
    exit 1
    ;;
  images) binaries=$(binaries_of "${2:-}"); ensure_engine; images "$binaries" ;;
  status) status ;;
  down) "${compose[@]}" down -v --remove-orphans ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac
