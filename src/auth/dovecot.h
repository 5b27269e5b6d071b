/* dovecot: password checks through Dovecot's auth service (SPEC §8), over
 * its auth-client protocol, one connection per worker, never blocking the
 * worker: each check answers through a callback from the event loop. */
#ifndef PORTCULLIS_DOVECOT_H
#define PORTCULLIS_DOVECOT_H

#include <event2/event.h>
#include <stdbool.h>
#include "base/config.h"

struct dovecot;
struct dovecot_req;

enum dovecot_result {
    DOVECOT_AUTH_OK,        /* 235 */
    DOVECOT_AUTH_FAIL,      /* 535, counted */
    DOVECOT_AUTH_TEMPFAIL,  /* 454 4.7.0, counted nowhere */
};

/* Mechanisms, as bits. */
enum { DOVECOT_MECH_PLAIN = 1u << 0, DOVECOT_MECH_LOGIN = 1u << 1 };

typedef void (*dovecot_cb)(void *arg, enum dovecot_result r);

/* A worker's connection (made now, and again after losing it), to
 * cfg->dovecot_socket (copied). NULL only when out of memory or the socket address is bad. */
struct dovecot *dovecot_new(struct event_base *base, const struct config *cfg, char *err,
                            size_t errlen);
/* Every request still waiting is answered TEMPFAIL first. */
void dovecot_free(struct dovecot *d);

/* Of `ours` (DOVECOT_MECH_*), those Dovecot offers, as the last handshake
 * of any worker said; `ours` itself while no handshake has told (an AUTH
 * then gets 454 if Dovecot is down). */
unsigned dovecot_mechs(unsigned ours);
/* False from an auth_backend_down to the next auth_backend_up: the last
 * worker to try could not reach Dovecot. True before any try. */
bool dovecot_up(void);
/* The socket it was made for (a reload may name another). */
const char *dovecot_socket(const struct dovecot *d);

/* Checks user and password. lip/rip: our address and the client's (from
 * PROXY when enabled); secured: inside TLS. cb is called exactly once,
 * from the loop, unless dovecot_cancel is called first. NULL only when out
 * of memory. */
struct dovecot_req *dovecot_verify(struct dovecot *d, const char *user, const char *pass,
                                   const char *lip, const char *rip, bool secured,
                                   dovecot_cb cb, void *arg);
/* The asker is gone: its callback will not be called. */
void dovecot_cancel(struct dovecot_req *q);

#endif
