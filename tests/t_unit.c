/* t_unit.c — unit tests of pure functions: backoff, retry decisions, UTF-8,
 * JSON escaping, the buffer, configuration parsing, the error table, the
 * handler registry and the engine's claim floor. */
#include "aq_buf.h"
#include "aq_config.h"
#include "aq_db.h"
#include "aq_error.h"
#include "aq_handler.h"
#include "aq_json.h"
#include "aq_pgloop.h"
#include "aq_schedule.h"
#include "aq_tg_api.h"
#include "backoff.h"
#include "claim_floor.h"
#include "engine.h"
#include "pool.h"
#include "routes.h"
#include "harness.h"
#include "bench/bench.h"
#include <stdlib.h>

static void backoff_grows_caps_and_jitters(void)
{
    /* attempt 1: d = base; result in [d/2, d] */
    CHECK_INT(aq_backoff_ms(1, 1000, 60000, 0), 500);
    CHECK_INT(aq_backoff_ms(1, 1000, 60000, 500), 1000);
    CHECK_INT(aq_backoff_ms(1, 1000, 60000, 501), 500);    /* wraps within the range */
    CHECK_INT(aq_backoff_ms(3, 1000, 60000, 0), 2000);      /* d = 4000 */
    CHECK_INT(aq_backoff_ms(3, 1000, 60000, 2000), 4000);
    CHECK_INT(aq_backoff_ms(50, 1000, 60000, 0), 30000);    /* capped, no overflow */
    CHECK_INT(aq_backoff_ms(50, 1000, 60000, 30000), 60000);
    CHECK_INT(aq_backoff_ms(0, 1000, 60000, 0), 500);       /* bad attempt treated as 1 */
    for (int a = 1; a < 40; a++)
        for (uint32_t r = 0; r < 100000; r += 7919) {
            long d = aq_backoff_ms(a, 250, 3600000, r);
            CHECK(d >= 125 && d <= 3600000);
        }
}

static void retry_decision(void)
{
    CHECK_INT(aq_retry_delay_ms(3, 3, -1, 1000, 60000, 0), -1);   /* attempts spent */
    CHECK_INT(aq_retry_delay_ms(5, 3, -1, 1000, 60000, 0), -1);
    CHECK_INT(aq_retry_delay_ms(1, 3, 250, 1000, 60000, 0), 250); /* handler's delay wins */
    CHECK_INT(aq_retry_delay_ms(1, 3, 999999, 1000, 60000, 0), 60000);  /* but is capped */
    CHECK_INT(aq_retry_delay_ms(1, 3, 0, 1000, 60000, 0), 0);
    CHECK_INT(aq_retry_delay_ms(2, 3, -1, 1000, 60000, 0), 1000); /* backoff for attempt 2 */
}

