/* server: listeners, worker threads and what they share. One event base per
 * worker, each with its own SO_REUSEPORT listener per address; a session
 * lives and dies on the worker that accepted it. */
#ifndef PORTCULLIS_SERVER_H
#define PORTCULLIS_SERVER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>
#include "base/config.h"
#include "guard/guard.h"
#include "base/pool.h"
#include "store/store.h"
#include "auth/users.h"

struct session;
struct rejected;
struct evdns_base;
TAILQ_HEAD(session_list, session);
TAILQ_HEAD(rejected_list, rejected);

struct worker {
    struct server *srv;
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener *ls[CONFIG_MAX_LISTEN];
    enum listen_mode mode[CONFIG_MAX_LISTEN];
    int nls;
    struct event *resume;        /* re-enables accept after EMFILE */
    struct pool_mailbox *mb;
    struct evdns_base *dns;      /* reverse DNS lookups of this worker's clients */
    struct session_list sessions;
    /* Connections answered with the 554 (10 s) or hung up on (2 s),
     * waiting for their last words in an epoll set of the worker's own. */
    struct rejected_list rejected, lingering;
    int repoll;
    struct event *repoll_ev, *reap_ev;
    bool stopping;
};

#define STATS_REASONS 8     /* room for every enum guard_reason */

struct stats {
    atomic_ulong connections, accepted, rejected_blocked, rejected_concurrency,
        rejected_busy, auth_ok, auth_fail, unauth_mail, messages, delivery_failures,
        blocks, proxy_errors;
    /* Blocks made on this node since it started, by reason, manual ones
     * included (`blocks` above counts the automatic ones only). */
    atomic_ulong blocks_made[STATS_REASONS];
};
/* One block made here (by the guard or an operator). */
void stats_block_made(struct stats *st, enum guard_reason why);

struct server {
    /* What a reload swaps. Readers take a reference under `mu`. */
    pthread_mutex_t mu;
    struct config *cfg;
    struct users *users;
    SSL_CTX *tls;

    struct guard *guard;
    struct store *store;
    struct pool *pool;
    struct event_base *main_base;
    struct worker *workers;
    int nworkers;
    atomic_long clients;         /* open connections, all kinds */
    atomic_bool stopping;
    struct stats stats;
    int64_t started_at;
};

/* References to the current configuration, users and TLS context. */
struct config *server_config(struct server *s);
struct users *server_users(struct server *s);
SSL_CTX *server_tls(struct server *s);   /* with a reference; may be NULL */

/* Binds every listener for every worker (before privileges are dropped). */
bool server_bind(struct server *s, char *err, size_t errlen);
bool server_start(struct server *s);
/* Stops accepting; asks every worker to close its idle sessions. */
void server_stop_accepting(struct server *s);
size_t server_sessions(struct server *s);
void server_join(struct server *s);
/* After server_join: frees the workers and whatever sessions remain. */
void server_free(struct server *s);

/* Cluster mode: one event of `why` by `client`, for the sum over all nodes. */
void server_count(struct server *s, const struct config *c, const struct addr *client,
                  enum guard_reason why);
/* The store's hooks: blocks learned from, and decided by, the cluster. */
extern const struct store_hooks server_store_hooks;

/* The aggregated line for `count` 554s to `prefix` (why:
 * GUARD_REJECT_BLOCKED or GUARD_REJECT_CONCURRENCY); nothing for 0. Every
 * 554 goes into exactly one such line (docs/LOGS.md). */
void server_log_rejects(const struct addr *prefix, enum guard_verdict why, uint32_t count);
/* guard_reject_flush()'s callback for it. */
void server_log_rejects_cb(void *ctx, const struct addr *prefix, enum guard_verdict why,
                           uint32_t count);

/* A block was imposed here (guard decision or operator): record, log. */
void server_block_made(struct server *s, const struct guard_block *b, const char *session);

/* session.c */
/* Takes over `c` (a reference) and `fd`. */
void session_accept(struct worker *w, struct config *c, evutil_socket_t fd,
                    const struct sockaddr *sa, enum listen_mode mode);
void session_close_idle(struct worker *w);
void session_drop_all(struct worker *w);
void session_rejected_ready(struct worker *w);   /* repoll is readable */
void session_rejected_reap(struct worker *w);    /* close what ran out of time */

#endif
