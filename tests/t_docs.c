/* t_docs.c — the documents the project publishes: docs/openapi.yaml passes
 * @redocly/cli's recommended lint with no error (warnings are printed in the
 * test's log); every claim in docs/SECURITY.md's tables names its proof, and
 * each name there is a test of this runner or a fuzz harness. The linter is the pinned one `make deps` installs into
 * .tmp/node (deploy/deps.sh); without node, or without that install, the
 * test fails and says which. The soak's section of docs/BENCHMARKS.md
 * (tests/soak.sh writes it, tests/soak_section.sh splices it) survives the
 * wholesale rewrite `make bench` does. Runs from the project folder (`make test`). */
#include "harness.h"
#include "aq_buf.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REDOCLY ".tmp/node/node_modules/.bin/redocly"

static void openapi_lint(void)
{
    if (access("docs/openapi.yaml", R_OK)) {
        th_fail(__FILE__, __LINE__, "docs/openapi.yaml not found: run the tests from the project folder");
        return;
    }
    if (system("command -v node >/dev/null 2>&1")) {
        th_fail(__FILE__, __LINE__, "node is not installed: the OpenAPI lint needs node and npm"
                " (apt-get install nodejs npm, then make deps)");
        return;
    }
    if (access(REDOCLY, X_OK)) {
        th_fail(__FILE__, __LINE__, "%s is missing: run `make deps` (it installs @redocly/cli with npm)",
                REDOCLY);
        return;
    }
    /* stylish: one line per problem; exit status non-zero on any error */
    FILE *p = popen(REDOCLY " lint docs/openapi.yaml --format=stylish 2>&1", "r");
    if (!p) {
        th_fail(__FILE__, __LINE__, "cannot run %s", REDOCLY);
        return;
    }
    aq_buf out;
    aq_buf_init(&out);
    aq_buf_adds(&out, "");
    char line[4096];
    int errors = 0;
    while (fgets(line, sizeof line, p)) {
        aq_buf_adds(&out, line);
        if (strstr(line, "  error  ")) errors++;
    }
    int st = pclose(p);
    extern char th_log[512];
    FILE *log = fopen(th_log, "a");
    if (log) {
        fputs(out.p, log);
        fclose(log);
    }
    if (st != 0 || errors)
        th_fail(__FILE__, __LINE__, "redocly lint: exit status %d, %d error(s):\n%s", st, errors, out.p);
    CHECK_CONTAINS(out.p, "docs/openapi.yaml: validated");
    aq_buf_dispose(&out);
}

static int is_test_name(const char *name)
{
    for (int g = 0; th_groups[g]; g++)
        for (const th_test *t = th_groups[g]; t->name; t++)
            if (!strcmp(t->name, name)) return 1;
    return 0;
}

static int is_fuzzer(const char *name)
{
    char path[160];
    snprintf(path, sizeof path, "tests/fuzz/fz_%s.c", name);
    return access(path, R_OK) == 0;
}

/* In docs/SECURITY.md, every table whose last column is "proved by": each
 * row names at least one proof in backticks there, and each is a test name
 * in the runner's tables or a fuzz harness (tests/fuzz/fz_NAME.c). */
static void security_cites_real_tests(void)
{
    FILE *f = fopen("docs/SECURITY.md", "r");
    if (!f) {
        th_fail(__FILE__, __LINE__, "docs/SECURITY.md not found: run the tests from the project folder");
        return;
    }
    char line[4096];
    int lineno = 0, rows = 0, cited = 0, in_table = 0, checked = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] != '|') { in_table = 0; continue; }
        char *end = strrchr(line, '|');
        *end = '\0';
        char *cell = strrchr(line, '|');
        if (!cell || cell == line) {
            th_fail(__FILE__, __LINE__, "docs/SECURITY.md:%d: a row with one cell", lineno);
            continue;
        }
        if (!in_table) {   /* the header row */
            in_table = 1;
            checked = strstr(cell, "proved by") != NULL;
            continue;
        }
        if (!checked || !strncmp(line, "|---", 4)) continue;
        rows++;
        int here = 0;
        for (char *p = strchr(cell, '`'); p; p = strchr(p, '`')) {
            char *q = strchr(p + 1, '`');
            if (!q) break;
            *q = '\0';
            if (is_test_name(p + 1) || is_fuzzer(p + 1)) here++;
            else th_fail(__FILE__, __LINE__, "docs/SECURITY.md:%d: `%s` is no test name and no fuzz harness", lineno,
                         p + 1);
            p = q + 1;
        }
        if (!here) th_fail(__FILE__, __LINE__, "docs/SECURITY.md:%d: a claim with no test named", lineno);
        cited += here;
    }
    fclose(f);
    CHECK(rows >= 10 && cited >= rows);
}

