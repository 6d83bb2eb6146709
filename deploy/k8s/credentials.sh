#!/usr/bin/env bash
# Makes the credentials of the Kubernetes base (deploy/k8s, docs/deploy.md)
# in deploy/k8s/secrets/, with the kustomization that turns them into one
# Secret per tier (each tier mounts only its own members' keys):
#
#   hips-hq-credentials           tokens, CA, hq, probe
#   hips-aggregator-credentials   cluster token, CA, hips-aggregator-K, probe
#   hips-worker-credentials       cluster token, CA, worker-K, probe
#   hips-operator-credentials     tokens, CA, cli (not mounted: for hips status
#                                 and hips mode through kubectl port-forward)
#
# Certificates name the pods' stable DNS names (hips-hq-0.hips-hq,
# hips-aggregator-K.hips-aggregator), localhost and 127.0.0.1 (the probes).
#
#   deploy/k8s/credentials.sh [--aggregators=A] [--workers=W] [--force]
#
# A and W (default 2 and 4) must match the base's replicas and completions.
# Keeps existing credentials unless --force. Needs openssl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dir=$here/secrets
aggregators=2 workers=4 force=false
for arg in "$@"; do
  case "$arg" in
    --aggregators=*) aggregators=${arg#*=} ;;
    --workers=*) workers=${arg#*=} ;;
    --force) force=true ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "credentials.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$aggregators" "$workers"; do
  [[ "$n" =~ ^[1-9][0-9]{0,2}$ ]] || {
    echo "credentials.sh: --aggregators and --workers take a count in [1, 999], got '$n'" >&2
    exit 2
  }
done
if [ -f "$dir/ca.pem" ] && ! $force; then
  echo "deploy/k8s/secrets holds credentials already (--force makes new ones)"
  exit 0
fi

members=(hq probe cli)
names="DNS:hips-hq,DNS:hips-hq-0.hips-hq,DNS:localhost,IP:127.0.0.1"
aggregator_files=() worker_files=()
for ((k = 0; k < aggregators; k++)); do
  members+=("aggregator:hips-aggregator-$k")
  names="$names,DNS:hips-aggregator-$k.hips-aggregator"
  aggregator_files+=("hips-aggregator-$k.pem" "hips-aggregator-$k.key")
done
for ((k = 0; k < workers; k++)); do
  members+=("worker:worker-$k")
  worker_files+=("worker-$k.pem" "worker-$k.key")
done

rm -rf "$dir"
bash "$here/../make-pki.sh" "$dir" "hips kubernetes CA" "$names" "${members[@]}"

# One Secret per tier, from the files just made.
secret() {
  local name=$1
  shift
  printf -- '- name: %s\n  type: Opaque\n  files:\n' "$name"
  printf -- '  - %s\n' "$@"
}
{
  echo "# Made by deploy/k8s/credentials.sh; made again by it, not by hand."
  echo "secretGenerator:"
  secret hips-hq-credentials ca.pem cluster.token admin.token hq.pem hq.key probe.pem probe.key
  secret hips-aggregator-credentials ca.pem cluster.token "${aggregator_files[@]}" \
    probe.pem probe.key
  secret hips-worker-credentials ca.pem cluster.token "${worker_files[@]}" probe.pem probe.key
  secret hips-operator-credentials ca.pem cluster.token admin.token cli.pem cli.key
} >"$dir/kustomization.yaml"
echo "deploy/k8s/secrets: tokens, ca.pem and certificates of ${members[*]#*:}"
