/* main.c — bin/agentq-worker: parses flags and environment, then runs the
 * engine (engine.c) on one libuv loop until SIGTERM/SIGINT.
 *
 *   agentq-worker [--concurrency N] [--prefetch N] [--queues a,b]
 *
 * Exit status: 0 after a graceful stop, 2 on bad flags or configuration. */
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_config.h"
#include "aq_log.h"
#include "engine.h"
#include "jobrun.h"
#include "scheduler.h"
#include <signal.h>
#include <sys/resource.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The default prefetch (AGENTQ_PREFETCH=-1) is the concurrency up to this:
 * one claim's worth (see engine.c, "Claimed ahead"). */
#define DEFAULT_PREFETCH_MAX 1000

static aq_engine *engine;
static aq_scheduler *scheduler;
static int signals_seen;

static void usage(FILE *f)
{
    fprintf(f, "usage: agentq-worker [--concurrency N] [--prefetch N] [--queues a,b]\n"
               "Runs jobs from the agentq jobs table. Configuration comes from the environment\n"
               "(DATABASE_URL, AGENTQ_*); see README.md.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* "a,b" → "{a,b}"; queue names are [A-Za-z0-9_.-]+ so the literal needs no quoting. */
static char *queue_literal(const char *list)
{
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "{");
    const char *p = list;
    int n = 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 64) goto bad;
        for (size_t i = 0; i < len; i++)
            if (!(p[i] == '_' || p[i] == '-' || p[i] == '.' || (p[i] >= '0' && p[i] <= '9') ||
                  (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')))
                goto bad;
        if (n++) aq_buf_adds(&b, ",");
        aq_buf_add(&b, p, len);
        p += len;
        if (*p == ',') p++;
    }
    if (!n) goto bad;
    aq_buf_adds(&b, "}");
    return aq_buf_take(&b);
bad:
    aq_buf_dispose(&b);
    return NULL;
}

static long clamp(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Handler threads and their connections: AGENTQ_HANDLER_* or from the CPU
 * count (README, "Running"). Never more threads than jobs in flight, never
 * more connections than threads. */
static void handler_sizes(const aq_config *cfg, long concurrency, int *threads, int *conns)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    long t = cfg->handler_threads > 0 ? cfg->handler_threads : clamp(4 * cpus, 8, 64);
    if (t > concurrency) t = concurrency;
    long c = cfg->handler_db_connections > 0 ? cfg->handler_db_connections : clamp(2 * cpus + 4, 8, 13);
    if (c > t) c = t;
    *threads = (int)t;
    *conns = (int)c;
}

/* Thousands of requests in flight need as many sockets: the soft limit on
 * open files goes up to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl)) aq_warn("worker", "could not raise the open-file limit");
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (++signals_seen > 1) {
        aq_warn("worker", "second signal: exiting now; running jobs return through lease expiry");
        _exit(1);
    }
    aq_scheduler_stop(scheduler);
    aq_engine_stop(engine);
}

static void on_exit_cb(void *arg)
{
    uv_loop_t *loop = arg;
    uv_stop(loop);
}

int main(int argc, char **argv)
{
    aq_config cfg;
    char err[256];
    if (aq_config_load(&cfg, err, sizeof err)) {
        fprintf(stderr, "agentq-worker: %s\n", err);
        return 2;
    }
    aq_log_set_level(cfg.log_level);
    aq_log_set_process("worker");
    long concurrency = cfg.concurrency, prefetch = cfg.prefetch;
    const char *queues = cfg.queues;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--concurrency") && v && !parse_long(v, 1, 100000, &concurrency)) i++;
        else if (!strcmp(a, "--prefetch") && v && !parse_long(v, 0, 100000, &prefetch)) i++;
        else if (!strcmp(a, "--queues") && v) { queues = v; i++; }
        else {
            fprintf(stderr, "agentq-worker: bad argument '%s'%s\n", a,
                    v && a[0] == '-' ? " (or its value)" : "");
            usage(stderr);
            return 2;
        }
    }
    if (prefetch < 0) prefetch = concurrency < DEFAULT_PREFETCH_MAX ? concurrency : DEFAULT_PREFETCH_MAX;
    char *qlit = queue_literal(queues);
    if (!qlit) {
        fprintf(stderr, "agentq-worker: bad queue list '%s': names are [A-Za-z0-9_.-]+, comma-separated\n", queues);
        return 2;
    }
    if (aq_handlers_check(err, sizeof err)) {
        fprintf(stderr, "agentq-worker: %s\n", err);
        return 2;
    }
    aq_handlers_enable_tests(cfg.test_handlers == 1);
    aq_handlers_configure(&cfg);
    if (sodium_init() < 0) {
        fprintf(stderr, "agentq-worker: library initialisation failed\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    uv_loop_t *loop = uv_default_loop();
    aq_engine_opts opts = {(int)concurrency, (int)prefetch, qlit, (int)cfg.db_connections, 0, 0};
    handler_sizes(&cfg, concurrency, &opts.handler_threads, &opts.handler_db_connections);
    engine = aq_engine_create(loop, &cfg, &opts, on_exit_cb, loop);
    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_unref((uv_handle_t *)&sigterm);
    uv_unref((uv_handle_t *)&sigint);
    int offline = !strcmp(cfg.llm_provider, "offline");
    aq_info("worker", "LLM provider %s, model %s", cfg.llm_provider,
            offline ? "none (the built-in offline responder, not a model)" : cfg.llm_model);
    aq_engine_start(engine);
    scheduler = aq_scheduler_start(loop, &cfg);
    uv_run(loop, UV_RUN_DEFAULT);
    aq_scheduler_free(scheduler);
    aq_engine_join(engine, 3000);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    /* run the close callbacks still pending (the engine's connections free themselves there) */
    for (int i = 0; i < 8 && uv_run(loop, UV_RUN_NOWAIT); i++) {}
    aq_engine_destroy(engine);
    free(qlit);

    return 0;
}
