# soak.gp — the plot of a soak run (tests/soak.sh): gnuplot -e "csv='FILE'; png='FILE'" tests/soak.gp
# Four panels over the run's minutes: resident memory of every agentq
# process (the CSV's *_rss_kb columns; dashed: the same process's RssAnon),
# PostgreSQL's Pss summed over its processes, p50/p99 latency (enqueue →
# start, chat → reply), and the sizes of the jobs table, its indexes, the
# chat tables and the database.
set datafile separator ","
set datafile columnheaders
set terminal pngcairo size 1100,1400 font "sans,10"
set output png
set multiplot layout 4,1
set grid
set key outside right
set xlabel "minute"

procs = system("head -1 '" . csv . "' | tr ',' '\\n' | sed -n 's/_rss_kb$//p' | tr '\\n' ' '")
set title "agentq processes: VmRSS (solid) and RssAnon (dashed)"
set ylabel "MiB"
set yrange [0:*]
plot for [i = 1:words(procs)] csv using "minute":(column(word(procs, i) . "_rss_kb") / 1024) \
         with linespoints lc i pt 7 ps 0.4 title word(procs, i), \
     for [i = 1:words(procs)] csv using "minute":(column(word(procs, i) . "_anon_kb") / 1024) \
         with lines lc i dt 2 notitle

set title "PostgreSQL: Pss summed over the postmaster and its children"
plot csv using "minute":(column("pg_pss_kb") / 1024) with linespoints pt 7 ps 0.4 title "postgres"

set title "latency per minute (enqueue→start: jobs finished in the minute; chat→reply: replies stored in it)"
set ylabel "ms"
set logscale y
set yrange [*:*]
plot csv using "minute":"queue_p50_ms" with linespoints pt 7 ps 0.4 title "enqueue→start p50", \
     csv using "minute":"queue_p99_ms" with linespoints pt 7 ps 0.4 title "enqueue→start p99", \
     csv using "minute":"reply_p50_ms" with linespoints pt 7 ps 0.4 title "chat→reply p50", \
     csv using "minute":"reply_p99_ms" with linespoints pt 7 ps 0.4 title "chat→reply p99"
unset logscale y

set title "sizes"
set ylabel "MiB"
set yrange [0:*]
plot csv using "minute":(column("jobs_kb") / 1024) with linespoints pt 7 ps 0.4 title "jobs (heap)", \
     csv using "minute":(column("jobs_idx_kb") / 1024) with linespoints pt 7 ps 0.4 title "jobs indexes", \
     csv using "minute":(column("chat_kb") / 1024) with linespoints pt 7 ps 0.4 title "chat tables", \
     csv using "minute":(column("db_kb") / 1024) with linespoints pt 7 ps 0.4 title "database"
unset multiplot
