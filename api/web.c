/* web.c — the web console's static files (web/): GET / is index.html, GET
 * /NAME one of the other files, from the table build/web.c embeds at build
 * time; with AGENTQ_WEB_DIR set, read from that folder on each request
 * instead (for editing the console without rebuilding; small files, read
 * on the loop). Only one-segment names of letters, digits, '_', '-' and '.'
 * (not leading) with a known extension are served, so no path leaves the
 * folder. Every file goes out with a strict Content-Security-Policy (only
 * this origin's scripts, styles and API; no inline script or style; no
 * framing), X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer
 * and Cache-Control: no-cache (a new binary's console is seen at once). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_buf.h"
#include "web_files.h"
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WEB_MAX_FILE (1 << 20)

static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
                          " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static const struct { const char *ext, *type; } TYPES[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
};

/* The content type of name, or NULL when it is not a name we serve. */
static const char *type_of(const char *name, size_t n)
{
    if (n == 0 || n > 64 || name[0] == '.') return NULL;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '-' || ch == '.'))
            return NULL;
    }
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        size_t e = strlen(TYPES[i].ext);
        if (n > e && !memcmp(name + n - e, TYPES[i].ext, e)) return TYPES[i].type;
    }
    return NULL;
}

/* The file's bytes from AGENTQ_WEB_DIR into b: 0, or -1 when it cannot be read. */
static int read_dir_file(const char *dir, const char *name, aq_buf *b)
{
    char *path = aq_sprintf("%s/%s", dir, name);
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) goto done;
    char chunk[8192];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0) {
        if (b->len + (size_t)got > WEB_MAX_FILE) goto done;
        aq_buf_add(b, chunk, (size_t)got);
    }
    if (got == 0) rc = 0;
done:
    if (fd >= 0) close(fd);
    free(path);
    return rc;
}

int aq_api_web_serve(api_call *c, const char *path, size_t len)
{
    char name[65];
    aq_buf b;
    aq_buf_init(&b);
    int rc = -1;
    if (len == 1) snprintf(name, sizeof name, "index.html");
    else if (len - 1 < sizeof name) snprintf(name, sizeof name, "%.*s", (int)(len - 1), path + 1);
    else goto done;
    const char *type = type_of(name, strlen(name));
    if (!type) goto done;
    const char *dir = c->t->srv->cfg->web_dir, *data = NULL;
    size_t n = 0;
    if (dir && *dir) {
        if (read_dir_file(dir, name, &b)) goto done;
        data = b.p ? b.p : "";
        n = b.len;
    } else {
        for (const api_web_file *f = aq_api_web_files; f->name && !data; f++)
            if (!strcmp(f->name, name)) data = f->data, n = f->len;
        if (!data) goto done;
    }
    h2o_req_t *req = c->req;
    if (req) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                              CSP, sizeof CSP - 1);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                              H2O_STRLIT("nosniff"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                              H2O_STRLIT("no-referrer"));
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    }
    aq_api_reply_text(c, 200, type, data, n);
    rc = 0;
done:
    aq_buf_dispose(&b);
    return rc;
}
