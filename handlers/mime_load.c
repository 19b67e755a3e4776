/* mime_load.c — the worker's aq_mime_parse: loads agentq-mime.so (mime.c
 * linked with GMime) from beside the executable on first use and calls
 * through its table (see mime.h for why). Loaded once, never unloaded. A
 * load that failed is tried again at the next message (a failed dlopen of
 * a missing file costs one open), so a file put in place later is found
 * without a restart: email_processing retries a job that met it missing. */
#include "mime.h"
#include "aq_error.h"
#include "aq_log.h"
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const aq_mime_api *api;   /* set once; read and set under lock */

/* the plugin's path beside the running executable; -1 if that path is unreadable */
static int plugin_path(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = '\0';
    return snprintf(buf, len, "%s/%s", exe, AQ_MIME_PLUGIN_FILE) < (int)len ? 0 : -1;
}

/* the table, loading it if need be; NULL with the reason in why */
static const aq_mime_api *loaded(char *why, size_t whylen)
{
    pthread_mutex_lock(&lock);
    if (!api) {
        char path[PATH_MAX];
        if (plugin_path(path, sizeof path) != 0) {
            snprintf(why, whylen, "email support is not installed: the worker's own path is unreadable");
        } else {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            const aq_mime_api *a = h ? dlsym(h, AQ_MIME_PLUGIN_SYMBOL) : NULL;
            if (a) api = a;
            else snprintf(why, whylen, "email support is not installed: %s", dlerror());
        }
        if (!api) aq_error("mime", "%s", why);
    }
    const aq_mime_api *a = api;
    pthread_mutex_unlock(&lock);
    return a;
}

int aq_mime_parse(const char *raw, size_t len, const aq_mime_limits *lim, aq_mime_msg *out, char *err,
                  size_t errlen)
{
    char why[PATH_MAX + 128];
    const aq_mime_api *a = loaded(why, sizeof why);
    if (!a) {
        if (err && errlen) snprintf(err, errlen, "%s", why);
        return AQ_ECONFIG;
    }
    return a->parse(raw, len, lim, out, err, errlen);
}

void aq_mime_msg_dispose(aq_mime_msg *m)
{
    /* only a parse that succeeded, through the table, filled m */
    pthread_mutex_lock(&lock);
    const aq_mime_api *a = api;
    pthread_mutex_unlock(&lock);
    if (a) a->dispose(m);
}
