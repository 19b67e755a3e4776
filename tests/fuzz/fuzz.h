/* fuzz.h — what every libFuzzer harness (tests/fuzz/fz_*.c) shares: the entry
 * point's declaration, a contract check that aborts (libFuzzer then keeps the
 * input as a crash file), and a NUL-terminated copy of the input for parsers
 * that take C strings. A harness is one file fz_NAME.c defining
 * LLVMFuzzerTestOneInput, plus its seed inputs in tests/fuzz/seeds/NAME/;
 * `make fuzz` finds both by name. */
#ifndef AQ_FUZZ_H
#define AQ_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken contract is a finding like a crash: say which, then abort. */
#define FZ_CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz contract broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)

/* data[0..size) as a heap C string (the caller frees); a NUL in the input ends it early. */
static inline char *fz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
