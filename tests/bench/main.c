/* main.c — bin/agentq-bench, the measuring tool `make bench` (tests/bench.sh)
 * drives against its private cluster ($DATABASE_URL). Not installed; not a
 * test. Each subcommand prints one `NAME key=value ...` line of figures.
 *
 *   agentq-bench load    --jobs N                      fresh table of N queued noop jobs
 *   agentq-bench idle    [--idle-ms N] -- WORKER...    idle worker's resident memory
 *   agentq-bench drain   --jobs N --workers K -- WORKER...   drain time, jobs/s, peak memory
 *   agentq-bench latency --jobs N --interval-ms N -- WORKER...  enqueue → handler start
 *   agentq-bench chatload --jobs N --workers C     N POST /v1/chat over C connections, then
 *                                                  check every 202 has exactly one row
 *   agentq-bench steady  --rate N --seconds N [--window-s N] [--api-pct N] -- WORKER...
 *                                                  one worker under a constant producer (steady.c)
 *   agentq-bench turns   --jobs N --delay-ms D --log FILE [--timeout-s N] -- WORKER...
 *                                                  agent turns against a model answering after D ms
 *                                                  (turns.c; AQ_BENCH_FAKE, AQ_BENCH_WORKER_URL)
 *   agentq-bench soak    --seconds N --window-s W --rate R --api-pct P --chat-per-min C --log CSV
 *                                                  a fixed mixed load against running processes, one
 *                                                  CSV row a window (soak.c; tests/soak.sh)
 *
 * drain also takes --finished N: that many succeeded rows in the table besides the queued ones.
 *
 * WORKER... is the worker command line (bin/agentq-worker and its flags);
 * workers are started and stopped by PID, never by name. */
#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(const aq_bench_opts *o);
    int needs_worker;
} commands[] = {
    {"load", aq_bench_cmd_load, 0},
    {"idle", aq_bench_cmd_idle, 1},
    {"drain", aq_bench_cmd_drain, 1},
    {"latency", aq_bench_cmd_latency, 1},
    {"chatload", aq_bench_cmd_chatload, 0},
    {"steady", aq_bench_cmd_steady, 1},
    {"turns", aq_bench_cmd_turns, 1},
    {"soak", aq_bench_cmd_soak, 0},
    {NULL, NULL, 0},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: agentq-bench load|idle|drain|latency|chatload|steady|turns|soak [--jobs N] [--workers N]\n"
               "                    [--interval-ms N] [--idle-ms N] [--timeout-s N] [--finished N] [--rate N]\n"
               "                    [--seconds N] [--window-s N] [--api-pct N] [--delay-ms N] [--chat-per-min N]\n"
               "                    [--log FILE]\n"
               "                    [-- WORKER ARGS...]\n"
               "Benchmark helper for `make bench` (tests/bench.sh); connects with $DATABASE_URL.\n");
}

static int number(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    aq_bench_opts o = {.jobs = 1000, .workers = 1, .interval_ms = 10, .idle_ms = 2000,
                       .timeout_s = 120, .rate = 1000, .seconds = 60, .window_s = 10, .api_pct = 0,
                       .finished = 0, .delay_ms = 1000, .chat_per_min = 0, .log = NULL, .worker_argv = NULL};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--")) { o.worker_argv = argv + i + 1; break; }
        else if (!strcmp(a, "--jobs")) bad = number(v, 0, 10000000, &o.jobs);
        else if (!strcmp(a, "--workers")) bad = number(v, 1, 1024, &o.workers);
        else if (!strcmp(a, "--interval-ms")) bad = number(v, 0, 60000, &o.interval_ms);
        else if (!strcmp(a, "--idle-ms")) bad = number(v, 0, 600000, &o.idle_ms);
        else if (!strcmp(a, "--timeout-s")) bad = number(v, 1, 3600, &o.timeout_s);
        else if (!strcmp(a, "--rate")) bad = number(v, 1, 10000000, &o.rate);
        else if (!strcmp(a, "--seconds")) bad = number(v, 1, 86400, &o.seconds);
        else if (!strcmp(a, "--window-s")) bad = number(v, 1, 3600, &o.window_s);
        else if (!strcmp(a, "--api-pct")) bad = number(v, 0, 100, &o.api_pct);
        else if (!strcmp(a, "--finished")) bad = number(v, 0, 100000000, &o.finished);
        else if (!strcmp(a, "--delay-ms")) bad = number(v, 0, 600000, &o.delay_ms);
        else if (!strcmp(a, "--chat-per-min")) bad = number(v, 0, 1000000, &o.chat_per_min);
        else if (!strcmp(a, "--log") && v) o.log = v;
        else bad = 1;
        if (bad) {
            fprintf(stderr, "agentq-bench: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    for (int i = 0; commands[i].name; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        if (commands[i].needs_worker && (!o.worker_argv || !o.worker_argv[0])) {
            fprintf(stderr, "agentq-bench %s: give the worker command after `--`\n", argv[1]);
            return 2;
        }
        return commands[i].fn(&o);
    }
    fprintf(stderr, "agentq-bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
