/* fz_tg_split.c — cutting a reply (model text, so outside data) into
 * Telegram messages (aq_tg_split). The first input byte picks the limit, the
 * rest is the text. Contracts (aq_tg_api.h): chunks are in order and apart,
 * each at most `limit` UTF-16 units and never only whitespace, no cut inside
 * a UTF-8 sequence, nothing but whitespace is dropped between them, and a
 * text that fits is one chunk, verbatim. */
#include "fuzz.h"
#include "aq_error.h"
#include "aq_tg_api.h"

#define MAX_CHUNKS 64

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Bytes of the code point at s[i] as aq_tg_split reads them (a malformed byte stands alone). */
static size_t cp_len(const unsigned char *s, size_t i, size_t n)
{
    unsigned char c = s[i];
    size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + l > n) return 1;
    for (size_t k = 1; k < l; k++) if ((s[i + k] & 0xC0) != 0x80) return 1;
    return l;
}

/* UTF-16 units in s[a..b) (b on a code-point boundary). */
static size_t units(const unsigned char *s, size_t n, size_t a, size_t b)
{
    size_t u = 0;
    for (size_t i = a; i < b; i += cp_len(s, i, n)) u += cp_len(s, i, n) == 4 ? 2 : 1;
    return u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t limit = data[0] < 2 ? 4096 : data[0];
    char *text = fz_cstr(data + 1, size - 1);
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), starts[MAX_CHUNKS], lens[MAX_CHUNKS];
    int k = aq_tg_split(text, limit, starts, lens, MAX_CHUNKS);
    if (k == AQ_ETOOBIG) { free(text); return 0; }   /* before the boundaries are allocated */
    FZ_CHECK(k >= 0);
    char *boundary = calloc(n + 1, 1);   /* code-point boundaries of the whole text */
    for (size_t i = 0; i < n; i += cp_len(s, i, n)) boundary[i] = 1;
    boundary[n] = 1;
    size_t blank = 0;
    while (blank < n && is_ws(s[blank])) blank++;
    FZ_CHECK((k == 0) == (blank == n));
    if (k > 0 && units(s, n, 0, n) <= limit) FZ_CHECK(k == 1 && starts[0] == 0 && lens[0] == n);
    size_t pos = 0;
    for (int i = 0; i < k; i++) {
        FZ_CHECK(starts[i] >= pos && lens[i] > 0 && starts[i] + lens[i] <= n);
        for (size_t j = pos; j < starts[i]; j++) FZ_CHECK(is_ws(s[j]));   /* only whitespace dropped */
        size_t e = starts[i] + lens[i], j = starts[i];
        FZ_CHECK(boundary[starts[i]] && boundary[e]);         /* no cut inside a sequence */
        FZ_CHECK(units(s, n, starts[i], e) <= limit);
        while (j < e && is_ws(s[j])) j++;
        FZ_CHECK(j < e);                                        /* not only whitespace */
        pos = e;
    }
    for (size_t j = pos; j < n; j++) FZ_CHECK(is_ws(s[j]));
    free(boundary);
    free(text);
    return 0;
}
