#!/usr/bin/env bash
# Accuracy against samples and wall-clock for each consistency mode, with and
# without a straggler, on `hips local` (docs/modes.md holds a run's table).
#
#   bench/modes_table.sh [--quick] [OUT_DIR]
#   bench/modes_table.sh --from OUT_DIR   (the table of earlier runs' logs)
#
# Runs are sequential (each one uses both cores). Without a straggler the
# default budget (10 epochs) is used; with worker 0 slowed 10x, 2 epochs.
# --quick: 1 epoch / 0.5 epoch, for a smoke test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
quick=0; from=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; shift; fi
if [[ "${1:-}" == "--from" ]]; then from=1; shift; fi
out="${1:-$(mktemp -d /tmp/hips-modes-XXXXXX)}"
mkdir -p "$out"
hips="$root/build/bin/hips"
[[ $from == 1 || -x "$hips" ]] || { echo "build first: scripts/build.sh" >&2; exit 1; }

epochs_clean=10; epochs_straggler=2
if [[ $quick == 1 ]]; then epochs_clean=1; epochs_straggler=0.5; fi
straggler="--slow_workers=0 --slowdown=10"
backup="--backup_workers=1"

# name | flags
configs=(
  "sync|--epochs=$epochs_clean"
  "sync+backup|--epochs=$epochs_clean $backup"
  "async|--epochs=$epochs_clean --mode=async"
  "ssp(2)|--epochs=$epochs_clean --mode=ssp --staleness=2"
  "sync, straggler|--epochs=$epochs_straggler $straggler"
  "sync+backup, straggler|--epochs=$epochs_straggler $backup $straggler"
  "async, straggler|--epochs=$epochs_straggler --mode=async $straggler"
  "ssp(2), straggler|--epochs=$epochs_straggler --mode=ssp --staleness=2 $straggler"
)

# From the progress lines: the first line at or past each fifth of the
# samples, as "accuracy@seconds" (accuracy of HQ's latest evaluation).
summarize() {
  awk -v budget="$2" '
    /^\[/ {
      t = $1 $2; gsub(/[\[\]s ]/, "", t)
      acc = "n/a"; samples = 0
      for (i = 1; i <= NF; ++i) {
        if ($i ~ /^accuracy=/) { acc = substr($i, 10) }
        if ($i ~ /^samples=/) { samples = substr($i, 9) + 0 }
      }
      for (k = 1; k <= 5; ++k) {
        if (!(k in at) && samples >= budget * k / 5 * 0.999) at[k] = acc "@" t "s"
      }
    }
    /^final:/ { final = $0 }
    END {
      line = ""
      for (k = 1; k <= 5; ++k) line = line " | " ((k in at) ? at[k] : "-")
      split(final, f, " ")
      for (i in f) {
        if (f[i] ~ /^accuracy=/) facc = substr(f[i], 10)
        if (f[i] ~ /^seconds=/) fsec = substr(f[i], 9)
      }
      printf "%s | %s | %s", line, facc, fsec
    }' "$1"
}

echo "| run | 20% | 40% | 60% | 80% | 100% | final accuracy | seconds | samples/s | refused by aggregators | dropped at HQ |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for entry in "${configs[@]}"; do
  name="${entry%%|*}"; flags="${entry#*|}"
  slug="$(echo "$name" | tr -c 'a-z0-9+\n' '_')"
  file="$out/$slug.log"
  mkdir -p "$out/$slug"
  if [[ $from == 1 && ! -f "$file.json" ]]; then continue; fi
  if [[ $from == 0 ]]; then
    # shellcheck disable=SC2086
    "$hips" local $flags --progress_seconds=1 --summary_json="$file.json" --run_dir="$out/$slug" \
      > "$file" 2>&1
  fi
  samples=$(grep -o '"samples": [0-9]*' "$file.json" | grep -o '[0-9]*$')
  seconds=$(grep -o '"seconds": [0-9.]*' "$file.json" | grep -o '[0-9.]*$')
  dropped=$(grep -o '^gradients: .*' "$file" | grep -o 'dropped{[^}]*}' | sed 's/dropped{//; s/}//')
  rate=$(awk -v s="$samples" -v t="$seconds" 'BEGIN { printf "%.0f", s / t }')
  # Each worker logs "(N gradients refused)" when training is done.
  refused=$(cat "$out/$slug"/worker-*.log 2>/dev/null |
            grep -o '([0-9]* gradients refused)' | grep -o '[0-9]*' | awk '{ n += $1 } END { print n + 0 }')
  echo "| $name$(summarize "$file" "$samples") | $rate | $refused | ${dropped:-0} |"
done
echo
echo "(cells: test accuracy of HQ's latest evaluation @ wall-clock seconds, at each fifth of the samples; logs in $out)"
