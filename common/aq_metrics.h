/* aq_metrics.h — the worker side's counters and histograms (Prometheus
 * families), kept in memory and flushed as increments into the
 * metric_counters table (sql/018_metrics.sql), where the API reads the
 * cluster-wide totals for /metrics.
 *
 * Any thread may count; the worker's loop flushes. A flush takes the
 * increments made since the last committed flush; if its transaction fails
 * they stay and go with the next one, so a total never counts an increment
 * twice or loses one, except those not yet flushed when the process dies.
 * Series are keyed by family and labels; at most AQ_METRICS_MAX_SERIES of
 * them (further ones are dropped, with one warning). Label values are
 * escaped here. */
#ifndef AQ_METRICS_H
#define AQ_METRICS_H

#define AQ_METRICS_MAX_SERIES 2048

/* The histograms' bucket bounds in seconds (and +Inf). */
#define AQ_METRICS_BUCKETS 14
extern const double aq_metrics_bounds[AQ_METRICS_BUCKETS];

/* Add v (>= 0) to the counter family{labels}; the variadic part is label
 * name/value pairs ending with NULL: aq_metrics_add("x_total", 1, "type", t, NULL). */
void aq_metrics_add(const char *family, double v, ...) __attribute__((sentinel));
/* One observation of v seconds in the histogram family{labels}. */
void aq_metrics_observe(const char *family, double v, ...) __attribute__((sentinel));

/* A series looked up once and counted many times (a hot path's handle):
 * NULL past the cap (counting into NULL does nothing). Lives as long as the
 * process. */
typedef struct aq_metrics_series aq_metrics_series;
aq_metrics_series *aq_metrics_counter(const char *family, ...) __attribute__((sentinel));
aq_metrics_series *aq_metrics_histogram(const char *family, ...) __attribute__((sentinel));
void aq_metrics_series_add(aq_metrics_series *s, double v);
void aq_metrics_series_observe(aq_metrics_series *s, double v);

/* The worker's named points (one line each where they happen). */
void aq_metrics_model_call(const char *provider, const char *model, int ok, int transient, long prompt_tokens,
                           long completion_tokens);
/* why: NULL when sent, else "retry", "blocked" or "failed". */
void aq_metrics_telegram_send(const char *why);

/* Flushing. aq_metrics_flush_begin returns the increments not yet flushed as
 * the one parameter of aq_metrics_sql_flush (JSON text, *json, owned by the
 * batch) and a batch to end once the statement's transaction is known to
 * have committed (ok = 1) or not (ok = 0); NULL when there is nothing to
 * send or a batch is still open. */
typedef struct aq_metrics_batch aq_metrics_batch;
aq_metrics_batch *aq_metrics_flush_begin(const char **json);
void aq_metrics_flush_end(aq_metrics_batch *b, int ok);
extern const char aq_metrics_sql_flush[];

#endif
