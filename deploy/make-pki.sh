#!/usr/bin/env bash
# The credentials of one hips cluster, in DIR: a cluster token, an admin
# token, and a private CA with one certificate per member (the member's id as
# common name and, for a MEMBER written ROLE:ID, its role, worker or
# aggregator, as organizational unit: servers take a member's data calls
# only in its role; every certificate carries all of SANS, comma-separated
# openssl subjectAltName entries). The CA's key is not kept: nobody can add
# a member without making new credentials. Files are owner-only (umask 077).
#
#   deploy/make-pki.sh DIR "CA NAME" SANS [ROLE:]MEMBER...
#
# Used by deploy/compose-credentials.sh and deploy/k8s/credentials.sh. Needs
# openssl.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "make-pki.sh: usage: make-pki.sh DIR \"CA NAME\" SANS MEMBER..." >&2
  exit 2
fi
dir=$1 ca_name=$2 sans=$3
shift 3
command -v openssl >/dev/null || { echo "make-pki.sh: needs openssl" >&2; exit 1; }
for m in "$@"; do
  [[ "$m" =~ ^((worker|aggregator):)?[A-Za-z0-9._-]+$ ]] ||
    { echo "make-pki.sh: bad member '$m' (ID or ROLE:ID, ROLE worker or aggregator)" >&2; exit 2; }
done

mkdir -p "$dir"
chmod 700 "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
openssl rand -hex 32 >"$dir/cluster.token"
openssl rand -hex 32 >"$dir/admin.token"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=$ca_name" -keyout "$work/ca.key" -out "$dir/ca.pem" 2>/dev/null
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans" >"$work/ext.cnf"
for member in "$@"; do
  m=${member#*:} subject="/CN=${member#*:}"
  if [[ "$member" == *:* ]]; then subject="/OU=${member%%:*}$subject"; fi
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$dir/$m.key" -out "$work/$m.csr" 2>/dev/null
  openssl x509 -req -in "$work/$m.csr" -CA "$dir/ca.pem" -CAkey "$work/ca.key" \
    -CAserial "$work/ca.srl" -CAcreateserial -days 365 -extfile "$work/ext.cnf" -out "$dir/$m.pem" 2>/dev/null
done
