#!/bin/sh
# Runs the causality-scheme experiment matrix (docs/experiments.md) and
# draws the comparison figures:
#   schemes {ndc, dvv, vv} x RF {3, 6} x sync interval {100 ms, 10 s}
#   x push loss {0.2, 1.0}, one seed, the same workload for every scheme.
#
# Usage: sim/experiments/run.sh
# Environment (all optional):
#   BUILD=build            build dir holding sim/experiments/kith-causality-exp
#   OUT=out/experiments    one subdirectory per configuration, plus matrix.csv
#   FIGS=docs/experiments  where the comparison PNGs go
#   SEED=20261122          seed of the workload and fault schedule
#   JOBS=2                 configurations run at once
# Needs gnuplot (Debian: gnuplot-nox). About a minute on 2 cores.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
out=${OUT:-$root/out/experiments}
figs=${FIGS:-$root/docs/experiments}
seed=${SEED:-20261122}
jobs=${JOBS:-2}
exe=$build/sim/experiments/kith-causality-exp
[ -x "$exe" ] || { echo "run.sh: no $exe (cmake --build $build --target kith-causality-exp)" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 || { echo "run.sh: gnuplot not found (apt-get install -y gnuplot-nox)" >&2; exit 2; }
mkdir -p "$out" "$figs"

# The workload every configuration shares (see docs/experiments.md).
common="--seed $seed --keys 4000 --zipf 0.8 --writes-per-s 25 --delete-share 0.25 --value-bytes 64 --duration-ms 600000 --heal-max-ms 600000 --sample-ms 5000 --merkle-leaves 256 --merkle-fanout 16"

echo "seed $seed; writing to $out; figures to $figs"
for rf in 3 6; do
  for t in 100 10000; do
    for loss in 0.2 1.0; do
      echo "$rf $t $loss"
    done
  done
done | xargs -P "$jobs" -L 1 sh -c '
  out=$1 exe=$2 rf=$3 t=$4 loss=$5
  d="$out/rf$rf-T$t-loss$loss"
  echo "  kith-causality-exp '"$common"' --rf $rf --sync-ms $t --loss $loss --out $d --plots"
  "$exe" '"$common"' --rf "$rf" --sync-ms "$t" --loss "$loss" --out "$d" --plots > "$d.log" 2>&1 ||
    { echo "run.sh: configuration $d failed, see $d.log" >&2; exit 255; }
' sh "$out" "$exe"

# One table of every configuration's totals.
first=1
for f in "$out"/rf*-T*-loss*/totals.csv; do
  if [ $first = 1 ]; then head -n 1 "$f"; first=0; fi
  tail -n +2 "$f"
done > "$out/matrix.csv"

# Stacked-bar inputs: per (T, loss), rows "scheme RF, data, key_meta, sync_meta".
for t in 100 10000; do
  for loss in 0.2 1.0; do
    # matrix.csv lists rf3 before rf6 and ndc, dvv, vv within each run.
    awk -F, -v t="$t" -v l="$loss" 'NR > 1 && $3 == t && $4 + 0 == l + 0 {
      printf "rf%s %s,%s,%s,%s\n", $2, $1, $6, $7, $8 }' "$out/matrix.csv" > "$out/traffic-T$t-loss$loss.csv"
  done
done

gnuplot -e "dir='$out'; figs='$figs'" "$root/sim/experiments/plot_matrix.gp"
ls -l "$figs"/*.png

# The results table of docs/experiments.md: scheme, RF, sync interval, loss,
# anti-entropy MB during the write phase (data, per-key metadata, sync
# metadata), push MB, repair p50/p99 ms, ndc strip p50/p99 ms (all
# metadata gone everywhere), objects/live keys per replica at the end,
# per-key metadata bytes per live key at the end.
awk -F, 'NR == 1 { next }
  { printf "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %s / %s | %s | %.0f / %.0f | %.1f |\n",
      $1, $2, ($3 == 100 ? "100 ms" : "10 s"), $4, $6 / 1e6, $7 / 1e6, $8 / 1e6, $9 / 1e6,
      $10, $12, ($1 == "ndc" ? $16 " / " $18 : "never"), $20, $21, $23 }' "$out/matrix.csv" > "$out/table.md"
echo "results table (docs/experiments.md): $out/table.md"
cat "$out/table.md"
