/* web_files.h — the web console's files as build/web.c embeds them
 * (web/embed.sh): name (no folder), content, length; the table ends with a
 * NULL name. Served by web.c. */
#ifndef AQ_API_WEB_FILES_H
#define AQ_API_WEB_FILES_H
#include <stddef.h>

typedef struct api_web_file {
    const char *name;
    const char *data;
    size_t len;
} api_web_file;

extern const api_web_file aq_api_web_files[];

#endif
