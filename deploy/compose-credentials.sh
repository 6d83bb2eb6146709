#!/usr/bin/env bash
# Makes the credentials of the Docker Compose cluster (deploy/docker-compose.yml)
# in deploy/secrets/, once: a cluster token, an admin token, and a private
# CA with one certificate per member (its id as common name, its role as
# organizational unit, the compose
# service names and 127.0.0.1 as subject alternative names) plus one for
# operators (cli). Every file belongs to the containers' user (uid 10001)
# and only it may read it: the daemons refuse token files others can read.
#
#   deploy/compose-credentials.sh [--force]
#
# Keeps existing credentials unless --force. Needs openssl; run as root (or
# with sudo) to give the files to uid 10001.
set -euo pipefail

dir="$(cd "$(dirname "$0")" && pwd)/secrets"
force=false
case "${1:-}" in
  "") ;;
  --force) force=true ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "compose-credentials.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac
if [ -f "$dir/ca.pem" ] && ! $force; then
  echo "deploy/secrets holds credentials already (--force makes new ones)"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

members=(hq aggregator:agg-0 aggregator:agg-1 worker:worker-0 worker:worker-1 worker:worker-2
  worker:worker-3 cli)
names="DNS:hq,DNS:aggregator-0,DNS:aggregator-1,DNS:worker-0,DNS:worker-1,DNS:worker-2"
names="$names,DNS:worker-3,DNS:localhost,IP:127.0.0.1"

$sudo rm -rf "$dir"
bash "$(dirname "$0")/make-pki.sh" "$dir" "hips compose CA" "$names" "${members[@]}"
$sudo chown -R 10001:10001 "$dir"
chmod 700 "$dir" 2>/dev/null || $sudo chmod 700 "$dir"
echo "deploy/secrets: tokens, ca.pem and certificates of ${members[*]#*:}"
