/* control: the admin socket (unix, 0600, peer uid checked). One JSON
 * request per line in, one JSON reply per line out; bad input gets an
 * error reply, never takes the daemon down. A request's checks and its
 * bound (CTLREQ_MAX) are in ctlreq.h. */
#ifndef PORTCULLIS_CONTROL_H
#define PORTCULLIS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include "smtp/server.h"

struct control;
struct control *control_start(struct server *s, const char *path, char *err, size_t errlen);
void control_stop(struct control *c);

#endif
