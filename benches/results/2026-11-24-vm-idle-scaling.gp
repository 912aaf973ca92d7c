set terminal pngcairo size 900,500 noenhanced
set output '2026-11-24-vm-idle-scaling.png'
set title 'Cost of one event-loop iteration, 100 active connections'
set xlabel 'idle connections'
set ylabel 'microseconds per iteration (median)'
set grid
set key top left
plot '2026-11-24-vm-idle-scaling.dat' u 1:2 w lp lw 2 title 'poll(2)', '2026-11-24-vm-idle-scaling.dat' u 1:4 w lp lw 2 title 'epoll_wait(2), edge-triggered'
