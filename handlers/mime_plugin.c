/* mime_plugin.c — the one symbol agentq-mime.so exports: the table through
 * which the worker calls mime.c (see mime.h). Everything else in the plugin
 * is built with hidden visibility, so its copies of mime.c and the common
 * helpers it uses never interpose on the worker's. */
#include "mime.h"

__attribute__((visibility("default"))) const aq_mime_api aq_mime_plugin = {
    .parse = aq_mime_parse,
    .dispose = aq_mime_msg_dispose,
};