#define SOAK_BEGIN "<!-- soak: written by tests/soak.sh from docs/soak/soak.md; make bench keeps it -->"
#define SOAK_END "<!-- /soak -->"

/* The whole of a file (heap), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "");
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) aq_buf_add(&b, chunk, n);
    fclose(f);
    return b.p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* What tests/bench.sh does when it regenerates docs/BENCHMARKS.md, in
 * miniature: a file written wholesale (no soak section), then the splice
 * bench.sh runs after it; the section comes back, once, and a newer soak
 * replaces it rather than adding a second. bench.sh itself must run the
 * splice after it moves the new file into place. */
static void soak_section_survives_bench_rewrite(void)
{
    char dir[] = "/tmp/aq-soak-docs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char bench[256], soak[256], cmd[1024];
    snprintf(bench, sizeof bench, "%s/BENCHMARKS.md", dir);
    snprintf(soak, sizeof soak, "%s/soak.md", dir);
    write_file(soak, "## Soak\n\nfirst run\n");
    write_file(bench, "# Benchmarks\n\n## Results\n\nfigures\n\n");   /* as bench.sh writes it */
    snprintf(cmd, sizeof cmd, "sh tests/soak_section.sh %s %s", bench, soak);
    CHECK_INT(system(cmd), 0);
    char *t = slurp(bench);
    CHECK_CONTAINS(t, "## Results\n\nfigures\n\n" SOAK_BEGIN "\n## Soak\n\nfirst run\n" SOAK_END "\n");
    free(t);
    write_file(soak, "## Soak\n\nsecond run\n");
    CHECK_INT(system(cmd), 0);
    t = slurp(bench);
    CHECK_INT(count_of(t, SOAK_BEGIN), 1);
    CHECK_INT(count_of(t, "first run"), 0);
    CHECK_CONTAINS(t, SOAK_BEGIN "\n## Soak\n\nsecond run\n" SOAK_END "\n");
    CHECK_CONTAINS(t, "# Benchmarks\n\n## Results\n\nfigures\n\n" SOAK_BEGIN);
    free(t);
    /* bench.sh: the splice follows the move of the rewritten file into place */
    char *sh = slurp("tests/bench.sh");
    CHECK_CONTAINS(sh, "mv \"$tmp\" \"$OUT\"\n");
    const char *mv = sh ? strstr(sh, "mv \"$tmp\" \"$OUT\"\n") : NULL;
    CHECK(mv && strstr(mv, "sh tests/soak_section.sh \"$OUT\" docs/soak/soak.md"));
    free(sh);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_INT(system(cmd), 0);
}

/* The committed docs/BENCHMARKS.md carries the committed soak section as is. */
static void soak_section_in_benchmarks(void)
{
    char *md = slurp("docs/BENCHMARKS.md"), *soak = slurp("docs/soak/soak.md");
    CHECK(md && soak);
    if (md && soak) {
        aq_buf want;
        aq_buf_init(&want);
        aq_buf_addf(&want, "%s\n%s%s\n", SOAK_BEGIN, soak, SOAK_END);
        CHECK_CONTAINS(md, want.p);
        CHECK_INT(count_of(md, SOAK_BEGIN), 1);
        aq_buf_dispose(&want);
    }
    CHECK(access("docs/soak/soak.png", R_OK) == 0);
    CHECK(access("docs/soak/soak.csv", R_OK) == 0);
    free(md);
    free(soak);
}

const th_test th_docs_tests[] = {
    {"docs_openapi_lint", openapi_lint, 120, 0},
    {"docs_security_cites_real_tests", security_cites_real_tests, 10, 0},
    {"docs_soak_section_survives_bench_rewrite", soak_section_survives_bench_rewrite, 30, 0},
    {"docs_soak_section_in_benchmarks", soak_section_in_benchmarks, 30, 0},
    {0},
};
