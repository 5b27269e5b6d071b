/* control: the admin socket (unix, 0600, peer uid checked). One JSON
 * request per line in, one JSON reply per line out; bad input gets an
 * error reply, never takes the daemon down. A request's checks and its
 * bound (CTLREQ_MAX) are in ctlreq.h, what it does in handlers.h. Served
 * on the main loop (a->srv->main_base). */
#ifndef PORTCULLIS_CONTROL_H
#define PORTCULLIS_CONTROL_H

#include <stddef.h>
#include "admin/handlers.h"

struct control;
struct control *control_start(const struct admin *a, const char *path, char *err, size_t errlen);
void control_stop(struct control *c);

#endif
