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
#include "store/accounts.h"
#include "smtp/enforce.h"
#include "smtp/session.h"

struct worker {
    struct server *srv;
    int id;
    pthread_t thread;
    struct session_env env;      /* its event base, sessions, reject set */
    struct evconnlistener *ls[CONFIG_MAX_LISTEN];
    enum listen_mode mode[CONFIG_MAX_LISTEN];
    int nls;
    struct event *resume;        /* re-enables accept after EMFILE */
    struct event *repoll_ev, *reap_ev;
    bool stopping;
};

struct server {
    /* What a reload swaps. Readers take a reference under `mu`. */
    pthread_mutex_t mu;
    struct config *cfg;
    struct auth *auth;
    SSL_CTX *tls;

    struct guard *guard;
    struct store *store;
    struct accounts *accounts;   /* the repeat and account rules (store/accounts.h) */
    struct enforce enforce;      /* where blocks begin and end */
    struct deliver *deliver;
    struct pool *pool;
    struct event_base *main_base;
    struct worker *workers;
    int nworkers;
    atomic_long clients;         /* open connections, all kinds */
    atomic_bool stopping;
    struct stats stats;
    int64_t started_at;
    /* Set by the daemon: SIGHUP and the "reload" request. Returns false
     * (and logs) when the new configuration or users file is refused. */
    bool (*reload)(struct server *s, char *err, size_t errlen);
};

/* References to the current configuration, users and TLS context. */
struct config *server_config(struct server *s);
struct auth *server_auth(struct server *s);
SSL_CTX *server_tls(struct server *s);   /* with a reference; may be NULL */

/* Sets up worker i's event base and its session environment. */
bool server_worker_init(struct server *s, int i, char *err, size_t errlen);
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

/* The guard imposed a block here: enforce_made with the current configuration. */
void server_block_made(struct server *s, const struct guard_block *b, const char *session);

#endif