static void utf8_validation(void)
{
    CHECK(aq_utf8_valid("plain", 5));
    CHECK(aq_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    CHECK(!aq_utf8_valid("\xff", 1));
    CHECK(!aq_utf8_valid("\xc3", 1));                 /* truncated */
    CHECK(!aq_utf8_valid("\xc0\xaf", 2));             /* overlong */
    CHECK(!aq_utf8_valid("\xe0\x80\xaf", 3));         /* overlong */
    CHECK(!aq_utf8_valid("\xed\xa0\x80", 3));         /* surrogate */
    CHECK(!aq_utf8_valid("\xf4\x90\x80\x80", 4));     /* above U+10FFFF */
    CHECK(!aq_utf8_valid("a\0b", 3));                 /* NUL */
    char s[] = "ok \xff\xfe \xc3\xa9 end";
    aq_utf8_sanitize(s);
    CHECK_STR(s, "ok ?? \xc3\xa9 end");
}

static void json_escape_and_buf(void)
{
    char out[64];
    aq_json_escape(out, sizeof out, "a\"b\\c\nd\x01");
    CHECK_STR(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
    aq_json_escape(out, 8, "0123456789");     /* truncated, still quoted and terminated */
    CHECK_STR(out, "\"01234\"");
    aq_buf b;
    aq_buf_init(&b);
    for (int i = 0; i < 1000; i++) aq_buf_addf(&b, "%d,", i);
    CHECK_INT((long long)b.len, 3890);
    aq_buf_reset(&b);
    aq_buf_add_json_str(&b, "tab\there");
    CHECK_STR(b.p, "\"tab\\there\"");
    char *s = aq_buf_take(&b);
    CHECK_STR(s, "\"tab\\there\"");
    CHECK(b.p == NULL);
    free(s);
    aq_buf_dispose(&b);
}

static void config_defaults_and_errors(void)
{
    aq_config cfg;
    char err[256];
    unsetenv("AGENTQ_LEASE_SECONDS");
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), 0);
    CHECK_INT(cfg.lease_seconds, 30);
    CHECK_STR(cfg.listen, "127.0.0.1:8080");
    setenv("AGENTQ_LEASE_SECONDS", "12x", 1);
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), AQ_ECONFIG);
    CHECK_CONTAINS(err, "AGENTQ_LEASE_SECONDS=12x");
    setenv("AGENTQ_LEASE_SECONDS", "1", 1);           /* below the minimum of 2 */
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), AQ_ECONFIG);
    setenv("AGENTQ_LEASE_SECONDS", "99999999999999999999", 1);
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), AQ_ECONFIG);
    setenv("AGENTQ_LEASE_SECONDS", "7", 1);
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), 0);
    CHECK_INT(cfg.lease_seconds, 7);
    unsetenv("AGENTQ_LEASE_SECONDS");
}

static void error_table(void)
{
    CHECK_STR(aq_error_code(AQ_ENOTFOUND), "not_found");
    CHECK_INT(aq_error_status(AQ_ENOTFOUND), 404);
    CHECK_INT(aq_error_status(AQ_ETOOBIG), 413);
    CHECK_INT(aq_error_status(AQ_EUNAVAIL), 503);
    CHECK_STR(aq_strerror(AQ_OK), "ok");
    CHECK_STR(aq_strerror(12345), "unknown error");
    CHECK_INT(aq_error_status(12345), 500);
}

static void registry(void)
{
    char err[128];
    CHECK_INT(aq_handlers_check(err, sizeof err), 0);
    aq_handlers_enable_tests(false);
    CHECK(aq_handler_find("noop") != NULL);
    CHECK(aq_handler_find("test_fail") == NULL);      /* hidden unless enabled */
    CHECK(aq_handler_find("no_such_type") == NULL);
    aq_handlers_enable_tests(true);
    CHECK(aq_handler_find("test_fail") != NULL);
    for (const aq_handler_def *h = aq_handler_table; h->name; h++) {
        CHECK(h->fn != NULL);
        CHECK(h->max_attempts > 0 && h->timeout_s > 0);
    }
}

/* Each handler's input check (the registry's check_input), as the job_input
 * fuzzer drives it. Found there: ids far beyond a long long (1e300) were
 * converted before they were compared, which is undefined behaviour (UBSan's
 * float-cast-overflow under SANITIZE=1: aq_routes_check's chat_id, the
 * telegram update's ids, imap_poll's connection id); and ids with a fraction
 * were taken as their integer part (action 1.5 decided action 1). */
