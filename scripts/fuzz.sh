#!/usr/bin/env bash
# Builds kith's libFuzzer targets with clang-14 and runs each one for a
# while. docs/fuzzing.md describes the targets and what to do with a crash.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   seconds   how long each target fuzzes (default 60; 0 = only build)
#   target    fuzz_frame fuzz_message fuzz_signed fuzz_json_doc fuzz_config
#             fuzz_api_request fuzz_bundle fuzz_relay_message (default: all)
# Environment:
#   FUZZ_BUILD  build directory (default build-fuzz)
#   FUZZ_JOBS   targets fuzzed at the same time (default: nproc)
#
# Per target: first one pass over the committed inputs in
# fuzz/corpus/<target>/ (regressions), then fuzzing from the generated
# seeds (<build>/fuzz/seeds/<target>) and what earlier runs found
# (<build>/fuzz/work/<target>, kept between runs). Crashes are written to
# <build>/fuzz/artifacts/<target>/. Prints one line per target and exits 1
# if any target crashed or a regression input failed.
set -euo pipefail

cd "$(dirname "$0")/.."
all_targets=(fuzz_frame fuzz_message fuzz_signed fuzz_json_doc fuzz_config fuzz_api_request
             fuzz_bundle fuzz_relay_message)

seconds=60
if [ $# -gt 0 ]; then
  seconds=$1
  shift
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "fuzz.sh: seconds must be a whole number, got '$seconds'" >&2
  exit 2
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if ! printf '%s\n' "${all_targets[@]}" | grep -qx "$t"; then
    echo "fuzz.sh: unknown target '$t' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

build=${FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}

for tool in clang-14 clang++-14; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fuzz.sh: $tool not found; run scripts/install-deps.sh" >&2
    exit 1
  fi
done

if [ ! -f "$build/build.ninja" ]; then
  # -O1 with assertions (check_invariant) on: what libFuzzer recommends.
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DKITH_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g"
fi
cmake --build "$build" --target "${targets[@]}" fuzz_seeds

[ "$seconds" -eq 0 ] && exit 0

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

out="$build/fuzz"
mkdir -p "$out/logs"

# Runs one target; its summary line goes to $out/logs/<target>.line.
run_one() {
  local t=$1
  local work="$out/work/$t" art="$out/artifacts/$t" log="$out/logs/$t.log"
  local regress="fuzz/corpus/$t" status=ok regress_note="none"
  mkdir -p "$work" "$art"
  if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
    local n
    n=$(find "$regress" -type f | wc -l)
    if "$build/fuzz/$t" -runs=0 -timeout=25 -rss_limit_mb=2048 \
        -artifact_prefix="$art/regress-" "$regress" >"$out/logs/$t.regress.log" 2>&1; then
      regress_note="ok ($n inputs)"
    else
      regress_note="FAILED ($n inputs; see $out/logs/$t.regress.log)"
      status=fail
    fi
  fi
  local before
  before=$(find "$art" -maxdepth 1 -type f ! -name 'regress-*' | wc -l)
  local rc=0
  "$build/fuzz/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "$work" "$out/seeds/$t" >"$log" 2>&1 || rc=$?
  local after crashes
  after=$(find "$art" -maxdepth 1 -type f ! -name 'regress-*' | wc -l)
  crashes=$((after - before))
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes=1
  [ "$crashes" -ne 0 ] && status=fail
  local execs rate cov ft corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-17s %s  execs %s (%s/s)  cov %s  ft %s  corpus %s  crashes %s  regressions %s\n' \
    "$t" "$status" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes" \
    "$regress_note" >"$out/logs/$t.line"
  if [ "$crashes" -ne 0 ]; then
    {
      echo "  log: $log"
      grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written|fuzz invariant)' "$log" |
        sed 's/^/  /' | head -8
    } >>"$out/logs/$t.line"
  fi
}

echo "fuzz.sh: ${#targets[@]} target(s), ${seconds}s each, $jobs at a time (logs in $out/logs)"
running=0
for t in "${targets[@]}"; do
  rm -f "$out/logs/$t.line"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=0
for t in "${targets[@]}"; do
  if [ -f "$out/logs/$t.line" ]; then
    cat "$out/logs/$t.line"
    grep -q "^$t *fail" "$out/logs/$t.line" && failed=1
  else
    echo "$t: no result (see $out/logs/$t.log)"
    failed=1
  fi
done
exit $failed
