/* t_docs.c — the documents the project publishes: docs/openapi.yaml passes
 * @redocly/cli's recommended lint with no error (warnings are printed in the
 * test's log). The linter is the pinned one `make deps` installs into
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

const th_test th_docs_tests[] = {
    {"docs_openapi_lint", openapi_lint, 120, 0},
    {0},
};
