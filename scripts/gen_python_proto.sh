#!/usr/bin/env bash
# Regenerates worker/python/hips/hips_pb2.py from proto/hips/v1/hips.proto
# with Debian's protoc (the version python3-protobuf reads). With --check,
# only says whether the committed file is current (exit 1 if not).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
protoc -I"$top/proto/hips/v1" --python_out="$out" "$top/proto/hips/v1/hips.proto"
if [ "${1:-}" = "--check" ]; then
  if ! cmp -s "$out/hips_pb2.py" "$top/worker/python/hips/hips_pb2.py"; then
    echo "worker/python/hips/hips_pb2.py is stale: run scripts/gen_python_proto.sh" >&2
    exit 1
  fi
  exit 0
fi
cp "$out/hips_pb2.py" "$top/worker/python/hips/hips_pb2.py"
