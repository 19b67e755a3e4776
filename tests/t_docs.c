/* t_docs.c — the documents the project publishes: docs/openapi.yaml passes
 * @redocly/cli's recommended lint with no error (warnings are printed in the
 * test's log); every claim in docs/SECURITY.md's tables names its proof, and
 * each name there is a test of this runner or a fuzz harness. The linter is the pinned one `make deps` installs into
 * .tmp/node (deploy/deps.sh); without node, or without that install, the
 * test fails and says which. Runs from the project folder (`make test`). */
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

const th_test th_docs_tests[] = {
    {"docs_openapi_lint", openapi_lint, 120, 0},
    {"docs_security_cites_real_tests", security_cites_real_tests, 10, 0},
    {0},
};
