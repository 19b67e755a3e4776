/* aq_log.c — JSON line logger (see aq_log.h). */
#include "aq_log.h"
#include "aq_json.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static aq_log_level active = AQ_LOG_INFO;
static const char *process;
static const char *names[] = {"debug", "info", "warn", "error"};

void aq_log_set_level(const char *name)
{
    active = AQ_LOG_INFO;
    for (int i = 0; name && i < 4; i++)
        if (strcasecmp(name, names[i]) == 0) active = (aq_log_level)i;
}

void aq_log_set_process(const char *name) { process = name; }

/* Unnamed: bin/agentq is the cli, bin/agentq-api the api, bin/agentq-worker
 * the worker, anything else its program name. */
static const char *process_name(void)
{
    if (process) return process;
    const char *p = program_invocation_short_name;
    if (!strcmp(p, "agentq")) return "cli";
    if (!strncmp(p, "agentq-", 7) && (!strcmp(p + 7, "api") || !strcmp(p + 7, "worker"))) return p + 7;
    return p;
}

int aq_log_enabled(aq_log_level level) { return level >= active; }

void aq_log(aq_log_level level, const char *module, int64_t job_id, const char *fmt, ...)
{
    if (level < active) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    aq_utf8_sanitize(msg);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[4096 + 256];
    size_t n = (size_t)snprintf(line, sizeof line,
        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"process\":\"%s\",\"pid\":%ld,"
        "\"module\":\"%s\"",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        (int)(tv.tv_usec / 1000), names[level], process_name(),
        (long)getpid(), module);
    if (job_id) n += (size_t)snprintf(line + n, sizeof line - n, ",\"job_id\":%lld", (long long)job_id);
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"msg\":");
    n += aq_json_escape(line + n, sizeof line - n - 3, msg);
    line[n++] = '}';
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
