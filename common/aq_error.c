/* aq_error.c — tables generated from AQ_ERROR_MAP (see aq_error.h). */
#include "aq_error.h"
#include <stddef.h>

typedef struct { int err; const char *code, *msg; int status; } row;

static const row rows[] = {
#define X(name, code, msg, status) {AQ_##name, code, msg, status},
    AQ_ERROR_MAP(X)
#undef X
};

static const row *find(int err)
{
    for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].err == err) return &rows[i];
    return NULL;
}

const char *aq_strerror(int err)
{
    if (err == AQ_OK) return "ok";
    const row *r = find(err);
    return r ? r->msg : "unknown error";
}

const char *aq_error_code(int err)
{
    const row *r = find(err);
    return r ? r->code : "internal";
}

int aq_error_status(int err)
{
    const row *r = find(err);
    return r ? r->status : 500;
}
