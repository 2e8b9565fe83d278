# Plots one kith-causality-exp run (docs/experiments.md):
#   gnuplot -e "dir='OUT'; schemes='ndc dvv vv'" sim/experiments/plot_run.gp
# (what kith-causality-exp --out OUT --plots runs; schemes: those run). Reads OUT/timeseries-*.csv
# and OUT/latency-*.csv, writes OUT/run.png. Needs gnuplot (gnuplot-nox).
if (!exists("dir")) dir = "."
set datafile separator ","
set terminal pngcairo size 1000,700 noenhanced font ",9"
set output dir."/run.png"
set grid
set key top left
if (!exists("schemes")) schemes = "ndc dvv vv"
n = words(schemes)
colour(i) = (word(schemes,i) eq "ndc" ? "#1b7837" : (word(schemes,i) eq "dvv" ? "#2166ac" : "#b2182b"))
ts(s) = sprintf("%s/timeseries-%s.csv", dir, s)
lat(s) = sprintf("%s/latency-%s.csv", dir, s)

set multiplot layout 2,2 title "kith-causality-exp: ".dir
set title "causality metadata per live key (solid: per-key; dashed: + per-replica)"
set xlabel "virtual time (s)"; set ylabel "bytes per live key"
set yrange [0:*]
plot for [i=1:n] ts(word(schemes,i)) using 1:($3 >= 20 ? $13 : 1/0) with lines lw 2 lc rgb colour(i) title word(schemes,i), \
     for [i=1:n] ts(word(schemes,i)) using 1:($3 >= 20 ? $14 : 1/0) with lines dt 2 lc rgb colour(i) notitle

set title "objects in storage per replica (dashed: live keys, the ideal)"
set ylabel "keys"
plot for [i=1:n] ts(word(schemes,i)) using 1:2 with lines lw 2 lc rgb colour(i) title word(schemes,i), \
     ts(word(schemes,1)) using 1:3 with lines dt 2 lc rgb "black" title "ideal (live keys)"

set title "anti-entropy bytes so far (solid: total; dashed: sync metadata)"
set ylabel "bytes"
plot for [i=1:n] ts(word(schemes,i)) using 1:($8+$9+$10) with lines lw 2 lc rgb colour(i) title word(schemes,i), \
     for [i=1:n] ts(word(schemes,i)) using 1:10 with lines dt 2 lc rgb colour(i) notitle

has_ndc = strstrt(" ".schemes." ", " ndc ") > 0
set title "repair latency (solid) and ndc strip latency (dashed), CDF"
set xlabel "ms after the write"; set ylabel "share of writes"
set logscale x
set yrange [0:1]
set key bottom right
if (has_ndc) {
  plot for [i=1:n] lat(word(schemes,i)) using ($2 >= 0 ? ($2 < 1 ? 1 : $2) : 1/0):(1) smooth cnormal lw 2 lc rgb colour(i) title word(schemes,i), \
       lat("ndc") using ($4 >= 0 ? ($4 < 1 ? 1 : $4) : 1/0):(1) smooth cnormal dt 2 lw 2 lc rgb "#1b7837" title "ndc strip"
} else {
  plot for [i=1:n] lat(word(schemes,i)) using ($2 >= 0 ? ($2 < 1 ? 1 : $2) : 1/0):(1) smooth cnormal lw 2 lc rgb colour(i) title word(schemes,i)
}
unset multiplot
