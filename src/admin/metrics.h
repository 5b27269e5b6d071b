/* metrics: GET /metrics, Prometheus text exposition 0.0.4. Every family
 * is named here (docs/METRICS.md lists them); no label holds an address
 * or an account. Main thread, like the handlers. */
#ifndef PORTCULLIS_METRICS_H
#define PORTCULLIS_METRICS_H

#include <event2/buffer.h>
#include "smtp/server.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the exposition to out. */
void metrics_render(struct server *s, struct evbuffer *out);

#endif