static void job_input_checks(void)
{
    static const struct { const char *type, *input; int ok; } cases[] = {
        {"action_decision", "{\"action_id\":12,\"decision\":\"approved\",\"by\":1e300,\"telegram_user\":-1e300}", 1},
        {"action_decision", "{\"action_id\":1e300,\"decision\":\"approved\"}", 0},
        {"action_decision", "{\"action_id\":1.5,\"decision\":\"approved\"}", 0},
        {"action_decision", "{\"action_id\":0,\"decision\":\"rejected\"}", 0},
        {"action_decision", "{\"action_id\":3,\"decision\":\"maybe\"}", 0},
        {"scheduled_run", "{\"schedule_id\":4,\"missed\":1e300}", 1},
        {"scheduled_run", "{\"schedule_id\":1e300}", 0},
        {"scheduled_run", "{\"schedule_id\":2.5}", 0},
        {"imap_poll", "{\"connection_id\":3}", 1},
        {"imap_poll", "{\"connection_id\":1e300}", 0},
        {"telegram_update", "{\"update_id\":10000}", 1},
        {"telegram_update", "{\"update_id\":-1e300}", 0},
        {"notify", "{\"to\":\"web\",\"text\":\"x\",\"job_id\":1e300}", 1},
        {"notify", "{\"to\":\"telegram\",\"text\":\"x\",\"chat_id\":-100123}", 1},
        {"notify", "{\"to\":\"telegram\",\"text\":\"x\",\"chat_id\":1e300}", 0},
        {"notify", "{\"to\":\"telegram\",\"text\":\"x\",\"chat_id\":1.5}", 0},
        {"notify", "{\"to\":\"web\",\"text\":\"x\",\"kind\":\"shout\"}", 0},
        {"agent_turn", "{\"message\":\"hi\",\"channel\":\"telegram\"}", 1},
        {"agent_turn", "{\"message\":\"\"}", 0},
        {"agent_turn", "{\"message\":\"hi\",\"channel\":\"sms\"}", 0},
        {"email_processing", "{\"raw\":\"Subject: x\\r\\n\\r\\nbody\"}", 1},
        {"email_processing", "{\"raw_base64\":\"U3ViamVjdDogeA0KDQpib2R5\"}", 1},
        {"email_processing", "{\"raw_base64\":\"not base64!\"}", 0},
        {"email_processing", "{\"raw\":\"x\",\"raw_base64\":\"eA==\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const aq_handler_def *h = aq_handler_find(cases[i].type);
        CHECK(h && h->check_input);
        if (!h || !h->check_input) continue;
        cJSON *in = cJSON_Parse(cases[i].input);
        const char *why = h->check_input(in);
        if (cases[i].ok && why) th_fail(__FILE__, __LINE__, "%s %s refused: %s", cases[i].type, cases[i].input, why);
        if (!cases[i].ok && !why) th_fail(__FILE__, __LINE__, "%s %s accepted", cases[i].type, cases[i].input);
        cJSON_Delete(in);
    }
    static const struct { const char *input; int ok; } routes[] = {
        {"{\"reply_to\":[{\"to\":\"telegram\",\"chat_id\":-1001234567890},{\"to\":\"web\"}]}", 1},
        {"{\"reply_to\":[{\"to\":\"telegram\",\"chat_id\":1e300}]}", 0},
        {"{\"reply_to\":[{\"to\":\"telegram\",\"chat_id\":-1e300}]}", 0},
        {"{\"reply_to\":[{\"to\":\"telegram\",\"chat_id\":1.5}]}", 0},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        cJSON *in = cJSON_Parse(routes[i].input);
        const char *why = aq_routes_check(in);
        if (routes[i].ok != !why) th_fail(__FILE__, __LINE__, "%s: %s", routes[i].input, why ? why : "accepted");
        cJSON_Delete(in);
    }
}

/* A transient failure's delay grows with the outage, within [base, cap]. */
static void transient_delay_follows_the_outage(void)
{
    CHECK_INT(aq_transient_delay_ms(0, 100, 120000, 0), 50);            /* first failure: base, jittered */
    CHECK_INT(aq_transient_delay_ms(0, 100, 120000, 50), 100);
    CHECK_INT(aq_transient_delay_ms(8000, 100, 120000, 0), 4000);       /* 8 s into it: 4..8 s */
    CHECK_INT(aq_transient_delay_ms(8000, 100, 120000, 4000), 8000);
    CHECK_INT(aq_transient_delay_ms(3600000, 100, 120000, 0), 60000);   /* capped */
    CHECK_INT(aq_transient_delay_ms(3600000, 100, 120000, 60000), 120000);
}

/* common/ answers errors with negative AQ_E* codes, never a bare -1 (STYLE.md) */
static void common_errors_are_aq_codes(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    aq_pgloop *pg = aq_pgloop_create(&loop, "host=/nonexistent", NULL);   /* not started */
    CHECK_INT(aq_pgloop_query(pg, "SELECT 1", 0, NULL, NULL, NULL), AQ_EUNAVAIL);
    CHECK_INT(aq_pgloop_prepare(pg, "s", "SELECT 1", NULL, NULL), AQ_EUNAVAIL);
    CHECK_INT(aq_pgloop_exec(pg, "s", 0, NULL, NULL, NULL), AQ_EUNAVAIL);
    CHECK_INT(aq_pgloop_sync(pg, NULL, NULL), AQ_EUNAVAIL);
    aq_pgloop_close(pg);
    uv_run(&loop, UV_RUN_DEFAULT);   /* lets the close free pg */
    uv_loop_close(&loop);

    char err[256];
    int64_t next;
    CHECK_INT(aq_schedule_next("61 * * * *", "UTC", 0, &next, err, sizeof err), AQ_EINVAL);
    CHECK_INT(aq_schedule_check_new("", "* * * * *", "UTC", "p", 100, 0, 0, &next, err, sizeof err), AQ_EINVAL);
    size_t st[1], ln[1];
    CHECK_INT(aq_tg_split("a b", 1, st, ln, 1), AQ_EINVAL);
}

static void on_engine_exit(void *arg) { *(int *)arg = 1; }

/* The engine and its pool free everything create allocated: under
 * SANITIZE=1 LeakSanitizer fails this test at exit if a block is left.
 * The engine never connects (it is stopped before it starts). */
static void engine_and_pool_destroy(void)
{
    aq_config cfg;
    char err[256];
    CHECK_INT(aq_config_load(&cfg, err, sizeof err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);

    aq_pool *pool = aq_pool_create(&loop, 3, 3, &cfg, NULL, NULL, NULL);
    aq_pool_close(pool);
    CHECK_INT(aq_pool_join(pool, 10000), 0);
    uv_run(&loop, UV_RUN_DEFAULT);   /* closes the pool's async handle */
    CHECK_INT(aq_pool_destroy(pool), 0);

    int exited = 0;
    aq_engine_opts opts = {.concurrency = 2, .prefetch = 2, .queues = "{default}", .connections = 2,
                           .handler_threads = 2, .handler_db_connections = 2};
    aq_engine *eng = aq_engine_create(&loop, &cfg, &opts, on_engine_exit, &exited);
    aq_engine_stop(eng);             /* nothing claimed, not connected: exits at once */
    CHECK_INT(exited, 1);
    uv_run(&loop, UV_RUN_DEFAULT);   /* its timers, connections and pool handle close */
    aq_engine_join(eng, 10000);
    aq_engine_destroy(eng);
    aq_engine_destroy(NULL);
    CHECK_INT(aq_pool_destroy(NULL), 0);
    CHECK_INT(uv_loop_close(&loop), 0);   /* no handle of theirs is left open */
}

/* aq_json_print: each number prints as the exact double it holds (fuzzing
 * found cJSON's printer dropping the last digit, tests/fuzz/fz_tg_update.c). */
static void json_print_keeps_numbers(void)
{
    const char *in = "{\"id\":9007199254740991,\"x\":0.30000000000000004,\"a\":[-0,1e300,-1.5e-300,7],"
                     "\"s\":\"9.9\",\"t\":true,\"n\":null,\"o\":{}}";
    cJSON *v = cJSON_Parse(in);
    char *out = aq_json_print(v);
    CHECK_STR(out, "{\"id\":9007199254740991,\"x\":0.30000000000000004,\"a\":[-0,1e+300,"
                   "-1.5e-300,7],\"s\":\"9.9\",\"t\":true,\"n\":null,\"o\":{}}");
    cJSON *back = cJSON_Parse(out);
    CHECK(cJSON_GetObjectItem(back, "id")->valuedouble == 9007199254740991.0);
    CHECK(cJSON_GetObjectItem(back, "x")->valuedouble == 0.30000000000000004);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(v, "id")));   /* the original is untouched */
    cJSON_Delete(back);
    free(out);
    cJSON_Delete(v);
}

