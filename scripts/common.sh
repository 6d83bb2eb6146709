# shellcheck shell=bash
# Sourced by the scripts that build and test (test.sh, sanitizers.sh,
# fuzz.sh); defines functions only.

# `phase NAME CMD...` runs CMD and records how long it took in $HIPS_PHASES
# (one "name seconds" line per phase; default build/phases.txt), so that a
# CI log ends with where its time went (docs/testing.md); `phase_report`
# prints the table.
HIPS_PHASES=${HIPS_PHASES:-$(pwd)/build/phases.txt}
export HIPS_PHASES

phase() {
  local name=$1
  shift
  local start=$SECONDS
  echo "== phase $name"
  "$@"
  local took=$((SECONDS - start))
  mkdir -p "$(dirname "$HIPS_PHASES")"
  echo "$name $took" >>"$HIPS_PHASES"
  echo "== phase $name: ${took} s"
}

phase_report() {
  [ -f "$HIPS_PHASES" ] || return 0
  awk '{ printf "%-16s %6d s\n", $1, $2; total += $2 }
       END { printf "%-16s %6d s (%.1f min)\n", "total", total, total / 60 }' "$HIPS_PHASES"
}

# The clang tree of the memory checks and the fuzzers (configured once):
# clang-15 with -Werror=thread-safety over every target, AddressSanitizer
# and UndefinedBehaviorSanitizer, the fuzzers' coverage instrumentation;
# -O1 with line tables only (what a sanitizer's report needs: function,
# file and line), the tests' own sources at -O0 (CMakeLists.txt, hips_test).
configure_asan_tree() {
  local dir=$1
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DCMAKE_CXX_COMPILER=clang++-15 \
      -DHIPS_THREAD_SAFETY=ON -DHIPS_SANITIZE=address,undefined -DHIPS_FUZZ=ON
  fi
}
