#!/usr/bin/env bash
# The benchmark suite: one command runs the named workloads in sequence and
# writes every figure, with the machine it ran on, into ONE JSON file, then
# prints a table of figure vs baseline vs target (docs/benchmarks.md, "The
# suite: one command").
#
#   scripts/bench.sh [--quick] [--only name,name] [--out FILE] [--build DIR]
#                    [--seed S] [--keep-logs] [--list] [--help]
#
# Workloads: signed_writes replication anti_entropy relay sim idle_follows
# cold_start channel sim_floor. Exit status: 0 when every workload ran and verified; 1 when
# one failed or did not verify (the JSON is still written, with that
# workload's "verified": false); 2 on bad arguments or missing programs.
set -u -o pipefail

ALL_WORKLOADS=(signed_writes replication anti_entropy relay sim idle_follows cold_start channel sim_floor)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-build}"
QUICK=0
ONLY=""
OUT=""
SEED=""

usage() {
  cat <<EOF
usage: scripts/bench.sh [options]
  --quick           small sizes (a minute or two in all)
  --only a,b        run only these workloads (default: all), in suite order
  --out FILE        the JSON file (default out/bench/bench-<UTC date and time>.json)
  --build DIR       the build directory holding the programs (default \$BUILD or build)
  --seed S          passed to every workload (default: each program's own, 20261122)
  --list            print the workload names and exit
  --help            this text
workloads: ${ALL_WORKLOADS[*]}
Each workload's progress (stderr) goes to the log file next to the JSON
(same name, .log).
EOF
}

die() { echo "bench.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --only) [ $# -ge 2 ] || die "--only needs a comma-separated list of workloads"; ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    --out) [ $# -ge 2 ] || die "--out needs a file name"; OUT="$2"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    --build) [ $# -ge 2 ] || die "--build needs a directory"; BUILD="$2"; shift ;;
    --build=*) BUILD="${1#--build=}" ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a number"; SEED="$2"; shift ;;
    --seed=*) SEED="${1#--seed=}" ;;
    --list) printf '%s\n' "${ALL_WORKLOADS[@]}"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

if [ -n "$SEED" ] && ! [[ "$SEED" =~ ^[0-9]+$ ]]; then
  die "--seed needs a non-negative integer, not '$SEED'"
fi
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
[ -d "$BUILD" ] || die "no build directory $BUILD (configure and build first, or pass --build DIR)"
command -v python3 >/dev/null || die "python3 is needed to assemble the JSON file"

# The selection, in suite order; unknown names are refused.
SELECTED=()
if [ -z "$ONLY" ]; then
  SELECTED=("${ALL_WORKLOADS[@]}")
else
  IFS=',' read -r -a asked <<<"$ONLY"
  [ ${#asked[@]} -gt 0 ] || die "--only got an empty list"
  for a in "${asked[@]}"; do
    found=0
    for w in "${ALL_WORKLOADS[@]}"; do [ "$a" = "$w" ] && found=1; done
    [ $found = 1 ] || die "unknown workload '$a' (workloads: ${ALL_WORKLOADS[*]})"
  done
  for w in "${ALL_WORKLOADS[@]}"; do
    for a in "${asked[@]}"; do
      if [ "$a" = "$w" ]; then SELECTED+=("$w"); break; fi
    done
  done
fi

B="$BUILD/bench"
SIM="$BUILD/sim/kith-sim"
SCENARIO="$ROOT/bench/scenarios/sim-throughput" # .toml, or -quick.toml
seed_args=()
[ -n "$SEED" ] && seed_args=(--seed "$SEED")
q() { [ $QUICK = 1 ] && printf '%s\n' "$@"; }

# The command of each workload (bounded sizes; --quick shrinks them).
workload_cmd() {
  case "$1" in
    signed_writes) CMD=("$B/kith-bench-storage" --case signed_writes $(q --quick) "${seed_args[@]}") ;;
    replication)   CMD=("$B/kith-bench-replication" --peers 0 $(q --quick) "${seed_args[@]}") ;;
    anti_entropy)  CMD=("$B/kith-bench-causality" --case ae_round $(q --quick) "${seed_args[@]}") ;;
    relay)         CMD=("$B/kith-bench-relay" $(q --quick) "${seed_args[@]}") ;;
    sim)           CMD=("$SIM" "$SCENARIO$([ $QUICK = 1 ] && echo -quick).toml" "${seed_args[@]}") ;;
    idle_follows)  CMD=("$B/kith-bench-replication" --n 0 $(q --quick) "${seed_args[@]}") ;;
    cold_start)    CMD=("$B/kith-bench-coldstart" $(q --quick) "${seed_args[@]}") ;;
    channel)       CMD=("$B/kith-bench-channel" $(q --quick) "${seed_args[@]}") ;;
    sim_floor)     CMD=("$B/kith-bench-sim-floor" $(q --quick) "${seed_args[@]}") ;;
  esac
}