/* The engine's claim floor (worker/claim_floor.c), one claim out at a time. */
static void claim_floor_rules(void)
{
    aq_claim_floor f = {0};
    aq_floor_claim c;
    char prio[8], run_at[64], id[24];
    /* no floor yet: the first claim starts at the lowest key there is */
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    CHECK_STR(prio, "-32768");
    CHECK_STR(run_at, "-infinity");
    CHECK_STR(id, "0");
    aq_claim_key k10 = {0, 1796083200000000LL, 10};   /* 2026-12-01 00:00:00 */
    aq_floor_after_claim(&f, &c, 10, &k10);
    CHECK_INT(f.valid, 1);
    CHECK_INT(aq_claim_key_cmp(&f.key, &k10), 0);
    /* the next claim starts at that key, run_at exact to the microsecond */
    f.key.run_at_us += 123456;
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    CHECK_STR(prio, "0");
    CHECK_STR(run_at, "2026-12-01 00:00:00.123456+00");
    CHECK_STR(id, "10");
    f.key.run_at_us -= 123456;

    /* rows notified while the claim is out, above the floor: they committed
     * after its snapshot, so its answer (last key above them) must not lift
     * the floor past them (the next claim would skip them until a drop) */
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    aq_floor_notified(&f, "0 1796083200500000");
    aq_claim_key k20 = {0, 1796083201000000LL, 20};
    aq_floor_after_claim(&f, &c, 5, &k20);
    CHECK(f.key.run_at_us <= 1796083200500000LL);
    /* with nothing notified meanwhile, the floor rises to the claim's last key */
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    aq_floor_after_claim(&f, &c, 5, &k20);
    CHECK_INT(aq_claim_key_cmp(&f.key, &k20), 0);

    /* two claims out (the first overdue): a key notified between their sends
     * caps what either answer raises the floor to */
    aq_floor_claim c2;
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    aq_floor_notified(&f, "0 1796083201500000");
    aq_floor_claim_sent(&f, &c2, 100, 1, prio, run_at, id);
    aq_claim_key k25 = {0, 1796083202500000LL, 25};
    aq_floor_after_claim(&f, &c, 5, &k25);
    CHECK_INT(f.key.run_at_us, 1796083201500000LL);
    aq_floor_after_claim(&f, &c2, 5, &k25);
    CHECK_INT(f.key.run_at_us, 1796083201500000LL);

    /* a notification below the floor lowers it at once, and the claim out
     * does not raise it */
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    aq_floor_notified(&f, "0 1796083200000001");
    CHECK_INT(f.key.run_at_us, 1796083200000001LL);
    aq_claim_key k30 = {0, 1796083202000000LL, 30};
    aq_floor_after_claim(&f, &c, 5, &k30);
    CHECK_INT(f.key.run_at_us, 1796083200000001LL);

    /* anything but "<priority> <µs>" drops the floor: the next claim starts
     * at the head; one from the head that comes back short ends the drop */
    aq_floor_notified(&f, "");
    CHECK_INT(f.off, 1);
    aq_floor_claim_sent(&f, &c, 100, 0, prio, run_at, id);
    CHECK_STR(prio, "-32768");
    aq_floor_after_claim(&f, &c, 0, NULL);
    CHECK_INT(f.off, 0);
    aq_floor_notified(&f, "1 2 3");
    CHECK_INT(f.off, 1);
    f.off = 0;
    aq_floor_notified(&f, "99999 1");   /* priority out of smallint's range */
    CHECK_INT(f.off, 1);
}

