#!/bin/sh
# The churn experiment of docs/experiments.md ("Churn and watermark
# retirement"): kith-sim runs one scenario (Weibull churn, posts and
# deletes, permanent departures) once per retirement period, one run at a
# time, then draws the figures and a results table.
#
# Usage: sim/experiments/churn.sh
# Environment (all optional):
#   BUILD=build                      build dir holding sim/kith-sim
#   SCENARIO=sim/scenarios/churn-1k.toml
#   PERIODS="0 30 60 120 300"        retire_after_s values (0: never retire)
#   NODES=, DURATION=, SEED=         override the scenario's nodes, duration_s, seed
#   SAMPLE_S=30                      simulated seconds between rows of series.csv
#   OUT=out/churn                    one directory per period, plus churn.csv and table.md
#   FIGS=docs/experiments            where the PNGs go
#   TIMEOUT=0                        wall seconds per run before it is stopped (0: none)
#   RESUME=0                         1: keep a period whose run already finished in OUT
#                                    (its summary.json and exit code are there) and run
#                                    only the others; the table and figures cover all
#                                    PERIODS. Lets a long sweep continue after a stop, or
#                                    run as several sweeps at once (one per core, each
#                                    with its own PERIODS and the same OUT) and be drawn
#                                    together by a last RESUME=1 call with every period.
# Needs gnuplot (Debian: gnuplot-nox), jq and GNU time (/usr/bin/time).
# At 1,000 nodes each run takes a few wall minutes (docs/experiments.md).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
scenario=${SCENARIO:-$root/sim/scenarios/churn-1k.toml}
periods=${PERIODS:-0 30 60 120 300}
sample=${SAMPLE_S:-30}
out=${OUT:-$root/out/churn}
figs=${FIGS:-$root/docs/experiments}
timeout_s=${TIMEOUT:-0}
resume=${RESUME:-0}
exe=$build/sim/kith-sim
[ -x "$exe" ] || { echo "churn.sh: no $exe (cmake --build $build --target kith-sim)" >&2; exit 2; }
for tool in gnuplot jq /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "churn.sh: $tool not found (apt-get install -y gnuplot-nox jq time)" >&2; exit 2; }
done
[ -r "$scenario" ] || { echo "churn.sh: no scenario $scenario" >&2; exit 2; }
mkdir -p "$out" "$figs"

extra=""
[ -n "${NODES:-}" ] && extra="$extra --nodes $NODES"
[ -n "${DURATION:-}" ] && extra="$extra --duration $DURATION"
[ -n "${SEED:-}" ] && extra="$extra --seed $SEED"

echo "scenario $scenario; periods: $periods; writing to $out; figures to $figs"
for p in $periods; do
  d="$out/r$p"
  if [ "$resume" = 1 ] && [ -r "$d/summary.json" ] && [ -r "$d/exit_code" ]; then
    echo "  retire_after_s = $p: done before (exit $(cat "$d/exit_code")), kept"
    continue
  fi
  mkdir -p "$d"
  # The scenario with this retirement period; the trace file (if any) is
  # read relative to the scenario, so the copy sits beside the original.
  sc="$(dirname "$scenario")/.churn-r$p.toml"
  sed "s/^retire_after_s *=.*/retire_after_s = $p/" "$scenario" > "$sc"
  grep -q "^retire_after_s = $p\$" "$sc" || { echo "churn.sh: $scenario has no retire_after_s line" >&2; exit 2; }
  echo "  retire_after_s = $p: kith-sim $scenario$extra --out $d --sample-s $sample"
  run="$exe $sc$extra --out $d --sample-s $sample"
  [ "$timeout_s" -gt 0 ] && run="timeout $timeout_s $run"
  # Exit 1 (did not converge, or a checker failed) is a result, not an error.
  rc=0
  /usr/bin/time -v -o "$d/time.txt" $run > "$d/stdout.json" 2> "$d/stderr.log" || rc=$?
  rm -f "$sc"
  echo "$rc" > "$d/exit_code"
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$d/time.txt")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$d/time.txt")
  echo "    exit $rc, wall $wall, peak RSS $rss kB"
done

# One row per period (summary.json of each run).
csv="$out/churn.csv"
echo "retire_after_s,converged,convergence_s,messages,bytes,bytes_per_node,resyncs_new,resyncs_returning,resyncs_repeated,resync_bytes,retirements,kept_headers_churn_end,dot_map_entries_churn_end,members_churn_end,kept_records,kept_pruned,kept_still_held,kept_mean_s,kept_p50_s,kept_p90_s,resurrected,resurrected_departed_authors,departures,posts,deletes,wall_s,peak_rss_kb" > "$csv"
for p in $periods; do
  d="$out/r$p"
  [ -r "$d/summary.json" ] || { echo "churn.sh: $d/summary.json missing (see $d/stderr.log)" >&2; continue; }
  wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$d/time.txt" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$d/time.txt")
  jq -r --arg p "$p" --arg wall "$wall" --arg rss "$rss" '
    .membership as $m | ($m.kept_record_lifetime // {}) as $l |
    [ $p, .converged, (if .convergence_ms == null then "" else .convergence_ms / 1000 end),
      .messages, .bytes, $m.bytes_per_node, $m.resyncs_new_members, $m.resyncs_returning_members,
      $m.resyncs_repeated, $m.resync_bytes, $m.retirements, $m.at_churn_end.kept_headers,
      $m.at_churn_end.dot_map_entries, $m.at_churn_end.watermark_members,
      ($l.records // 0), ($l.pruned // 0), ($l.still_held // 0), ($l.mean_s // ""), ($l.p50_s // ""),
      ($l.p90_s // ""), .resurrected, $m.resurrected_of_departed_authors, .departures, .posts,
      .deletes, $wall, $rss ] | map(tostring) | join(",")' "$d/summary.json" >> "$csv"
done

# The series columns the figures use, by name (series.csv may gain columns).
for p in $periods; do
  d="$out/r$p"
  [ -r "$d/series.csv" ] || continue
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i
                     print "t_s,nodes_up,bytes,kept_headers,pairs_behind,dot_map_entries,retirements,resyncs,resync_bytes,settling"; next }
           { print $c["t_s"] "," $c["nodes_up"] "," $c["bytes"] "," $c["kept_headers"] "," $c["pairs_behind"] "," \
                   $c["dot_map_entries"] "," $c["retirements"] "," $c["resyncs"] "," $c["resync_bytes"] "," $c["settling"] }' \
    "$d/series.csv" > "$d/churn-series.csv"
done
gnuplot -e "dir='$out'; figs='$figs'; periods='$periods'" "$root/sim/experiments/plot_churn.gp"
ls -l "$figs"/churn-*.png

# The table of docs/experiments.md.
awk -F, 'NR == 1 { next }
  { printf "| %s | %s | %s | %.0f | %.2f | %d + %d + %d | %.1f | %d | %d | %d | %s / %s | %d of %d | %d (%d) | %s | %.0f |\n",
      ($1 == 0 ? "never" : $1 " s"), ($2 == "true" ? "yes" : "no"), ($3 == "" ? "-" : $3 " s"),
      $6 / 1000, $5 / 1e6, $7, $8, $9, $10 / 1e6, $11, $12, $13, ($18 == "" ? "-" : sprintf("%.0f", $18)), ($20 == "" ? "-" : sprintf("%.0f", $20)),
      $17, $15, $21, $22, $26, $27 / 1024 }' "$csv" > "$out/table.md"
echo "results table (docs/experiments.md): $out/table.md"
cat "$out/table.md"
