/* t_layout.c — the folder rule the build enforces (STYLE.md "The shape of the
 * house"): tests/check_includes.sh passes on the real tree, passes on a clean
 * fixture and fails, naming each file, on a fixture with crossing includes
 * (tests/fixtures/). Likewise tests/check_sql.sh, "no SQL built from data"
 * (docs/SECURITY.md). Runs from the project folder (`make test`). */
#include "harness.h"
#include "aq_buf.h"
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECKER "tests/check_includes.sh"

/* Run checker on root; its output into out (caller disposes); its exit
 * status, or -1 when it could not be run. */
static int run_script(const char *checker, const char *root, aq_buf *out)
{
    aq_buf_init(out);
    aq_buf_adds(out, "");
    if (access(checker, R_OK)) {
        th_fail(__FILE__, __LINE__, "%s not found: run the tests from the project folder", checker);
        return -1;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s '%s' 2>&1", checker, root);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[1024];
    while (fgets(line, sizeof line, p)) aq_buf_adds(out, line);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run_checker(const char *root, aq_buf *out) { return run_script(CHECKER, root, out); }

static void includes_real_tree_keeps_folders(void)
{
    aq_buf out;
    int rc = run_checker(".", &out);
    if (rc != 0) th_fail(__FILE__, __LINE__, "the real tree crosses folders:\n%s", out.p);
    CHECK_CONTAINS(out.p, "no crossing include");
    aq_buf_dispose(&out);
}

static void includes_clean_fixture_passes(void)
{
    aq_buf out;
    CHECK_INT(run_checker("tests/fixtures/includes_ok", &out), 0);
    CHECK_CONTAINS(out.p, "8 file(s), no crossing include");
    aq_buf_dispose(&out);
}

static void includes_crossing_fixture_fails(void)
{
    aq_buf out;
    CHECK_INT(run_checker("tests/fixtures/includes_crossing", &out), 1);
    /* a relative path into another folder, worker/ reaching past the handler
     * contract, and a header of a folder cli/ may not see */
    CHECK_CONTAINS(out.p, "api/a.c: #include \"../worker/jobrun.h\" crosses into worker/jobrun.h");
    CHECK_CONTAINS(out.p, "worker/w.c: #include \"../handlers/tools.h\" crosses into handlers/tools.h");
    CHECK_CONTAINS(out.p, "cli/c.c: #include \"tools.h\": not found");
    CHECK_CONTAINS(out.p, "3 crossing include(s)");
    aq_buf_dispose(&out);
}

/* No C string literal holds SQL and a printf conversion; PQexec takes literals. */
static void sql_real_tree_never_formatted(void)
{
    aq_buf out;
    int rc = run_script("tests/check_sql.sh", ".", &out);
    if (rc != 0) th_fail(__FILE__, __LINE__, "SQL built from data:\n%s", out.p);
    CHECK_CONTAINS(out.p, "no SQL built from data");
    aq_buf_dispose(&out);
}

static void sql_formatted_fixture_fails(void)
{
    aq_buf out;
    CHECK_INT(run_script("tests/check_sql.sh", "tests/fixtures/sql_formatted", &out), 1);
    CHECK_CONTAINS(out.p, "api/bad.c:5: SQL text with a printf conversion");
    CHECK_CONTAINS(out.p, "api/bad.c:6: PQexec without a string literal");
    CHECK_CONTAINS(out.p, "2 file(s), 2 finding(s)");
    aq_buf_dispose(&out);
}

const th_test th_layout_tests[] = {
    {"layout_includes_real_tree_keeps_folders", includes_real_tree_keeps_folders, 60, 0},
    {"layout_includes_clean_fixture_passes", includes_clean_fixture_passes, 60, 0},
    {"layout_includes_crossing_fixture_fails", includes_crossing_fixture_fails, 60, 0},
    {"layout_sql_never_formatted", sql_real_tree_never_formatted, 60, 0},
    {"layout_sql_formatted_fixture_fails", sql_formatted_fixture_fails, 60, 0},
    {0},
};
