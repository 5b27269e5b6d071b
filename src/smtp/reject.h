/* reject: the answer to a blocked client (SPEC §3). Before any session
 * exists: the 554 line, then 503 to everything but QUIT for 10 s, in an
 * epoll set of the worker's own, with no session, buffer or log line per
 * connection. Also where a session we hang up on drains its client's last
 * bytes (the linger), so our last reply is not lost to a RST. */
#ifndef PORTCULLIS_REJECT_H
#define PORTCULLIS_REJECT_H

#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"
#include "smtp/session.h"

/* How long a rejected client may talk to us. */
#define REJECT_LINGER_MS 10000

/* Sends `line` (the 554, CRLF included) and keeps `fd` for its linger;
 * closes it (and counts it out of *env->clients) if that cannot be done. */
void reject_fd(struct session_env *env, evutil_socket_t fd, const char *line, size_t len);
/* Drains `fd` (already shut for writing) for a while, then closes it. */
void reject_linger(struct session_env *env, evutil_socket_t fd);
/* The once-a-minute line for a blocked prefix's 554s (guard_reject_note
 * decides when; n is 0 in between). */
void reject_log(uint32_t n, const struct addr *prefix);
/* The answer to a rejected client's line: 221 to QUIT, 503 to the rest. */
const char *reject_answer(const char *line);
void reject_drop_all(struct session_env *env);

#endif
