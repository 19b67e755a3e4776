/* aq_json.c — JSON escaping, UTF-8 validation and the strict JSON validator
 * (see aq_json.h). */
#include "aq_json.h"
#include "aq_alloc.h"
#include "aq_error.h"
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

size_t aq_json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap < 3) { if (cap) out[0] = '\0'; return 0; }
    out[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t len = 0;
        switch (*p) {
        case '"':  memcpy(esc, "\\\"", 2); len = 2; break;
        case '\\': memcpy(esc, "\\\\", 2); len = 2; break;
        case '\n': memcpy(esc, "\\n", 2); len = 2; break;
        case '\r': memcpy(esc, "\\r", 2); len = 2; break;
        case '\t': memcpy(esc, "\\t", 2); len = 2; break;
        default:
            if (*p < 0x20) len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
            else { esc[0] = (char)*p; len = 1; }
        }
        if (n + len + 2 > cap) break;
        memcpy(out + n, esc, len);
        n += len;
    }
    out[n++] = '"';
    out[n] = '\0';
    return n;
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 if malformed. */
static size_t seq_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (avail < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

bool aq_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = seq_len(p + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

void aq_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t l = seq_len(p + i, n - i);
        if (!l) { p[i] = '?'; l = 1; }
        i += l;
    }
}

/* ---- the strict validator: a recursive-descent pass that builds nothing but
 * each object's decoded member names, sorted at the object's end to find a
 * repeat ---- */

#define STRICT_DEPTH 64

typedef struct strict {
    const unsigned char *start, *p, *end;
    char *why;
    size_t whylen;
    int depth;
} strict;

static bool bad(strict *st, const char *reason)
{
    if (st->why && st->whylen) snprintf(st->why, st->whylen, "%s at byte %zu", reason, (size_t)(st->p - st->start));
    return false;
}

static void ws(strict *st)
{
    while (st->p < st->end && (*st->p == ' ' || *st->p == '\t' || *st->p == '\n' || *st->p == '\r')) st->p++;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return AQ_EINVAL;
    }
    *out = v;
    return 0;
}

/* A string at st->p (at its opening quote); its decoded bytes go to out
 * (heap, NUL-free by construction) when out is not NULL. */
static bool string(strict *st, char **out, size_t *outlen)
{
    st->p++;
    size_t cap = 0, len = 0;
    char *buf = NULL;
#define PUT(c) do { if (out) { if (len + 1 >= cap) { cap = cap ? cap * 2 : 32; buf = aq_realloc(buf, cap); } \
        buf[len++] = (char)(c); } } while (0)
    for (;;) {
        if (st->p >= st->end) { free(buf); return bad(st, "unterminated string"); }
        unsigned c = *st->p;
        if (c == '"') { st->p++; break; }
        if (c < 0x20) { free(buf); return bad(st, "raw control character in a string"); }
        if (c != '\\') {
            size_t l = seq_len(st->p, (size_t)(st->end - st->p));
            if (!l) { free(buf); return bad(st, "invalid UTF-8"); }
            for (size_t i = 0; i < l; i++) PUT(st->p[i]);
            st->p += l;
            continue;
        }
        if (st->end - st->p < 2) { free(buf); return bad(st, "unterminated escape"); }
        unsigned e = st->p[1];
        const char *simple = strchr("\"\\/bfnrt", (int)e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            PUT(map[simple - "\"\\/bfnrt"]);
            st->p += 2;
            continue;
        }
        uint32_t cp, lo;
        if (e != 'u' || st->end - st->p < 6 || hex4(st->p + 2, &cp)) { free(buf); return bad(st, "bad escape"); }
        if (cp == 0) { free(buf); return bad(st, "\\u0000 in a string"); }
        st->p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) { free(buf); return bad(st, "unpaired surrogate escape"); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (st->end - st->p < 6 || st->p[0] != '\\' || st->p[1] != 'u' || hex4(st->p + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF) { free(buf); return bad(st, "unpaired surrogate escape"); }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            st->p += 6;
        }
        if (cp < 0x80) PUT(cp);
        else if (cp < 0x800) { PUT(0xC0 | (cp >> 6)); PUT(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) { PUT(0xE0 | (cp >> 12)); PUT(0x80 | ((cp >> 6) & 0x3F)); PUT(0x80 | (cp & 0x3F)); }
        else { PUT(0xF0 | (cp >> 18)); PUT(0x80 | ((cp >> 12) & 0x3F)); PUT(0x80 | ((cp >> 6) & 0x3F));
               PUT(0x80 | (cp & 0x3F)); }
    }
#undef PUT
    if (out) { *out = buf ? buf : aq_strdup(""); *outlen = len; }
    return true;
}