# Every program must exist before anything runs.
missing=()
for w in "${SELECTED[@]}"; do
  workload_cmd "$w"
  [ -x "${CMD[0]}" ] || missing+=("${CMD[0]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: missing programs:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "build them: cmake --build $BUILD -j2 --target kith-bench-storage kith-bench-replication kith-bench-causality kith-bench-relay kith-bench-coldstart kith-bench-channel kith-bench-sim-floor kith-sim" >&2
  exit 2
fi
[ -x /usr/bin/time ] || echo "bench.sh: /usr/bin/time missing: the simulator's peak RSS will be null" >&2

STAMP="$(date -u +%Y-%m-%dT%H%M%SZ)"
[ -n "$OUT" ] || OUT="$ROOT/out/bench/bench-$STAMP.json"
mkdir -p "$(dirname "$OUT")" || die "cannot create the directory of $OUT"
LOG="${OUT%.json}.log"
: >"$LOG" || die "cannot write $LOG"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kith-bench-suite.XXXXXX")" || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT

{
  echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//')"
  echo "mem_total_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "git_rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "git_dirty=$([ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)"
  echo "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)"
  echo "compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$WORK/machine"

n=${#SELECTED[@]}
i=0
suite_t0=$(date +%s.%N)
for w in "${SELECTED[@]}"; do
  i=$((i + 1))
  workload_cmd "$w"
  printf -v cmdline '%q ' "${CMD[@]}"
  cmdline="${cmdline% }"
  echo "[$i/$n] $w: $cmdline" >&2
  echo "=== $w: $cmdline" >>"$LOG"
  t0=$(date +%s.%N)
  if [ "$w" = sim ]; then
    # Baseline in the same run: every signature checked at every node
    # (--no-verify-memo); same trace, so the same messages.
    echo "=== sim baseline: $cmdline --no-verify-memo" >>"$LOG"
    "${CMD[@]}" --no-verify-memo >"$WORK/sim.base.out" 2>>"$LOG" || true
  fi
  if [ "$w" = sim ] && [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M %e' -o "$WORK/$w.time" "${CMD[@]}" >"$WORK/$w.out" 2>>"$LOG"
  else
    "${CMD[@]}" >"$WORK/$w.out" 2>>"$LOG"
  fi
  rc=$?
  t1=$(date +%s.%N)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\n%s\n%s\n' "$cmdline" "$rc" "$wall" >"$WORK/$w.meta"
  if [ $rc = 0 ]; then
    echo "[$i/$n] $w: exit 0 in $wall s" >&2
  else
    echo "[$i/$n] $w: FAILED with exit status $rc after $wall s (last lines of its log):" >&2
    tail -n 5 "$LOG" | sed 's/^/    /' >&2
  fi
done
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/machine"
suite_wall=$(awk -v a="$suite_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

python3 "$ROOT/bench/suite_collect.py" --work "$WORK" --out "$OUT" --log "$LOG" \
  --quick "$QUICK" --wall "$suite_wall" --workloads "${SELECTED[@]}"
