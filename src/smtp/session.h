/* session: the SMTP dialogue of one connection. What a session may use is
 * in its environment (one per worker): the guard, the auth and delivery
 * backends, the pool, the worker's event base, and the few things the
 * server above it provides through hooks. The session knows nothing of
 * the server. */
#ifndef PORTCULLIS_SESSION_H
#define PORTCULLIS_SESSION_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <sys/queue.h>
#include "auth/auth.h"
#include "base/config.h"
#include "base/pool.h"
#include "deliver/deliver.h"
#include "guard/guard.h"
#include "smtp/stats.h"
#include "store/accounts.h"

struct session;
struct rejected;
struct evdns_base;
TAILQ_HEAD(session_list, session);
TAILQ_HEAD(rejected_list, rejected);

/* Bad commands one client may send before we hang up (RFC 5321 §4.3.2
 * allows closing after errors; it bounds what garbage costs). */
#define SESSION_ERRORS_MAX 20

/* What the layer above provides. Called on the worker's thread. */
struct session_hooks {
    /* References to what a reload swaps (tls may be NULL). */
    struct auth *(*auth)(void *ctx);
    SSL_CTX *(*tls)(void *ctx);
    /* The guard imposed a block because of this session's client. */
    void (*block_made)(void *ctx, const struct guard_block *b, const char *session);
    /* Cluster mode: one event of `why` by `client`. */
    void (*count)(void *ctx, const struct config *c, const struct addr *client,
                  enum guard_reason why);
};

struct session_env {
    /* shared by all workers */
    struct guard *guard;
    struct pool *pool;
    struct deliver *deliver;
    struct accounts *accounts;   /* repeats and account locks */
    struct stats *stats;
    atomic_long *clients;        /* open connections, all kinds */
    atomic_bool *stopping;
    const struct session_hooks *hooks;
    void *ctx;
    /* this worker's */
    struct event_base *base;
    struct pool_mailbox *mb;
    struct evdns_base *dns;      /* reverse DNS lookups of this worker's clients */
    struct session_list sessions;
    /* Connections answered with the 554 (10 s) or hung up on (2 s),
     * waiting for their last words in an epoll set of the worker's own. */
    struct rejected_list rejected, lingering;
    int repoll;
    /* TLS handshakes spent this second on clients that only get a 554
     * (reject_tls_allowed). */
    int64_t tls_reject_sec;
    uint32_t tls_reject_n;
};

/* Takes over `c` (a reference) and `fd`; counted in *env->clients. */
void session_accept(struct session_env *env, struct config *c, evutil_socket_t fd,
                    const struct sockaddr *sa, enum listen_mode mode);
void session_close_idle(struct session_env *env);
void session_drop_all(struct session_env *env);
void session_rejected_ready(struct session_env *env);   /* repoll is readable */
void session_rejected_reap(struct session_env *env);    /* close what ran out of time */

#endif
