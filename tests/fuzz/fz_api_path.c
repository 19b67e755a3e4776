/* fz_api_path.c — the API's own reading of a request line: route matching
 * (aq_api_route_find), query parameters (aq_api_query_value) and the
 * parameter parsers (aq_api_parse_int, aq_api_is_uuid). The input is
 * "METHOD PATH[?QUERY]". Contracts: a matched route names a real route and
 * the path's id / session id are valid; an unmatched one lists only real
 * methods; a decoded value is no longer than its encoding; an accepted
 * integer lies within its bounds and is what the digits say. */
#include "fuzz.h"
#include "api.h"

static const char *const params[] = {"limit", "before", "after", "wait", "status", "type", "unread"};

static void check_int(const char *v, long long lo, long long hi)
{
    long long out = 0;
    if (aq_api_parse_int(v, lo, hi, &out)) return;
    FZ_CHECK(out >= lo && out <= hi);
    char *end;
    FZ_CHECK(strtoll(v, &end, 10) == out && *end == '\0' && end != v);
    FZ_CHECK(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size;
    const char *sp = memchr(s, ' ', size);
    if (!sp) return 0;
    const char *path = sp + 1, *q = memchr(path, '?', (size_t)(end - path));
    size_t plen = (size_t)((q ? q : end) - path);

    int route_id = -2;
    int64_t id = 0;
    char uuid[37] = "", allow[64];
    int i = aq_api_route_find(s, (size_t)(sp - s), path, plen, &route_id, &id, uuid, allow, sizeof allow);
    if (i >= 0) {
        FZ_CHECK(route_id >= 0 && route_id < R_NOT_FOUND);
        if (route_id == R_SESSION_MESSAGES) FZ_CHECK(aq_api_is_uuid(uuid, strlen(uuid)));
        if (route_id == R_JOB_GET || route_id == R_JOB_CANCEL || route_id == R_ACTION_DECIDE ||
            route_id == R_SCHEDULE_GET || route_id == R_SCHEDULE_PATCH || route_id == R_SCHEDULE_DELETE ||
            route_id == R_NOTIFICATION_READ)
            FZ_CHECK(id > 0);
    } else {
        FZ_CHECK(route_id == R_NOT_FOUND && strlen(allow) < sizeof allow);
        for (const char *m = allow; *m; ) {
            size_t n = strcspn(m, ",");
            FZ_CHECK((n == 3 && !memcmp(m, "GET", 3)) || (n == 4 && !memcmp(m, "HEAD", 4)) ||
                     (n == 4 && !memcmp(m, "POST", 4)) || (n == 5 && !memcmp(m, "PATCH", 5)) ||
                     (n == 6 && !memcmp(m, "DELETE", 6)));
            m += n;
            if (*m) { FZ_CHECK(m[1] == ' '); m += 2; }
        }
    }
    (void)aq_api_is_uuid(path, plen);

    if (!q) return 0;
    size_t qlen = (size_t)(end - q - 1);
    for (size_t k = 0; k < sizeof params / sizeof params[0]; k++) {
        char *v = aq_api_query_value(q + 1, qlen, params[k]);
        if (!v) continue;
        FZ_CHECK(strlen(v) <= qlen);
        check_int(v, 0, 3600);
        check_int(v, 1, INT64_MAX);
        check_int(v, -5, 5);
        if (aq_api_is_uuid(v, strlen(v))) FZ_CHECK(strlen(v) == 36);
        free(v);
    }
    return 0;
}
