/* webassets: the web console's files (web/), embedded at build time by
 * scripts/embed_web.py into the generated webassets.c. */
#ifndef PORTCULLIS_WEBASSETS_H
#define PORTCULLIS_WEBASSETS_H

#include <stddef.h>

struct web_asset {
    const char *path;              /* "/index.html" */
    const char *type;              /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* The file served at `path`, or NULL. */
const struct web_asset *web_asset_find(const char *path);

#endif
