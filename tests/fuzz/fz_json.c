/* fz_json.c — request bodies as the API reads them (aq_api_body_parse, the
 * pure part of aq_api_parse_body: aq_json_scan, then aq_json_parse_whole)
 * and the strict validator (aq_json_strict), with the UTF-8 helpers and the
 * escaper. Contracts: an accepted body is an object with no raw control
 * character and no \u0000, and a refused one has a reason; what
 * the strict validator accepts passes the pre-scan, parses, and survives
 * print-and-reparse (aq_json_print, as job input is stored) unchanged, every
 * number to the bit; the escaper's output is the JSON string of its
 * input; sanitized text is valid UTF-8 of the same length. */
#include "fuzz.h"
#include "api.h"
#include "aq_error.h"
#include "aq_json.h"
#include <math.h>

/* a and b have the same shape and exactly the same numbers (cJSON_Compare
 * forgives a last-digit difference). */
static int same_numbers(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsNumber(a) && (!cJSON_IsNumber(b) || a->valuedouble != b->valuedouble)) return 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same_numbers(x, y)) return 0;
    return !x && !y;
}

/* No number in v is infinite (cJSON reads 1e999 as inf and prints it as null). */
static int finite_numbers(const cJSON *v)
{
    if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) return 0;
    for (const cJSON *c = v->child; c; c = c->next)
        if (!finite_numbers(c)) return 0;
    return 1;
}

static void body(const char *s, size_t n)
{
    size_t nul_at, bad_at = aq_json_scan(s, n, &nul_at);
    FZ_CHECK(bad_at == SIZE_MAX || bad_at < n);
    FZ_CHECK(nul_at == SIZE_MAX || nul_at + 6 <= n);
    cJSON *obj = NULL;
    char why[160] = "";
    int rc = aq_api_body_parse(s, n, &obj, why, sizeof why);
    if (rc == 0) FZ_CHECK(cJSON_IsObject(obj) && bad_at == SIZE_MAX && nul_at == SIZE_MAX);
    else FZ_CHECK(obj == NULL && why[0] && (rc == AQ_EJSON || (rc == AQ_EINVAL && nul_at != SIZE_MAX)));
    cJSON_Delete(obj);

    cJSON *v = bad_at == SIZE_MAX ? aq_json_parse_whole(s, n) : NULL;
    why[0] = '\0';
    if (aq_json_strict(s, n, why, sizeof why)) {
        FZ_CHECK(aq_utf8_valid(s, n));
        FZ_CHECK(bad_at == SIZE_MAX && nul_at == SIZE_MAX);
        FZ_CHECK(v != NULL);
        if (finite_numbers(v)) {
            char *text = aq_json_print(v);
            FZ_CHECK(text != NULL);
            cJSON *again = aq_json_parse_whole(text, strlen(text));
            FZ_CHECK(again != NULL && cJSON_Compare(v, again, 1) && same_numbers(v, again));
            FZ_CHECK(aq_json_strict(text, strlen(text), NULL, 0));
            cJSON_Delete(again);
            free(text);
        }
    } else {
        FZ_CHECK(why[0] != '\0');
    }
    cJSON_Delete(v);
}

static void text(const char *s)
{
    size_t n = strlen(s);
    FZ_CHECK(aq_utf8_chars(s) <= n);
    if (aq_utf8_valid(s, n)) {
        size_t cap = 6 * n + 3;
        char *out = malloc(cap);
        size_t len = aq_json_escape(out, cap, s);
        FZ_CHECK(len < cap && out[len] == '\0' && strlen(out) == len);
        cJSON *v = cJSON_Parse(out);
        FZ_CHECK(cJSON_IsString(v) && strcmp(v->valuestring, s) == 0);
        cJSON_Delete(v);
        size_t small = n % 17;   /* truncated: still terminated, inside cap */
        len = aq_json_escape(out, small, s);
        FZ_CHECK(small == 0 || (len < small && out[len] == '\0'));
        free(out);
    }
    char *copy = strdup(s);
    aq_utf8_sanitize(copy);
    FZ_CHECK(strlen(copy) == n && aq_utf8_valid(copy, n));
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    body((const char *)data, size);
    char *s = fz_cstr(data, size);
    text(s);
    free(s);
    return 0;
}
