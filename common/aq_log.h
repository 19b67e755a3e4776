/* aq_log.h — JSON logging: one object per line on stderr, written with one
 * write(2) so lines from different threads never interleave.
 *
 *   {"ts":"2026-11-21T10:00:00.123Z","level":"info","process":"worker","pid":4242,
 *    "module":"worker","job_id":42,"msg":"..."}
 *
 * process is what aq_log_set_process named (api, worker, cli), else the
 * program's name; pid is the writer's. The message is made valid UTF-8
 * (a request path may not be). Formatting is skipped below the active level
 * (AGENTQ_LOG_LEVEL). Any thread may call these. */
#ifndef AQ_LOG_H
#define AQ_LOG_H
#include <stdint.h>

typedef enum { AQ_LOG_DEBUG, AQ_LOG_INFO, AQ_LOG_WARN, AQ_LOG_ERROR } aq_log_level;

/* Set the active level; "debug"/"info"/"warn"/"error" (unknown → info). */
void aq_log_set_level(const char *name);
/* Name the process in every line ("api", "worker", "cli"); call at start,
 * before threads. The string must outlive the process (a literal). */
void aq_log_set_process(const char *name);
int aq_log_enabled(aq_log_level level);
/* job_id 0 means "no job". */
void aq_log(aq_log_level level, const char *module, int64_t job_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define aq_debug(mod, ...) do { if (aq_log_enabled(AQ_LOG_DEBUG)) aq_log(AQ_LOG_DEBUG, mod, 0, __VA_ARGS__); } while (0)
#define aq_info(mod, ...)  aq_log(AQ_LOG_INFO, mod, 0, __VA_ARGS__)
#define aq_warn(mod, ...)  aq_log(AQ_LOG_WARN, mod, 0, __VA_ARGS__)
#define aq_error(mod, ...) aq_log(AQ_LOG_ERROR, mod, 0, __VA_ARGS__)

#endif
