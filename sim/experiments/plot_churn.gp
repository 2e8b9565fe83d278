# The churn figures of docs/experiments.md ("Churn and watermark
# retirement"), from the run directories that sim/experiments/churn.sh makes:
#   gnuplot -e "dir='out/churn'; figs='docs/experiments'; periods='0 30 60 120 300'" sim/experiments/plot_churn.gp
# Reads dir/r<period>/churn-series.csv and dir/churn.csv; writes
# figs/churn-metadata.png, churn-resyncs.png, churn-convergence.png and
# churn-tradeoff.png.
if (!exists("dir")) dir = "out/churn"
if (!exists("figs")) figs = "docs/experiments"
if (!exists("periods")) periods = "0 30 60 120 300"
set datafile separator ","
set terminal pngcairo size 900,700 noenhanced font ",9"
set grid
n = words(periods)
series(i) = sprintf("%s/r%s/churn-series.csv", dir, word(periods, i))
label(i) = (word(periods, i) + 0 == 0 ? "never retire" : sprintf("retire after %s s", word(periods, i)))
colour(i) = word("#000000 #b2182b #ef8a62 #67a9cf #2166ac #1b7837 #762a83", (i - 1) % 7 + 1)
# churn-series.csv: 1 t_s, 2 nodes_up, 3 bytes, 4 kept_headers, 5 pairs_behind,
# 6 dot_map_entries, 7 retirements, 8 resyncs, 9 resync_bytes, 10 settling

# The end of the churn (first sample of the settle phase): a grey line.
stats series(1) using ($10 > 0 ? $1 : 1/0) skip 1 nooutput
churn_end = STATS_min
set arrow 1 from churn_end, graph 0 to churn_end, graph 1 nohead lc rgb "#999999" lw 1.5

# --- metadata held over time -------------------------------------------------
set output figs."/churn-metadata.png"
set multiplot layout 2,1 title "Causality metadata held by all nodes (all topics) under Weibull churn; the churn stops at the grey line"
set xlabel "simulated time (s)"
set key top left
set ylabel "kept headers"
set title "delete and overwrite records kept (write headers some member may not have seen)"
plot for [i=1:n] series(i) using 1:4 skip 1 with lines lw 2 lc rgb colour(i) title label(i)
set ylabel "entries"
set title "dot-key map entries (dots some member may still ask for)"
plot for [i=1:n] series(i) using 1:6 skip 1 with lines lw 2 lc rgb colour(i) title label(i)
unset multiplot

# --- resyncs -----------------------------------------------------------------
set output figs."/churn-resyncs.png"
set multiplot layout 2,1 title "What retirement costs: full resyncs served (cumulative, all nodes); the churn stops at the grey line"
set ylabel "MB"
set title "resync bytes served (encoded data messages)"
plot for [i=1:n] series(i) using 1:($9 / 1e6) skip 1 with lines lw 2 lc rgb colour(i) title label(i)
set ylabel "members retired"
set title "retirements"
plot for [i=1:n] series(i) using 1:7 skip 1 with lines lw 2 lc rgb colour(i) title label(i)
unset multiplot

# --- convergence ---------------------------------------------------------------
set output figs."/churn-convergence.png"
set multiplot layout 2,1 title "Feed convergence: follow pairs whose follower does not hold what the author holds (down followers included); the churn stops at the grey line"
set ylabel "pairs behind"
set title "pairs behind (sampled)"
plot for [i=1:n] series(i) using 1:5 skip 1 with lines lw 2 lc rgb colour(i) title label(i)
set ylabel "nodes"
set title "nodes up (running and linked)"
plot for [i=1:n] series(i) using 1:2 skip 1 with lines lw 1.5 lc rgb colour(i) title label(i)
unset multiplot

# --- the trade-off by retirement period ---------------------------------------
# churn.csv: 1 retire_after_s, 2 converged, 3 convergence_s, 4 messages,
# 5 bytes, 6 bytes_per_node, 7 resyncs_new, 8 resyncs_returning,
# 9 resyncs_repeated, 10 resync_bytes, 11 retirements,
# 12 kept_headers_churn_end, 13 dot_map_entries_churn_end,
# 14 members_churn_end, 15 kept_records, 16 kept_pruned, 17 kept_still_held,
# 18 kept_mean_s, 19 kept_p50_s, 20 kept_p90_s, ...
unset arrow 1
set output figs."/churn-tradeoff.png"
set multiplot layout 2,2 title "Retirement period against metadata, record lifetime and resync cost (one run per period)"
csv = dir."/churn.csv"
set style data linespoints
set key below vertical maxrows 2
set xlabel "retirement period"
set xtics ()
do for [i=1:n] { set xtics add (label(i) i) }
set xtics rotate by -20 font ",8"
set xrange [0.5:n + 0.5]
set key top left
set ylabel "kB per node"
set title "traffic per node (all messages) and resync share"
set yrange [0:*]
plot csv using ($0 + 1):($6 / 1000) skip 1 with linespoints lw 2 pt 7 lc rgb "#2166ac" title "all bytes per node", \
     csv using ($0 + 1):($10 / ($5 / $6) / 1000) skip 1 with linespoints lw 2 pt 5 lc rgb "#b2182b" title "resync bytes per node"
set ylabel "records"
set title "metadata held when the churn stops (all nodes)"
plot csv using ($0 + 1):12 skip 1 with linespoints lw 2 pt 7 lc rgb "#2166ac" title "kept headers", \
     csv using ($0 + 1):13 skip 1 with linespoints lw 2 pt 5 lc rgb "#1b7837" title "dot-key map entries"
set ylabel "s"
set title "lifetime of a kept record (first to last sample held anywhere; pruned ones)"
plot csv using ($0 + 1):18 skip 1 with linespoints lw 2 pt 7 lc rgb "#2166ac" title "mean", \
     csv using ($0 + 1):20 skip 1 with linespoints lw 2 pt 5 lc rgb "#762a83" title "p90"
set ylabel "resyncs"
set y2label "s"
set y2tics
set y2range [0:*]
set title "full resyncs asked, and convergence time after the churn"
plot csv using ($0 + 1):($8 + $9) skip 1 with linespoints lw 2 pt 7 lc rgb "#b2182b" title "resyncs of returning or cut members", \
     csv using ($0 + 1):3 skip 1 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#000000" title "convergence (s, right)"
unset multiplot
