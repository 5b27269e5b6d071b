/* handlers: what the admin requests do, whatever carried them. A checked
 * request (ctlreq.h) in, a JSON document out. Every handler runs on the
 * main thread (the control socket's and the timers' loop): the HTTP
 * thread hands its requests over (http.c) rather than touch the guard, the
 * store or a reload itself. */
#ifndef PORTCULLIS_HANDLERS_H
#define PORTCULLIS_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "admin/ctlreq.h"
#include "smtp/server.h"

/* daemon/main.c's reload (SIGHUP does the same). Returns false with the
 * reason in err when the new configuration or users file is refused. */
typedef bool (*admin_reload_fn)(struct server *s, char *err, size_t errlen);

struct admin {
    struct server *srv;
    admin_reload_fn reload;
};

/* How a request failed: the HTTP status follows from it. */
enum admin_fail { ADMIN_OK, ADMIN_BAD_REQUEST, ADMIN_NOT_FOUND, ADMIN_FAILED };

struct admin_answer {
    json_t *result;                /* the document; NULL on failure */
    enum admin_fail fail;
    char err[CTLREQ_ERR_MAX];      /* the failure, for {"error": ...} */
};

/* Runs one request (main thread). The author of a block or a lift is
 * q->by. */
void admin_run(const struct admin *a, const struct ctlreq *q, struct admin_answer *out);

/* A request line of the control socket -> its reply line (ctlreq_reply). */
char *admin_line(const struct admin *a, const char *line, size_t len);

#endif
