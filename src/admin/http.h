/* http: the admin API, web console and /metrics ([control] http), and the
 * self-service page ([control] public_http), on libevent's evhttp in a
 * thread and event base of their own: a slow or hostile HTTP client holds
 * up only that thread, never an SMTP worker. Work that touches the guard,
 * the store or a reload is handed to the main loop (handlers.h) and its
 * answer handed back. Bounds: headers HTTP_HEADERS_MAX, bodies
 * HTTPREQ_BODY_MAX, HTTP_REQUEST_S to send a request, HTTP_MAX_CONNS
 * connections at once per listener (beyond, accepting pauses). */
#ifndef PORTCULLIS_HTTP_H
#define PORTCULLIS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "admin/handlers.h"
#include "admin/httpreq.h"

#define HTTP_HEADERS_MAX 8192
#define HTTP_REQUEST_S 10           /* idle read/write, and to send one request */
#define HTTP_MAX_CONNS 256
#define SELFSERVE_PER_MINUTE 30     /* requests per address (then 429) */
#define SELFSERVE_TRACKED 4096      /* addresses the rate limit remembers */

struct http;

/* Binds the listeners the configuration asks for and reads the token file
 * (before privileges are dropped). *out stays NULL when neither is set. */
bool http_open(const struct admin *a, const struct config *c, struct http **out,
               char *err, size_t errlen);
/* Starts the thread (once the store and guard are ready). */
bool http_run(struct http *h, char *err, size_t errlen);
void http_stop(struct http *h);

/* `portcullisd -t` and http_open: the token file must be a regular file
 * that group and others cannot read, holding good NAME:TOKEN lines. */
bool http_tokens_load(const char *path, struct httpreq_tokens *out, char *err, size_t errlen);

#endif
