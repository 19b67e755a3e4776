/* aq_metrics.c — the worker side's counters and histograms (see aq_metrics.h).
 *
 * DESIGN
 * One table of series behind one mutex, found by a hash of family and
 * label text. A series keeps its running totals (v) and what the database
 * already holds (sent); a flush sends v - sent for every series that moved
 * and, once its transaction committed, adds that to sent. A histogram keeps
 * its buckets cumulative (v[i]: observations <= bound i, v[B]: all of them,
 * the +Inf bucket and the count; v[B+1]: the sum), so its increments are
 * cumulative too and every bucket row is sent whenever the count moved.
 * The series live until the process exits; their number is bounded by the
 * label values (job types, statuses, provider and model), and capped. */
#include "aq_metrics.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "aq_log.h"
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB AQ_METRICS_BUCKETS
#define NV (NB + 2)
#define SLOTS (AQ_METRICS_MAX_SERIES * 2)
#define MAX_LABELS 256

const double aq_metrics_bounds[NB] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120,
};

typedef struct aq_metrics_series {
    char *family, *labels;
    int hist;
    double v[NV], sent[NV];
} series;

struct aq_metrics_batch {
    int n;
    struct item { series *s; double d[NV]; } *items;
    char *json;
};

const char aq_metrics_sql_flush[] =
    "INSERT INTO metric_counters AS m (family, labels, suffix, le, value)"
    " SELECT c.f, c.l, c.s, c.le::float8, c.v FROM jsonb_to_recordset($1::jsonb)"
    " AS c(f text, l text, s text, le text, v float8)"
    " ORDER BY 1, 2, 3, 4"   /* one lock order for every worker: no deadlock between flushes */
    " ON CONFLICT (family, labels, suffix, le) DO UPDATE SET value = m.value + EXCLUDED.value";

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static series *slots[SLOTS];
static int nseries, warned, batch_open;

static uint64_t hash(const char *family, const char *labels)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = family; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = labels; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* name="value",... from the NULL-terminated pairs; values escaped and cut at 128 bytes. */
static void format_labels(char *out, size_t cap, va_list ap)
{
    size_t n = 0;
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);
        if (!v) v = "";
        size_t kl = strlen(k);
        if (n + kl + 4 >= cap) break;
        if (n) out[n++] = ',';
        memcpy(out + n, k, kl);
        n += kl;
        out[n++] = '=';
        out[n++] = '"';
        for (size_t i = 0; v[i] && i < 128 && n + 4 < cap; i++) {
            if (v[i] == '\\' || v[i] == '"') out[n++] = '\\';
            if (v[i] == '\n') { out[n++] = '\\'; out[n++] = 'n'; continue; }
            out[n++] = v[i];
        }
        out[n++] = '"';
    }
    out[n] = '\0';
}

/* The series, created if new; NULL past the cap. Under mu. */
static series *find(const char *family, const char *labels, int hist)
{
    size_t i = (size_t)(hash(family, labels) % SLOTS);
    for (; slots[i]; i = (i + 1) % SLOTS)
        if (!strcmp(slots[i]->family, family) && !strcmp(slots[i]->labels, labels)) return slots[i];
    if (nseries >= AQ_METRICS_MAX_SERIES) {
        if (!warned++) aq_warn("metrics", "more than %d series: %s{%s} and later ones are not counted",
                               AQ_METRICS_MAX_SERIES, family, labels);
        return NULL;
    }
    series *s = aq_calloc(1, sizeof *s);
    s->family = aq_strdup(family);
    s->labels = aq_strdup(labels);
    s->hist = hist;
    slots[i] = s;
    nseries++;
    return s;
}

static series *lookup(const char *family, int hist, va_list ap)
{
    char labels[MAX_LABELS];
    format_labels(labels, sizeof labels, ap);
    pthread_mutex_lock(&mu);
    series *s = find(family, labels, hist);
    pthread_mutex_unlock(&mu);
    return s;
}

aq_metrics_series *aq_metrics_counter(const char *family, ...)
{
    va_list ap;
    va_start(ap, family);
    series *s = lookup(family, 0, ap);
    va_end(ap);
    return s;
}

aq_metrics_series *aq_metrics_histogram(const char *family, ...)
{
    va_list ap;
    va_start(ap, family);
    series *s = lookup(family, 1, ap);
    va_end(ap);
    return s;
}

void aq_metrics_series_add(aq_metrics_series *s, double v)
{
    if (!s || !(v >= 0) || isinf(v)) return;
    pthread_mutex_lock(&mu);
    s->v[0] += v;
    pthread_mutex_unlock(&mu);
}