/* the value of option key in db's connection options, or "" */
static const char *conn_option(PGconn *db, const char *key, char *buf, size_t len)
{
    PQconninfoOption *o = PQconninfo(db);
    snprintf(buf, len, "%s", "");
    for (PQconninfoOption *i = o; i && i->keyword; i++)
        if (!strcmp(i->keyword, key) && i->val) snprintf(buf, len, "%s", i->val);
    PQconninfoFree(o);
    return buf;
}

/* Every connection (aq_db_connect, and the loops' through aq_db_params)
 * asks for TCP keepalives and a user timeout; DATABASE_URL's own values win. */
static void db_connections_detect_dead_peers(void)
{
    char err[256], v[64], url[700];
    PGconn *db = aq_db_connect(th_db_url(), err, sizeof err);
    CHECK(db != NULL);
    if (!db) return;
    CHECK_STR(conn_option(db, "keepalives", v, sizeof v), "1");
    CHECK_STR(conn_option(db, "keepalives_idle", v, sizeof v), "30");
    CHECK_STR(conn_option(db, "keepalives_interval", v, sizeof v), "10");
    CHECK_STR(conn_option(db, "keepalives_count", v, sizeof v), "3");
    CHECK_STR(conn_option(db, "tcp_user_timeout", v, sizeof v), "60000");
    PQfinish(db);
    snprintf(url, sizeof url, "%s keepalives_idle=7 tcp_user_timeout=0", th_db_url());
    db = aq_db_connect(url, err, sizeof err);
    CHECK(db != NULL);
    if (!db) return;
    CHECK_STR(conn_option(db, "keepalives_idle", v, sizeof v), "7");
    CHECK_STR(conn_option(db, "tcp_user_timeout", v, sizeof v), "0");
    CHECK_STR(conn_option(db, "keepalives_count", v, sizeof v), "3");
    PQfinish(db);
    /* the loops' connections are opened with the same arrays */
    const char *keys[AQ_DB_PARAMS_MAX], *values[AQ_DB_PARAMS_MAX];
    aq_db_params(url, keys, values);
    int n = 0;
    while (keys[n]) n++;
    CHECK(n < AQ_DB_PARAMS_MAX);
    CHECK_STR(keys[n - 1], "dbname");
    CHECK_STR(values[n - 1], url);
}

