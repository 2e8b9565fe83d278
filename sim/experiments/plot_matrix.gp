# The comparison figures of docs/experiments.md, from the run directories
# that sim/experiments/run.sh makes:
#   gnuplot -e "dir='out/experiments'; figs='docs/experiments'" sim/experiments/plot_matrix.gp
# Writes figs/{metadata,objects,traffic,repair,strip}.png.
if (!exists("dir")) dir = "out/experiments"
if (!exists("figs")) figs = "docs/experiments"
set datafile separator ","
set terminal pngcairo size 900,640 noenhanced font ",9"
set grid
schemes = "ndc dvv vv"
colour(i) = (i == 1 ? "#1b7837" : (i == 2 ? "#2166ac" : "#b2182b"))
run(rf, t, l) = sprintf("%s/rf%d-T%d-loss%s", dir, rf, t, l)
ts(rf, t, l, s) = sprintf("%s/timeseries-%s.csv", run(rf, t, l), s)
lat(rf, t, l, s) = sprintf("%s/latency-%s.csv", run(rf, t, l), s)
tname(t) = (t == 100 ? "100 ms" : "10 s")
clamp(x) = (x < 1 ? 1 : x)

# --- causality metadata per live key over time ------------------------------
set output figs."/metadata.png"
set multiplot layout 2,2 title "Causality metadata per live key, loss 0.2 (solid: per-key only; dashed: per-key + per-replica)"
set xlabel "virtual time (s)"
set ylabel "bytes per live key"
set key top right
set yrange [0:30]
do for [rf in "3 6"] {
  do for [t in "100 10000"] {
    set title sprintf("RF %s, sync every %s", rf, tname(t + 0))
    plot for [i=1:3] ts(rf + 0, t + 0, "0.2", word(schemes,i)) using 1:($3 >= 20 ? $13 : 1/0) with lines lw 2 lc rgb colour(i) title word(schemes,i), \
         for [i=1:3] ts(rf + 0, t + 0, "0.2", word(schemes,i)) using 1:($3 >= 20 ? $14 : 1/0) with lines dt 2 lw 1.5 lc rgb colour(i) notitle
  }
}
unset multiplot
set yrange [*:*]

# --- objects in storage against the ideal -----------------------------------
set output figs."/objects.png"
set multiplot layout 2,2 title "Objects in storage per replica (tombstones and unstripped delete records included) against the ideal, sync every 10 s"
set ylabel "keys"
set key bottom right
do for [rf in "3 6"] {
  do for [l in "0.2 1.0"] {
    set title sprintf("RF %s, push loss %s", rf, l)
    plot for [i=1:3] ts(rf + 0, 10000, l, word(schemes,i)) using 1:2 with lines lw 2 lc rgb colour(i) title word(schemes,i), \
         ts(rf + 0, 10000, l, "ndc") using 1:3 with lines dt 2 lw 1.5 lc rgb "black" title "ideal (live keys)"
  }
}
unset multiplot

# --- anti-entropy traffic split ---------------------------------------------
set output figs."/traffic.png"
set multiplot layout 2,2 title "Anti-entropy bytes during the 600 s write phase (all replicas), split three ways; pushes not included"
set style data histograms
set style histogram rowstacked
set style fill solid 0.85 border -1
set boxwidth 0.7
set ylabel "MB"
set xlabel ""
set xtics rotate by -30 font ",8"
set key top left
set yrange [0:*]
do for [t in "100 10000"] {
  do for [l in "0.2 1.0"] {
    set title sprintf("sync every %s, push loss %s", tname(t + 0), l)
    f = sprintf("%s/traffic-T%s-loss%s.csv", dir, t, l)
    plot f using ($2/1e6):xtic(1) lc rgb "#4d4d4d" title "data", \
         '' using ($3/1e6) lc rgb "#fdb863" title "per-key metadata", \
         '' using ($4/1e6) lc rgb "#8073ac" title "sync metadata"
  }
}
unset multiplot
set style data lines
unset style histogram
set xtics norotate font ",9"

# --- repair latency ---------------------------------------------------------
set output figs."/repair.png"
set multiplot layout 2,2 title "Repair latency: write until every replica holds it, CDF (solid RF 3, dashed RF 6; dvv and vv share one Merkle pull)"
set logscale x
set xrange [1:*]
set yrange [0:1]
set xlabel "ms after the write (log)"
set ylabel "share of writes"
set key bottom right
do for [t in "100 10000"] {
  do for [l in "0.2 1.0"] {
    set title sprintf("sync every %s, push loss %s", tname(t + 0), l)
    plot for [i=1:3] lat(3, t + 0, l, word(schemes,i)) using ($2 >= 0 ? clamp($2) : 1/0):(1) smooth cnormal lw 2 lc rgb colour(i) title word(schemes,i), \
         for [i=1:3] lat(6, t + 0, l, word(schemes,i)) using ($2 >= 0 ? clamp($2) : 1/0):(1) smooth cnormal dt 2 lw 2 lc rgb colour(i) notitle
  }
}
unset multiplot

# --- strip latency (ndc only) -----------------------------------------------
set output figs."/strip.png"
set key top left
set multiplot layout 2,2 title "ndc strip latency, CDF: write until every replica's key context is empty (thin) and its dot also left every dot-key map (thick); dvv, vv: never"
do for [t in "100 10000"] {
  do for [l in "0.2 1.0"] {
    set title sprintf("sync every %s, push loss %s", tname(t + 0), l)
    plot lat(3, t + 0, l, "ndc") using ($3 >= 0 ? clamp($3) : 1/0):(1) smooth cnormal lw 1 lc rgb "#1b7837" title "RF 3 key context", \
         lat(3, t + 0, l, "ndc") using ($4 >= 0 ? clamp($4) : 1/0):(1) smooth cnormal lw 2.5 lc rgb "#1b7837" title "RF 3 all metadata", \
         lat(6, t + 0, l, "ndc") using ($3 >= 0 ? clamp($3) : 1/0):(1) smooth cnormal lw 1 lc rgb "#762a83" title "RF 6 key context", \
         lat(6, t + 0, l, "ndc") using ($4 >= 0 ? clamp($4) : 1/0):(1) smooth cnormal lw 2.5 lc rgb "#762a83" title "RF 6 all metadata"
  }
}
unset multiplot
