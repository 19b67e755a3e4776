/* aq_json.c — JSON escaping and UTF-8 validation (see aq_json.h). */
#include "aq_json.h"
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
