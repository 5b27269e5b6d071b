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
#include "store/accounts.h"

struct session;
struct rejected;
struct evdns_base;
TAILQ_HEAD(session_list, session);
TAILQ_HEAD(rejected_list, rejected);

/* Bad commands one client may send before we hang up (RFC 5321 §4.3.2
 * allows closing after errors; it bounds what garbage costs). */
#define SESSION_ERRORS_MAX 20

/* Delivery times are counted into these buckets (upper bounds, ms) for
 * /metrics' histogram; the last bucket is everything slower. */
#define STATS_LATENCY_BOUNDS {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
#define STATS_LATENCY_N 12

/* The daemon's counters, one place: admin/handlers.c (stats) and
 * admin/metrics.c (/metrics) read them. */
struct stats {
    atomic_ulong connections, accepted, rejected_blocked, rejected_concurrency,
        rejected_busy, auth_ok, auth_fail, unauth_mail, messages, delivery_failures,
        blocks, proxy_errors;
    atomic_ulong auth_repeats;           /* 535s that repeated an earlier failure: counted nowhere */
    atomic_ulong auth_locked;            /* 535s to strangers of a locked account, no password check */
    atomic_ulong account_locks;          /* account locks made here */
    atomic_ulong auth_tempfail;          /* 454: the check could not run */
    atomic_ulong messages_refused;       /* 552: over max_message_size */
    atomic_ulong tls_sessions;           /* TLS handshakes completed */
    atomic_ulong reloads;                /* configurations taken on (SIGHUP, reload) */
    atomic_ulong blocks_by[GUARD_ESCALATED + 1];   /* by enum guard_reason */
    atomic_ulong delivery_ms[STATS_LATENCY_N];  /* per bucket, not cumulative */
    atomic_ulong delivery_ms_sum;
};

/* One delivery took `ms`. */
static inline void stats_delivery_time(struct stats *st, int64_t ms)
{
    static const int64_t bounds[] = STATS_LATENCY_BOUNDS;
    size_t i = 0;
    while (i < sizeof bounds / sizeof bounds[0] && ms > bounds[i])
        i++;
    atomic_fetch_add(&st->delivery_ms[i], 1);
    atomic_fetch_add(&st->delivery_ms_sum, (unsigned long)(ms > 0 ? ms : 0));
}

/* One block made, for whatever reason. */
static inline void stats_block(struct stats *st, enum guard_reason why)
{
    atomic_fetch_add(&st->blocks, 1);
    if ((unsigned)why <= GUARD_ESCALATED)
        atomic_fetch_add(&st->blocks_by[why], 1);
}

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
};

/* Takes over `c` (a reference) and `fd`; counted in *env->clients. */
void session_accept(struct session_env *env, struct config *c, evutil_socket_t fd,
                    const struct sockaddr *sa, enum listen_mode mode);
void session_close_idle(struct session_env *env);
void session_drop_all(struct session_env *env);
void session_rejected_ready(struct session_env *env);   /* repoll is readable */
void session_rejected_reap(struct session_env *env);    /* close what ran out of time */

#endif
