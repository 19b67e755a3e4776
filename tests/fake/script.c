/* script.c — the script of bin/agentq-fake (format in main.c): loading and
 * checking the JSON file, reloading it when it changes on disk, choosing the
 * step a request gets, and rendering responses.
 *
 * DESIGN: a step is known by its index in the array. How many times each
 * index has been served is kept apart from the parsed steps, so a reload
 * (a test appended steps) keeps what was already served: step 0 served
 * once stays served even though the new file holds it again. Rewriting
 * earlier steps in place is allowed but only their remaining servings
 * count. */
#include "fake.h"
#include "aq_alloc.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_SCRIPT (64u * 1024u * 1024u)

static void free_steps(aq_fake_step *steps, int n)
{
    for (int i = 0; i < n; i++) {
        free(steps[i].body);
        free(steps[i].raw);
        free(steps[i].match);
    }
    free(steps);
}

void aq_fake_script_init(aq_fake_script *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->path = aq_strdup(path);
}

void aq_fake_script_dispose(aq_fake_script *s)
{
    free_steps(s->steps, s->n);
    cJSON_Delete(s->root);
    free(s->served);
    free(s->path);
    memset(s, 0, sizeof *s);
}

static int valid_header_name(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
    return 1;
}

static int integer(const cJSON *v, long lo, long hi, long *out)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi)) return 0;
    long x = (long)v->valuedouble;
    if ((double)x != v->valuedouble) return 0;
    *out = x;
    return 1;
}

/* Does header value h contain CR or LF (which would split the response)? */
static int has_crlf(const cJSON *h)
{
    return cJSON_IsString(h) && strpbrk(h->valuestring, "\r\n") != NULL;
}

/* Check one step object and fill st; 0, or -1 with err set. */
static int parse_step(const cJSON *o, int i, aq_fake_step *st, char *err, size_t errlen)
{
    char why[300];
#define BAD(...) do { snprintf(why, sizeof why, __VA_ARGS__); goto bad; } while (0)
    st->status = 200;
    st->close = -1;
    st->repeat = 1;
    if (!cJSON_IsObject(o)) BAD("not an object");
    for (const cJSON *f = o->child; f; f = f->next) {
        const char *k = f->string;
        long x;
        if (!strcmp(k, "status")) {
            if (!integer(f, 100, 999, &x)) BAD("status must be 100..999");
            st->status = (int)x;
        } else if (!strcmp(k, "headers")) {
            if (!cJSON_IsObject(f)) BAD("headers must be an object");
            for (const cJSON *h = f->child; h; h = h->next) {
                if (!valid_header_name(h->string))
                    BAD("bad header name \"%.200s\"", h->string);
                if (!cJSON_IsString(h) && !cJSON_IsNumber(h))
                    BAD("header %.200s: value must be a string or number", h->string);
                if (has_crlf(h))
                    BAD("header %.200s: CR or LF in the value (use raw)", h->string);
            }
            st->headers = (cJSON *)f;
        } else if (!strcmp(k, "body")) {
            free(st->body);
            st->body = NULL;
            if (cJSON_IsString(f)) {
                st->body = aq_strdup(f->valuestring);
                st->body_type = "text/plain";
            } else if (cJSON_IsNull(f)) {
                st->body = aq_strdup("");
                st->body_type = NULL;
            } else {
                st->body = cJSON_PrintUnformatted(f);
                st->body_type = "application/json";
            }
            if (!st->body) BAD("cannot serialize body");
            st->body_len = strlen(st->body);
        } else if (!strcmp(k, "raw")) {
            if (!cJSON_IsString(f)) BAD("raw must be a string");
            free(st->raw);
            st->raw = aq_strdup(f->valuestring);
        } else if (!strcmp(k, "delay_ms")) {
            if (!integer(f, 0, 3600000, &st->delay_ms)) BAD("delay_ms must be 0..3600000");
        } else if (!strcmp(k, "close")) {
            if (!cJSON_IsBool(f)) BAD("close must be true or false");
            st->close = cJSON_IsTrue(f);
        } else if (!strcmp(k, "match")) {
            if (!cJSON_IsString(f)) BAD("match must be a string");
            free(st->match);
            st->match = aq_strdup(f->valuestring);
        } else if (!strcmp(k, "repeat")) {
            if (!integer(f, -1, 1000000000L, &st->repeat)) BAD("repeat must be -1 (forever) or 0..1e9");
        } else if (strcmp(k, "comment")) {
            BAD("unknown field \"%.200s\"", k);
        }
    }
    if (!st->body) st->body = aq_strdup("");
    return 0;
bad:
    snprintf(err, errlen, "step %d: %s", i, why);
    return -1;
#undef BAD
}

