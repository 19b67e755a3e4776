/* main.c — bin/agentq-api: reads the configuration, listens on AGENTQ_LISTEN
 * with one thread per CPU (AGENTQ_API_THREADS), and on SIGTERM/SIGINT stops
 * accepting, lets requests in flight finish, and exits 0.
 * Exit status: 0 after a graceful stop; 2 on bad configuration; 1 if it
 * cannot listen (the address is in use, by another agentq-api too). */
#include "api.h"
#include "aq_alloc.h"
#include "aq_log.h"
#include "aq_token.h"
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    api_thread *t = H2O_STRUCT_FROM_MEMBER(api_thread, ctx, req->conn->ctx);
    aq_api_conn_request_started(t, req);
    return aq_api_route(t, req);
}

/* "host:port" or "[v6]:port" → sockaddr. */
static int parse_listen(api_server *srv, const char *text)
{
    char host[128];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || strlen(colon + 1) == 0) return -1;
    size_t hl = (size_t)(colon - text);
    if (hl >= sizeof host) return -1;
    memcpy(host, text, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) return -1;
    memset(&srv->listen_addr, 0, sizeof srv->listen_addr);
    if (host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&srv->listen_addr;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) return -1;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        srv->listen_family = AF_INET6;
        srv->listen_len = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&srv->listen_addr;
    if (!strcmp(host, "localhost")) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    srv->listen_family = AF_INET;
    srv->listen_len = sizeof *a;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fprintf(help ? stdout : stderr, "usage: agentq-api\nThe agentq HTTP API. Configuration comes from the "
                "environment (DATABASE_URL, AGENTQ_LISTEN, AGENTQ_SECRET_KEY, ...); see README.md.\n");
        return help ? 0 : 2;
    }
    static aq_config cfg;
    char err[256];
    if (aq_config_load(&cfg, err, sizeof err)) { fprintf(stderr, "agentq-api: %s\n", err); return 2; }
    aq_log_set_level(cfg.log_level);
    aq_log_set_process("api");
    if (sodium_init() < 0) { fprintf(stderr, "agentq-api: libsodium failed to initialise\n"); return 2; }
    api_server *srv = aq_calloc(1, sizeof *srv);
    srv->cfg = &cfg;
    if (aq_secret_key_parse(cfg.secret_key, srv->key, err, sizeof err)) {
        fprintf(stderr, "agentq-api: %s\n", err);
        return 2;
    }
    if (parse_listen(srv, cfg.listen)) {
        fprintf(stderr, "agentq-api: AGENTQ_LISTEN=%s: expected HOST:PORT (IPv4, localhost or [IPv6])\n", cfg.listen);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    h2o_config_init(&srv->h2o);
    srv->h2o.server_name = h2o_iovec_init(H2O_STRLIT("agentq"));
    /* h2o's own cap (plain-text 413) sits above ours (JSON 413 from aq_api_parse_body) */
    /* (raised to fit a raw message on POST /v1/jobs; other routes answer the same
     * plain-text 413 past twice their cap from aq_api_request_refused) */
    size_t h2o_cap = (size_t)cfg.max_body_bytes * 2 + 1024, email_cap = (size_t)aq_config_email_input_cap(&cfg) + 1024;
    srv->h2o.max_request_entity_size = email_cap > h2o_cap ? email_cap : h2o_cap;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_req;
    aq_api_limits_init(srv);
    if (cfg.api_queues[0]) {   /* "a, b" → "a,b" */
        srv->queues = aq_calloc(1, strlen(cfg.api_queues) + 1);
        char *q = srv->queues;
        for (const char *p = cfg.api_queues; *p; p++)
            if (*p != ' ' && *p != '\t') *q++ = *p;
    }

    long n = cfg.api_threads > 0 ? cfg.api_threads : sysconf(_SC_NPROCESSORS_ONLN);
    srv->nthreads = n > 0 ? (int)n : 1;
    srv->threads = aq_calloc((size_t)srv->nthreads, sizeof *srv->threads);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);   /* threads inherit the mask; main waits */
    if (aq_api_listen(srv)) {
        aq_error("api", "cannot listen on %s: %s", cfg.listen, strerror(errno));
        fprintf(stderr, "agentq-api: cannot listen on %s: %s\n", cfg.listen, strerror(errno));
        return 1;
    }
    for (int i = 0; i < srv->nthreads; i++) {
        srv->threads[i].srv = srv;
        srv->threads[i].index = i;
        if (aq_api_thread_start(&srv->threads[i])) return 1;
    }
    close(srv->listen_fd);   /* each thread polls its own dup */
    aq_info("api", "listening on %s with %d threads (at most %ld connections)", cfg.listen, srv->nthreads,
            srv->max_connections);
    int sig;
    sigwait(&set, &sig);
    aq_info("api", "stopping (signal %d): no new connections, finishing requests in flight", sig);
    aq_api_server_request_stop(srv);
    for (int i = 0; i < srv->nthreads; i++) aq_api_thread_request_stop(&srv->threads[i]);
    for (int i = 0; i < srv->nthreads; i++) pthread_join(srv->threads[i].tid, NULL);
    aq_info("api", "stopped");
    return 0;
}