/* The bench's API producer counts a 202 only when aq_http1_response says a
 * whole response is in: by Content-Length, chunked, or not yet. */
static void bench_http1_response_ends(void)
{
    static const struct { const char *in; int len, status, keep; } cases[] = {
        {"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello", 49, 202, 1},
        {"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhel", 0, 202, 1},
        {"HTTP/1.1 429 Too Many\r\nConnection: close\r\ncontent-length: 2\r\n\r\nab", 65, 429, 0},
        {"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 62, 200, 1},
        {"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 0, 200, 1},
        {"HTTP/1.0 202 Accepted\r\ncontent-length: 0\r\n\r\n", 44, 202, 0},
        {"HTTP/1.1 202 Accepted\r\ncontent-len", 0, -1, -1},
        {"garbage\r\n\r\n", -1, -1, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = -1, keep = -1;
        CHECK_INT(aq_http1_response(cases[i].in, strlen(cases[i].in), &status, &keep), cases[i].len);
        if (cases[i].len > 0) {
            CHECK_INT(status, cases[i].status);
            CHECK_INT(keep, cases[i].keep);
        }
    }
}

const th_test th_unit_tests[] = {
    {"unit_bench_http1_response_ends", bench_http1_response_ends, 10, 0},
    {"unit_db_connections_detect_dead_peers", db_connections_detect_dead_peers, 10, 1},
    {"unit_json_print_keeps_numbers", json_print_keeps_numbers, 10, 0},
    {"unit_engine_and_pool_destroy", engine_and_pool_destroy, 30, 0},
    {"unit_common_errors_are_aq_codes", common_errors_are_aq_codes, 10, 0},
    {"unit_backoff", backoff_grows_caps_and_jitters, 10, 0},
    {"unit_transient_delay", transient_delay_follows_the_outage, 10, 0},
    {"unit_retry_decision", retry_decision, 10, 0},
    {"unit_utf8", utf8_validation, 10, 0},
    {"unit_json_buf", json_escape_and_buf, 10, 0},
    {"unit_config", config_defaults_and_errors, 10, 0},
    {"unit_errors", error_table, 10, 0},
    {"unit_registry", registry, 10, 0},
    {"unit_job_input_checks", job_input_checks, 10, 0},
    {"unit_claim_floor", claim_floor_rules, 10, 0},
    {0},
};
