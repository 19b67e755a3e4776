/* t_deploy.c — deploy/ parsed and cross-checked (tests/deploy_check.py, with
 * Debian's python3 and python3-yaml, installed by deploy/deps.sh): the
 * systemd units score under 3.0 in `systemd-analyze security --offline`; the
 * env file example names every configuration variable, and the README's
 * table names exactly those; the Containerfile, compose.yaml and the
 * Kubernetes manifests agree on image, commands, ports, probes, names and
 * environment. And the checker itself catches a broken copy of them. Runs
 * from the project folder (`make test`). */
#include "harness.h"
#include "aq_buf.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

/* Run the checker on the parts named (in dir, or the project folder when
 * NULL); its exit status, its output in *out (heap). */
static int check(const char *dir, const char *parts, char **out)
{
    char top[512], cmd[2000];
    if (!getcwd(top, sizeof top)) exit(1);
    const char *bin = getenv("AQ_TEST_BIN") ? getenv("AQ_TEST_BIN") : "bin";
    snprintf(cmd, sizeof cmd, "cd '%s' && " PYTHON " '%s/tests/deploy_check.py' '%s' %s 2>&1", dir ? dir : top, top,
             bin, parts);
    FILE *p = popen(cmd, "r");
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "");
    char line[4096];
    while (p && fgets(line, sizeof line, p)) aq_buf_adds(&b, line);
    int st = p ? pclose(p) : -1;
    extern char th_log[512];
    FILE *log = fopen(th_log, "a");
    if (log) {
        fprintf(log, "$ %s\n%s", cmd, b.p);
        fclose(log);
    }
    *out = aq_buf_take(&b);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_tools(void)
{
    if (access(PYTHON, X_OK) || system(PYTHON " -c 'import yaml' >/dev/null 2>&1")) {
        th_fail(__FILE__, __LINE__, PYTHON " with the yaml module is missing: make deps installs python3-yaml");
        return 0;
    }
    if (access("tests/deploy_check.py", R_OK)) {
        th_fail(__FILE__, __LINE__, "run from the project folder (tests/deploy_check.py not found)");
        return 0;
    }
    return 1;
}

static void run_part(const char *part, const char *want)
{
    if (!have_tools()) return;
    char *out;
    int st = check(NULL, part, &out);
    if (st != 0) th_fail(__FILE__, __LINE__, "deploy_check.py %s: exit %d:\n%s", part, st, out);
    CHECK_CONTAINS(out, "0 problem(s)");
    if (want) CHECK_CONTAINS(out, want);
    free(out);
}

static void systemd_units_hardened(void) { run_part("systemd", "agentq-worker@.service: exposure"); }
static void env_example_complete(void) { run_part("env", NULL); }
static void container_and_compose_agree(void) { run_part("compose", NULL); }
static void kubernetes_manifests_agree(void) { run_part("k8s", NULL); }

/* Replace the first `from` in the file at path with `to`. */
static void mutate(const char *path, const char *from, const char *to)
{
    FILE *f = fopen(path, "r");
    if (!f) { th_fail(__FILE__, __LINE__, "cannot read %s", path); return; }
    aq_buf b;
    aq_buf_init(&b);
    aq_buf_adds(&b, "");
    char line[4096];
    while (fgets(line, sizeof line, f)) aq_buf_adds(&b, line);
    fclose(f);
    char *at = strstr(b.p, from);
    if (!at) { th_fail(__FILE__, __LINE__, "%s has no \"%s\"", path, from); aq_buf_dispose(&b); return; }
    f = fopen(path, "w");
    fwrite(b.p, 1, (size_t)(at - b.p), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    fclose(f);
    aq_buf_dispose(&b);
}

/* A copy of deploy/ with one mistake per file: each is reported. */
static void checker_catches_mismatches(void)
{
    if (!have_tools()) return;
    const char *logdir = getenv("AQ_TEST_LOGDIR") ? getenv("AQ_TEST_LOGDIR") : "/tmp";
    char dir[600], cmd[2000], path[700];
    snprintf(dir, sizeof dir, "%s/deploy_copy_%d", logdir, (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp -r deploy README.md Makefile common api worker"
             " handlers cli sql '%s'/", dir, dir, dir);
    CHECK_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/deploy/systemd/agentq-api.service", dir);
    mutate(path, "ProtectSystem=strict\n", "");
    mutate(path, "PrivateUsers=yes\n", "");
    mutate(path, "SystemCallFilter=@system-service\n", "");
    mutate(path, "CapabilityBoundingSet=\n", "");
    mutate(path, "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n", "");
    mutate(path, "ProtectHome=yes\n", "");
    mutate(path, "PrivateDevices=yes\n", "");
    mutate(path, "DynamicUser=yes\n", "");
    mutate(path, "NoNewPrivileges=yes\n", "");
    snprintf(path, sizeof path, "%s/deploy/agentq.env.example", dir);
    mutate(path, "#AGENTQ_POLL_MS=", "#AGENTQ_POLL_MILLIS=");
    snprintf(path, sizeof path, "%s/deploy/compose.yaml", dir);
    mutate(path, "\"127.0.0.1:8080:8080\"", "\"127.0.0.1:8080:9090\"");
    snprintf(path, sizeof path, "%s/deploy/k8s/api.yaml", dir);
    mutate(path, "targetPort: http", "targetPort: 8081");
    mutate(path, "path: /readyz", "path: /ready");
    snprintf(path, sizeof path, "%s/deploy/k8s/worker.yaml", dir);
    mutate(path, "name: agentq-secrets", "name: agentq-secret");
    char *out;
    int st = check(dir, "", &out);
    CHECK_INT(st, 1);
    CHECK_CONTAINS(out, "agentq-api.service: systemd-analyze security rates it");
    CHECK_CONTAINS(out, "agentq.env.example lacks AGENTQ_POLL_MS");
    CHECK_CONTAINS(out, "AGENTQ_POLL_MILLIS is not a configuration variable");
    CHECK_CONTAINS(out, "compose.yaml: api publishes [9090]");
    CHECK_CONTAINS(out, "targetPort 8081 is not the api's port 8080");
    CHECK_CONTAINS(out, "readinessProbe should GET /readyz");
    CHECK_CONTAINS(out, "Secret agentq-secret does not exist");
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

const th_test th_deploy_tests[] = {
    {"deploy_systemd_units_hardened", systemd_units_hardened, 60, 0},
    {"deploy_env_example_complete", env_example_complete, 30, 0},
    {"deploy_container_and_compose_agree", container_and_compose_agree, 30, 0},
    {"deploy_kubernetes_manifests_agree", kubernetes_manifests_agree, 30, 0},
    {"deploy_check_catches_mismatches", checker_catches_mismatches, 60, 0},
    {0},
};