static bool number(strict *st)
{
    const unsigned char *p = st->p, *e = st->end;
    if (p < e && *p == '-') p++;
    if (p >= e || *p < '0' || *p > '9') return bad(st, "bad number");
    if (*p == '0') p++; else while (p < e && *p >= '0' && *p <= '9') p++;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return bad(st, "bad number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return bad(st, "bad number");
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    st->p = p;
    return true;
}

typedef struct key { char *s; size_t n; } key;

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static bool value(strict *st);

static bool object(strict *st)
{
    st->p++;
    key *keys = NULL;
    size_t nk = 0, cap = 0;
    bool ok = false;
    ws(st);
    if (st->p < st->end && *st->p == '}') { st->p++; return true; }
    for (;;) {
        ws(st);
        if (st->p >= st->end || *st->p != '"') { bad(st, "expected a member name"); goto done; }
        if (nk == cap) {
            cap = cap ? cap * 2 : 8;
            keys = aq_realloc(keys, cap * sizeof *keys);
        }
        if (!string(st, &keys[nk].s, &keys[nk].n)) goto done;
        nk++;
        ws(st);
        if (st->p >= st->end || *st->p != ':') { bad(st, "expected ':'"); goto done; }
        st->p++;
        if (!value(st)) goto done;
        ws(st);
        if (st->p < st->end && *st->p == ',') { st->p++; continue; }
        if (st->p < st->end && *st->p == '}') { st->p++; break; }
        bad(st, "expected ',' or '}'");
        goto done;
    }
    qsort(keys, nk, sizeof *keys, key_cmp);
    ok = true;
    for (size_t i = 1; ok && i < nk; i++)
        if (!key_cmp(&keys[i - 1], &keys[i])) {
            if (st->why && st->whylen)
                snprintf(st->why, st->whylen, "duplicate member name \"%.*s\"", (int)(keys[i].n > 60 ? 60 : keys[i].n),
                         keys[i].s);
            ok = false;
        }
done:
    for (size_t i = 0; i < nk; i++) free(keys[i].s);
    free(keys);
    return ok;
}

static bool literal(strict *st, const char *word)
{
    size_t l = strlen(word);
    if ((size_t)(st->end - st->p) < l || memcmp(st->p, word, l)) return bad(st, "unexpected character");
    st->p += l;
    return true;
}

static bool value(strict *st)
{
    ws(st);
    if (st->p >= st->end) return bad(st, "unexpected end");
    if (++st->depth > STRICT_DEPTH) return bad(st, "nested too deep");
    bool ok;
    switch (*st->p) {
    case '{': ok = object(st); break;
    case '[':
        st->p++;
        ws(st);
        if (st->p < st->end && *st->p == ']') { st->p++; ok = true; break; }
        for (;;) {
            if (!(ok = value(st))) break;
            ws(st);
            if (st->p < st->end && *st->p == ',') { st->p++; continue; }
            if (st->p < st->end && *st->p == ']') { st->p++; break; }
            ok = bad(st, "expected ',' or ']'");
            break;
        }
        break;
    case '"': ok = string(st, NULL, NULL); break;
    case 't': ok = literal(st, "true"); break;
    case 'f': ok = literal(st, "false"); break;
    case 'n': ok = literal(st, "null"); break;
    default: ok = number(st);
    }
    st->depth--;
    return ok;
}

bool aq_json_strict(const char *s, size_t n, char *why, size_t whylen)
{
    strict st = {(const unsigned char *)s, (const unsigned char *)s, (const unsigned char *)s + n, why, whylen, 0};
    if (why && whylen) why[0] = '\0';
    if (!value(&st)) return false;
    ws(&st);
    if (st.p != st.end) return bad(&st, "trailing bytes after the value");
    return true;
}

size_t aq_json_scan(const char *s, size_t n, size_t *nul_at)
{
    int in_str = 0;
    *nul_at = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (in_str) {
            if (ch == '"') {
                in_str = 0;
            } else if (ch == '\\') {
                if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4) && *nul_at == SIZE_MAX) *nul_at = i;
                i++;   /* the escaped character is never a quote or a backslash of its own */
            } else if (ch < 0x20) {
                return i;
            }
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch < 0x20 && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            return i;
        }
    }
    return SIZE_MAX;
}

size_t aq_utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

cJSON *aq_json_parse_whole(const char *s, size_t n)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    while (v && end < s + n && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (v && end != s + n) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

/* Turn every finite number in v into raw text that reads back as the same double. */
static int exact_numbers(cJSON *v)
{
    for (cJSON *c = v->child; c; c = c->next)
        if (exact_numbers(c)) return -1;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
    char num[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, v->valuedouble);
        if (strtod(num, NULL) == v->valuedouble) break;
    }
    size_t len = strlen(num) + 1;
    char *raw = cJSON_malloc(len);
    if (!raw) return -1;
    memcpy(raw, num, len);
    v->type = cJSON_Raw;   /* cJSON_Delete frees valuestring of any non-reference item */
    v->valuestring = raw;
    return 0;
}

char *aq_json_print(const cJSON *v)
{
    cJSON *copy = cJSON_Duplicate(v, 1);
    char *text = copy && !exact_numbers(copy) ? cJSON_PrintUnformatted(copy) : NULL;
    cJSON_Delete(copy);
    return text;
}

bool aq_json_int(const cJSON *v, long long lo, long long hi, long long *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi)) return false;   /* NaN fails too */
    long long n = (long long)d;
    if ((double)n != d) return false;
    *out = n;
    return true;
}
