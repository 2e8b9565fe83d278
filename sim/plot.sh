#!/bin/sh
# Draws PNG plots of a kith-sim run's time series (docs/simulation.md).
# Usage: sim/plot.sh DIR    (DIR holds series.csv from kith-sim --out DIR)
# Writes DIR/nodes.png, DIR/traffic.png, DIR/messages_by_kind.png,
# DIR/convergence.png, DIR/kept_headers.png. Needs gnuplot (Debian: gnuplot-nox).
set -eu
dir=${1:?usage: sim/plot.sh DIR (with DIR/series.csv from kith-sim --out DIR)}
csv="$dir/series.csv"
[ -r "$csv" ] || { echo "plot.sh: no $csv (run kith-sim with --out $dir)" >&2; exit 2; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 2; }
[ "$(wc -l < "$csv")" -ge 2 ] || { echo "plot.sh: $csv has no rows" >&2; exit 2; }

# Columns (header of series.csv): 1 t_s, 2 nodes_up, 3 messages, 4 bytes,
# 5 messages_per_s, 6 bytes_per_s, 7 held_sends, 8 open_connection_ends,
# 9 kept_headers, 10 pairs_behind, 11 posts, 12 deletes, 13 kv_writes,
# 14 settling (1 after the workload and faults stopped), 15-19 membership
# and resyncs, then per simulated second: 20 rounds, 21 keepalives,
# 22 pushes, 23 resync messages, 24 connection set-up, 25 other protocol
# messages, 26 relay requests.
gnuplot <<GP
set datafile separator ","
set key autotitle columnhead
set terminal pngcairo size 900,420 noenhanced
set xlabel "simulated time (s)"
set grid
set key left top

set output "$dir/nodes.png"
set title "nodes up and open connection ends"
plot "$csv" using 1:2 with lines lw 2 title "nodes up", \
     "" using 1:(\$8/2) with lines lw 1 title "open connections"

set output "$dir/traffic.png"
set title "network traffic per simulated second"
set ylabel "messages/s"
set y2label "bytes/s"
set y2tics
plot "$csv" using 1:5 with lines lw 2 title "messages/s" axes x1y1, \
     "" using 1:6 with lines lw 1 title "bytes/s" axes x1y2
unset y2tics
unset y2label

set output "$dir/messages_by_kind.png"
set title "messages per simulated second, by kind"
set ylabel "messages/s"
plot "$csv" using 1:20 with lines lw 2 title "anti-entropy rounds", \
     "" using 1:21 with lines lw 1 title "keepalives", \
     "" using 1:22 with lines lw 1 title "pushes", \
     "" using 1:23 with lines lw 1 title "resyncs", \
     "" using 1:24 with lines lw 1 title "connection set-up", \
     "" using 1:26 with lines lw 1 title "relay requests"

set output "$dir/convergence.png"
set title "follow pairs not converged (follower lacks or has extra posts of its author)"
set ylabel "pairs"
plot "$csv" using 1:10 with steps lw 2 title "pairs behind", \
     "" using 1:(\$14*column(10)) with impulses lc rgb "#bbbbbb" title "after the workload"

set output "$dir/kept_headers.png"
set title "delete and overwrite records kept (all replicas)"
set ylabel "headers"
plot "$csv" using 1:9 with lines lw 2 title "kept headers", \
     "" using 1:(\$12+\$13) with lines lw 1 title "deletes + kv writes so far"
GP
echo "plot.sh: wrote $dir/nodes.png $dir/traffic.png $dir/messages_by_kind.png $dir/convergence.png $dir/kept_headers.png"