void aq_metrics_series_observe(aq_metrics_series *s, double v)
{
    if (!s || isnan(v) || isinf(v)) return;
    if (v < 0) v = 0;   /* a clock step; the observation still counts */
    pthread_mutex_lock(&mu);
    for (int i = NB - 1; i >= 0 && v <= aq_metrics_bounds[i]; i--) s->v[i] += 1;
    s->v[NB] += 1;
    s->v[NB + 1] += v;
    pthread_mutex_unlock(&mu);
}

void aq_metrics_add(const char *family, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    series *s = lookup(family, 0, ap);
    va_end(ap);
    aq_metrics_series_add(s, v);
}

void aq_metrics_observe(const char *family, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    series *s = lookup(family, 1, ap);
    va_end(ap);
    aq_metrics_series_observe(s, v);
}

void aq_metrics_model_call(const char *provider, const char *model, int ok, int transient, long prompt_tokens,
                           long completion_tokens)
{
    if (!strcmp(provider, "offline")) model = "none";   /* the offline responder is not a model */
    aq_metrics_add("agentq_model_calls_total", 1, "provider", provider, "model", model, NULL);
    if (!ok)
        aq_metrics_add("agentq_model_errors_total", 1, "provider", provider, "model", model, "kind",
                       transient ? "transient" : "permanent", NULL);
    if (prompt_tokens > 0)
        aq_metrics_add("agentq_model_tokens_total", (double)prompt_tokens, "provider", provider, "model", model,
                       "kind", "prompt", NULL);
    if (completion_tokens > 0)
        aq_metrics_add("agentq_model_tokens_total", (double)completion_tokens, "provider", provider, "model",
                       model, "kind", "completion", NULL);
}

void aq_metrics_telegram_send(const char *why)
{
    aq_metrics_add("agentq_telegram_sends_total", 1, NULL);
    if (why) aq_metrics_add("agentq_telegram_send_failures_total", 1, "reason", why, NULL);
}

/* ---- flushing ---- */

static void add_row(aq_buf *b, const series *s, const char *suffix, double le, double v)
{
    aq_buf_adds(b, b->len > 1 ? ",{\"f\":" : "{\"f\":");
    aq_buf_add_json_str(b, s->family);
    aq_buf_adds(b, ",\"l\":");
    aq_buf_add_json_str(b, s->labels);
    if (isinf(le)) aq_buf_addf(b, ",\"s\":\"%s\",\"le\":\"Infinity\",\"v\":%.17g}", suffix, v);
    else aq_buf_addf(b, ",\"s\":\"%s\",\"le\":\"%.17g\",\"v\":%.17g}", suffix, le, v);
}

aq_metrics_batch *aq_metrics_flush_begin(const char **json)
{
    aq_metrics_batch *b = NULL;
    pthread_mutex_lock(&mu);
    if (batch_open) goto done;
    for (size_t i = 0; i < SLOTS; i++) {
        series *s = slots[i];
        if (!s) continue;
        int moved = s->hist ? s->v[NB] > s->sent[NB] : s->v[0] > s->sent[0];
        if (!moved) continue;
        if (!b) {
            b = aq_calloc(1, sizeof *b);
            b->items = aq_malloc(sizeof *b->items * (size_t)nseries);
        }
        struct item *it = &b->items[b->n++];
        it->s = s;
        for (int k = 0; k < NV; k++) it->d[k] = s->v[k] - s->sent[k];
    }
    if (b) batch_open = 1;
done:
    pthread_mutex_unlock(&mu);
    if (!b) return NULL;
    aq_buf out;
    aq_buf_init(&out);
    aq_buf_adds(&out, "[");
    for (int i = 0; i < b->n; i++) {
        const struct item *it = &b->items[i];
        if (!it->s->hist) { add_row(&out, it->s, "", 0, it->d[0]); continue; }
        for (int k = 0; k < NB; k++) add_row(&out, it->s, "_bucket", aq_metrics_bounds[k], it->d[k]);
        add_row(&out, it->s, "_bucket", INFINITY, it->d[NB]);
        add_row(&out, it->s, "_count", 0, it->d[NB]);
        add_row(&out, it->s, "_sum", 0, it->d[NB + 1]);
    }
    aq_buf_adds(&out, "]");
    b->json = aq_buf_take(&out);
    *json = b->json;
    return b;
}

void aq_metrics_flush_end(aq_metrics_batch *b, int ok)
{
    if (!b) return;
    pthread_mutex_lock(&mu);
    if (ok)
        for (int i = 0; i < b->n; i++)
            for (int k = 0; k < NV; k++) b->items[i].s->sent[k] += b->items[i].d[k];
    batch_open = 0;
    pthread_mutex_unlock(&mu);
    free(b->items);
    free(b->json);
    free(b);
}
