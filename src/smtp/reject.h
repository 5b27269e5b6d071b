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
#include "guard/guard.h"
#include "smtp/session.h"

/* How long a rejected client may talk to us. */
#define REJECT_LINGER_MS 10000
/* On an implicit-TLS listener the 554 comes inside TLS, after a handshake
 * that costs far more than the 554 (SPEC §3). Spent at most on this many
 * clients of one blocked prefix a minute (a customer's mail program
 * retrying still reads why), and on this many rejected clients a second
 * per worker whatever their prefix (a flood from many blocked addresses);
 * beyond either, a blocked TLS client is closed without a word. */
#define REJECT_TLS_PER_PREFIX_MIN 10
#define REJECT_TLS_PER_WORKER_SEC 100

/* Sends `line` (the 554, CRLF included) and keeps `fd` for its linger;
 * closes it (and counts it out of *env->clients) if that cannot be done. */
void reject_fd(struct session_env *env, evutil_socket_t fd, const char *line, size_t len);
/* Drains `fd` (already shut for writing) for a while, then closes it. */
void reject_linger(struct session_env *env, evutil_socket_t fd);
/* The aggregated line for n 554s to `prefix` (why: GUARD_REJECT_BLOCKED
 * or GUARD_REJECT_CONCURRENCY); nothing for 0. The guard decides when
 * (guard_reject_note, guard_concurrency_note, guard_reject_flush,
 * guard_reject_take), so that every 554 is in exactly one such line. */
void reject_log(uint32_t n, const struct addr *prefix, enum guard_verdict why);
/* The same as guard_reject_flush()'s callback. */
void reject_log_cb(void *ctx, const struct addr *prefix, enum guard_verdict why, uint32_t n);
/* The answer to a rejected client's line: 221 to QUIT, 503 to the rest. */
const char *reject_answer(const char *line);
void reject_drop_all(struct session_env *env);
/* May a rejected client of an implicit-TLS listener have its handshake?
 * `blocked`: it is blocked (else over concurrency_limit), so its prefix's
 * minute counts too. */
bool reject_tls_allowed(struct session_env *env, const struct addr *client, bool blocked,
                        int64_t now);

#endif
