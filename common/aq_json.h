/* aq_json.h — small JSON and UTF-8 helpers shared by both processes: escaping
 * into a fixed buffer, UTF-8 validation (Postgres rejects invalid UTF-8, so
 * anything bound for jsonb or text passes through here first). */
#ifndef AQ_JSON_H
#define AQ_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <cJSON.h>

/* Write s as a quoted JSON string into out (at most cap bytes, always
 * terminated, truncated if needed). Returns bytes written, excluding NUL. */
size_t aq_json_escape(char *out, size_t cap, const char *s);
/* True when s[0..n) is well-formed UTF-8 with no NUL bytes. */
bool aq_utf8_valid(const char *s, size_t n);
/* True when s[0..n) is exactly one JSON value (RFC 8259) with nothing but
 * whitespace around it, and none of what parsers disagree on or Postgres'
 * jsonb refuses: no duplicate member name in any object (compared after
 * unescaping), no \u0000 or unpaired surrogate escape, no raw control
 * character, no invalid UTF-8, nesting at most 64 deep. Otherwise false and
 * a short reason in why (why may be NULL). Pure; any thread. */
bool aq_json_strict(const char *s, size_t n, char *why, size_t whylen);
/* Walk JSON text as the grammar sees it: the offset of the first raw control
 * character (in a string, or outside one where JSON allows only space, tab,
 * CR and LF), or SIZE_MAX; *nul_at gets the offset of the first \u0000
 * escape, or SIZE_MAX ("\\u0000" is an escaped backslash, then text). The
 * cheap pre-check of bodies cJSON would cut short (its strings end at NUL). */
size_t aq_json_scan(const char *s, size_t n, size_t *nul_at);
/* Parse s[0..n) as exactly one JSON value with only whitespace after it
 * ("{...}garbage" is refused, which cJSON alone would accept): the value
 * (the caller cJSON_Deletes it), or NULL. */
cJSON *aq_json_parse_whole(const char *s, size_t n);
/* cJSON_PrintUnformatted, except that every number prints as the exact double
 * it holds: cJSON's printer keeps 15 digits whenever it deems them within an
 * epsilon of the value, so 9007199254740991 would print as 9.00719925474099e+15
 * and 0.30000000000000004 as 0.3. Infinite numbers print as null, as cJSON's.
 * The caller frees the text (free); NULL when out of memory. */
char *aq_json_print(const cJSON *v);
/* Characters (code points) in valid UTF-8 text, as AGENTQ_MAX_MESSAGE_CHARS counts them. */
size_t aq_utf8_chars(const char *s);
/* Replace every byte that is not part of well-formed UTF-8 with '?', in place. */
void aq_utf8_sanitize(char *s);
/* v as an integer within lo..hi (bounds within +-2^53, where a double holds
 * every integer): true with *out set when v is a number with no fraction in
 * range. The range is checked before the conversion: converting a double
 * beyond long long (1e300) is undefined behaviour, not a large number. */
bool aq_json_int(const cJSON *v, long long lo, long long hi, long long *out);
#define AQ_JSON_INT_MAX 9007199254740992LL   /* 2^53 */

#endif