/* The whole file, NUL-terminated (heap), or NULL with err set. */
static char *slurp(const char *path, const struct stat *sb, char *err, size_t errlen)
{
    if (sb->st_size > (off_t)MAX_SCRIPT) {
        snprintf(err, errlen, "%s: larger than 64 MiB", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = (size_t)sb->st_size + 1, n = 0, k;
    char *text = aq_malloc(cap + 1);
    while ((k = fread(text + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            if (cap > MAX_SCRIPT) break;
            cap *= 2;
            text = aq_realloc(text, cap + 1);
        }
    }
    int bad = ferror(f) || n > MAX_SCRIPT;
    fclose(f);
    if (bad) { snprintf(err, errlen, "%s: read error or too large", path); free(text); return NULL; }
    text[n] = '\0';
    return text;
}

int aq_fake_script_refresh(aq_fake_script *s, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(s->path, &sb)) { snprintf(err, errlen, "%s: %s", s->path, strerror(errno)); return -1; }
    long long mt = (long long)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    int same = sb.st_dev == s->dev && sb.st_ino == s->ino && sb.st_size == s->size && mt == s->mtime_ns;
    if (s->root && same) return 0;
    char *text = slurp(s->path, &sb, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    aq_fake_step *steps = NULL;
    int n = 0;
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON", s->path);
        goto fail;
    }
    if (!cJSON_IsArray(root)) {
        snprintf(err, errlen, "%s: not a JSON array of steps", s->path);
        goto fail;
    }
    n = cJSON_GetArraySize(root);
    steps = aq_calloc((size_t)n + 1, sizeof *steps);
    int i = 0;
    for (const cJSON *o = root->child; o; o = o->next, i++)
        if (parse_step(o, i, &steps[i], err, errlen)) goto fail;
    if (n > s->served_cap) {
        s->served = aq_realloc(s->served, (size_t)n * sizeof *s->served);
        memset(s->served + s->served_cap, 0, (size_t)(n - s->served_cap) * sizeof *s->served);
        s->served_cap = n;
    }
    free_steps(s->steps, s->n);
    cJSON_Delete(s->root);
    s->root = root;
    s->steps = steps;
    s->n = n;
    s->dev = sb.st_dev;
    s->ino = sb.st_ino;
    s->size = sb.st_size;
    s->mtime_ns = mt;
    return 1;
fail:
    free_steps(steps, n);
    cJSON_Delete(root);
    return -1;
}

int aq_fake_script_pick(aq_fake_script *s, const char *target)
{
    for (int i = 0; i < s->n; i++) {
        const aq_fake_step *st = &s->steps[i];
        if (st->repeat >= 0 && s->served[i] >= st->repeat) continue;
        if (st->match && !strstr(target, st->match)) continue;
        s->served[i]++;
        return i;
    }
    return -1;
}

static const char *reason(int status)
{
    static const struct { int code; const char *text; } t[] = {
        {100, "Continue"}, {200, "OK"}, {201, "Created"}, {202, "Accepted"}, {204, "No Content"},
        {301, "Moved Permanently"}, {302, "Found"}, {304, "Not Modified"}, {400, "Bad Request"},
        {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
        {408, "Request Timeout"}, {409, "Conflict"}, {413, "Content Too Large"},
        {422, "Unprocessable Content"}, {429, "Too Many Requests"}, {500, "Internal Server Error"},
        {501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
        {504, "Gateway Timeout"}, {0, NULL},
    };
    for (int i = 0; t[i].code; i++)
        if (t[i].code == status) return t[i].text;
    return "Status";
}

/* Does the step's headers object name h (any case)? */
static int step_has(const aq_fake_step *st, const char *h)
{
    for (const cJSON *x = st->headers ? st->headers->child : NULL; x; x = x->next)
        if (!strcasecmp(x->string, h)) return 1;
    return 0;
}

void aq_fake_render_error(int status, const char *msg, int close, aq_buf *out)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    char *m = aq_sprintf("fake: %s", msg);
    cJSON_AddStringToObject(e, "message", m);
    char *body = cJSON_PrintUnformatted(o);
    aq_buf_reset(out);
    aq_buf_addf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                status, reason(status), strlen(body));
    aq_buf_addf(out, "%s\r\n%s", close ? "Connection: close\r\n" : "", body);
    free(body);
    free(m);
    cJSON_Delete(o);
}

void aq_fake_render(const aq_fake_step *st, const aq_fake_req *req, aq_buf *out, int *close_after)
{
    aq_buf_reset(out);
    int close = !req->keep_alive;
    if (!st) {
        *close_after = close;
        aq_fake_render_error(500, "script exhausted", close, out);
        return;
    }
    if (st->raw) {
        *close_after = st->close != 0 || close;
        aq_buf_adds(out, st->raw);
        return;
    }
    close = close || st->close == 1;
    *close_after = close;
    int bodyless = st->status < 200 || st->status == 204 || st->status == 304;
    aq_buf_addf(out, "HTTP/1.1 %d %s\r\n", st->status, reason(st->status));
    for (const cJSON *h = st->headers ? st->headers->child : NULL; h; h = h->next) {
        if (cJSON_IsString(h)) aq_buf_addf(out, "%s: %s\r\n", h->string, h->valuestring);
        else if (h->valuedouble >= -1e15 && h->valuedouble <= 1e15 &&
                 h->valuedouble == (double)(long long)h->valuedouble)
            aq_buf_addf(out, "%s: %lld\r\n", h->string, (long long)h->valuedouble);
        else aq_buf_addf(out, "%s: %g\r\n", h->string, h->valuedouble);
    }
    if (!bodyless) {
        if (st->body_type && !step_has(st, "Content-Type"))
            aq_buf_addf(out, "Content-Type: %s\r\n", st->body_type);
        if (!step_has(st, "Content-Length")) aq_buf_addf(out, "Content-Length: %zu\r\n", st->body_len);
    }
    if (!step_has(st, "Connection")) {
        if (close) aq_buf_adds(out, "Connection: close\r\n");
        else if (req->minor == 0) aq_buf_adds(out, "Connection: keep-alive\r\n");
    }
    aq_buf_adds(out, "\r\n");
    if (!bodyless && !req->head_only) aq_buf_add(out, st->body, st->body_len);
}
