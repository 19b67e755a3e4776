/* cli_env.c — how bin/agentq finds the stack `make run` started.
 *
 * deploy/run.sh writes .agentq.env into its run folder (the checkout unless
 * AGENTQ_RUN_DIR says otherwise), mode 600: the DATABASE_URL it uses and,
 * when it made the key, AGENTQ_SECRET_KEY_FILE. When DATABASE_URL is unset
 * (or empty), the CLI reads ./.agentq.env — the current directory's, so
 * `bin/agentq ...` run from the checkout talks to that stack and nothing
 * else does — and sets each variable it names that the environment does not
 * already set (the environment wins). The file is the shell's syntax, so
 * `. ./.agentq.env` works too: KEY=VALUE lines, VALUE bare or in single
 * quotes, '#' comments, an optional leading "export ".
 *
 * Because it can point the CLI at a database, the file is only read when it
 * is a regular file owned by the user running the CLI and nobody else may
 * read or write it (mode 600 or stricter); otherwise the CLI stops (exit 2)
 * saying so, rather than quietly use libpq's defaults or someone else's
 * database. */
#include "cli.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_FILE ".agentq.env"

/* "agentq: MESSAGE" on stderr; returns 2 (the environment is unusable). */
static int refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agentq: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

static int valid_key(const char *k, size_t n)
{
    if (!n || n > 64 || (k[0] >= '0' && k[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_')) return 0;
    return 1;
}

/* One line: 0 (set, or nothing to set), or 2 after saying what is wrong. */
static int apply_line(char *line, int lineno)
{
    size_t len = strcspn(line, "\r\n");
    line[len] = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s || *s == '#') return 0;
    if (!strncmp(s, "export ", 7)) s += 7;
    char *eq = strchr(s, '=');
    if (!eq || !valid_key(s, (size_t)(eq - s)))
        return refuse(ENV_FILE " line %d: not a KEY=VALUE line", lineno);
    *eq = 0;
    char *v = eq + 1;
    size_t vn = strlen(v);
    if (vn && v[0] == '\'') {
        char *close = strchr(v + 1, '\'');
        if (!close || close[1]) return refuse(ENV_FILE " line %d: unbalanced quote", lineno);
        *close = 0;
        v++;
    } else if (strpbrk(v, " \t\"'\\$`")) {
        return refuse(ENV_FILE " line %d: quote a value with spaces in '...'", lineno);
    }
    const char *have = getenv(s);
    if (!have || !*have) setenv(s, v, 1);
    return 0;
}

int aq_cli_load_env_file(void)
{
    const char *url = getenv("DATABASE_URL");
    if (url && *url) return 0;
    int fd = open(ENV_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return refuse("cannot read ./" ENV_FILE ": %s", strerror(errno));
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        rc = refuse("./" ENV_FILE " is not a regular file");
    } else if (st.st_uid != geteuid()) {
        rc = refuse("./" ENV_FILE " belongs to uid %ld, not to you;"
                        " not reading it", (long)st.st_uid);
    } else if (st.st_mode & 077) {
        rc = refuse("./" ENV_FILE " is readable or writable by others"
                        " (mode %03o); not reading it", (unsigned)(st.st_mode & 0777));
    }
    FILE *f = rc ? NULL : fdopen(fd, "r");
    if (!f) {
        close(fd);
        return rc ? rc : refuse("cannot read ./" ENV_FILE);
    }
    char line[4096];
    for (int n = 1; !rc && fgets(line, sizeof line, f); n++) rc = apply_line(line, n);
    fclose(f);
    return rc;
}
