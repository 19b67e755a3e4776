/* aq_error.h — the one list of agentq error codes.
 *
 * Each row is (ENUM, code string, message, HTTP status). The X-macro below
 * generates the enum, aq_strerror(), aq_error_code() and aq_error_status(), so a
 * code, its text and its HTTP status never drift apart. Functions return 0 or
 * a negative AQ_E* value. */
#ifndef AQ_ERROR_H
#define AQ_ERROR_H

#define AQ_ERROR_MAP(X)                                                              \
    X(EINVAL,    "invalid_argument",  "invalid argument",                      422)  \
    X(EJSON,     "bad_json",          "request body is not valid JSON",        400)  \
    X(EAUTH,     "unauthorized",      "missing or invalid token",              401)  \
    X(ENOTFOUND, "not_found",         "not found",                             404)  \
    X(EMETHOD,   "method_not_allowed", "method not allowed",                   405)  \
    X(ECONFLICT, "conflict",          "conflict with the current state",       409)  \
    X(ETOOBIG,   "too_large",         "payload too large",                     413)  \
    X(ERATE,     "rate_limited",      "too many requests",                     429)  \
    X(EQUOTA,    "quota_exceeded",    "too many queued jobs",                  429)  \
    X(EDB,       "database_error",    "database error",                        500)  \
    X(EINTERNAL, "internal",          "internal error",                        500)  \
    X(EUNAVAIL,  "unavailable",       "database unreachable",                  503)  \
    X(ECONFIG,   "bad_config",        "invalid configuration",                 500)  \
    X(EIO,       "io_error",          "input/output error",                    500)  \
    X(EIDEMPOTENT, "idempotency_mismatch", "idempotency key used with another request", 422) \
    X(EHEADERS,  "headers_too_large", "request headers too large",             431)  \
    X(EREQUEST,  "bad_request",       "malformed request",                     400)  \
    X(EFORBIDDEN, "forbidden",        "operators only",                        403)

typedef enum aq_err {
    AQ_OK = 0,
#define X(name, code, msg, status) AQ_##name,
    AQ_ERR_FIRST_ = -1000,
    AQ_ERROR_MAP(X)
#undef X
} aq_err;

/* Human text for an error code (static storage; never NULL). */
const char *aq_strerror(int err);
/* Stable machine code string for the API's {"error":{"code":...}} (never NULL). */
const char *aq_error_code(int err);
/* HTTP status for the error (500 for unknown values). */
int aq_error_status(int err);

#endif
