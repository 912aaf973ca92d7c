set terminal pngcairo size 1200,500 noenhanced
set output '2026-12-03-vm-quick.png'
set multiplot layout 1,2 title 'corestream (solid) vs nginx, h2o, floor (dashed), vm'
set logscale x
set xlabel 'connections'
set grid
set key bottom left font ',8'
set logscale y
set ylabel 'ok requests/s (log)'
plot '2026-12-03-vm-quick.dat' u 1:2 w lp lw 2 dt 1 lc rgb '#1f77b4' title 'playlist corestream', '2026-12-03-vm-quick.dat' u 1:4 w lp lw 2 dt 2 lc rgb '#1f77b4' title 'playlist nginx', '2026-12-03-vm-quick.dat' u 1:6 w lp lw 2 dt 3 lc rgb '#1f77b4' title 'playlist h2o', '2026-12-03-vm-quick.dat' u 1:8 w lp lw 2 dt 4 lc rgb '#1f77b4' title 'playlist floor', '2026-12-03-vm-quick.dat' u 1:10 w lp lw 2 dt 1 lc rgb '#d62728' title 'segment corestream', '2026-12-03-vm-quick.dat' u 1:12 w lp lw 2 dt 2 lc rgb '#d62728' title 'segment nginx', '2026-12-03-vm-quick.dat' u 1:14 w lp lw 2 dt 3 lc rgb '#d62728' title 'segment h2o', '2026-12-03-vm-quick.dat' u 1:16 w lp lw 2 dt 1 lc rgb '#2ca02c' title 'viewer-mix corestream', '2026-12-03-vm-quick.dat' u 1:18 w lp lw 2 dt 2 lc rgb '#2ca02c' title 'viewer-mix nginx', '2026-12-03-vm-quick.dat' u 1:20 w lp lw 2 dt 3 lc rgb '#2ca02c' title 'viewer-mix h2o'
set key top left font ',8'
set ylabel 'p99 latency (ms)'
plot '2026-12-03-vm-quick.dat' u 1:3 w lp lw 2 dt 1 lc rgb '#1f77b4' title 'playlist corestream', '2026-12-03-vm-quick.dat' u 1:5 w lp lw 2 dt 2 lc rgb '#1f77b4' title 'playlist nginx', '2026-12-03-vm-quick.dat' u 1:7 w lp lw 2 dt 3 lc rgb '#1f77b4' title 'playlist h2o', '2026-12-03-vm-quick.dat' u 1:9 w lp lw 2 dt 4 lc rgb '#1f77b4' title 'playlist floor', '2026-12-03-vm-quick.dat' u 1:11 w lp lw 2 dt 1 lc rgb '#d62728' title 'segment corestream', '2026-12-03-vm-quick.dat' u 1:13 w lp lw 2 dt 2 lc rgb '#d62728' title 'segment nginx', '2026-12-03-vm-quick.dat' u 1:15 w lp lw 2 dt 3 lc rgb '#d62728' title 'segment h2o', '2026-12-03-vm-quick.dat' u 1:17 w lp lw 2 dt 1 lc rgb '#2ca02c' title 'viewer-mix corestream', '2026-12-03-vm-quick.dat' u 1:19 w lp lw 2 dt 2 lc rgb '#2ca02c' title 'viewer-mix nginx', '2026-12-03-vm-quick.dat' u 1:21 w lp lw 2 dt 3 lc rgb '#2ca02c' title 'viewer-mix h2o'
unset multiplot
