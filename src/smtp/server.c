#include "smtp/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/dns.h>
#include <event2/thread.h>
#include "base/log.h"
#include "base/util.h"
#include "smtp/rdns.h"

struct config *server_config(struct server *s)
{
    pthread_mutex_lock(&s->mu);
    struct config *c = config_ref(s->cfg);
    pthread_mutex_unlock(&s->mu);
    return c;
}

struct auth *server_auth(struct server *s)
{
    pthread_mutex_lock(&s->mu);
    struct auth *a = auth_ref(s->auth);
    pthread_mutex_unlock(&s->mu);
    return a;
}

SSL_CTX *server_tls(struct server *s)
{
    pthread_mutex_lock(&s->mu);
    SSL_CTX *t = s->tls;
    if (t != NULL)
        SSL_CTX_up_ref(t);
    pthread_mutex_unlock(&s->mu);
    return t;
}

void server_block_made(struct server *s, const struct guard_block *made, const char *session)
{
    struct config *c = server_config(s);
    enforce_made(&s->enforce, c, made, session);
    config_unref(c);
}

void server_count(struct server *s, const struct config *c, const struct addr *client,
                  enum guard_reason why)
{
    if (!store_counts(s->store) || cidr_list_match(&c->allow, client))
        return;
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    store_count(s->store, &k, why, guard_limit(c, why), guard_window_ms(c, why));
}

/* ---- the cluster's hooks (run on the store's thread) ------------------ */

static void hook_installed(void *ctx, const struct guard_block *b)
{
    struct server *s = ctx;
    struct config *c = server_config(s);
    guard_install(s->guard, c, b, util_now_ms());
    config_unref(c);
}

static void hook_removed(void *ctx, uint64_t id, const struct addr *prefix)
{
    struct server *s = ctx;
    guard_remove(s->guard, prefix, id);
}

static void hook_limit(void *ctx, const struct addr *prefix, enum guard_reason why,
                       int64_t first, uint32_t events)
{
    struct server *s = ctx;
    struct config *c = server_config(s);
    struct guard_block made;
    if (guard_impose(s->guard, c, prefix, why, first, events, util_now_ms(), &made))
        server_block_made(s, &made, NULL);
    config_unref(c);
}

static void hook_shared(void *ctx, bool up)
{
    struct server *s = ctx;
    guard_set_local_decisions(s->guard, !up);
}

const struct store_hooks server_store_hooks = {
    NULL, hook_installed, hook_removed, hook_limit, hook_shared,
};

/* ---- what a session gets from us ------------------------------------- */

static struct auth *hook_auth(void *ctx)
{
    return server_auth(ctx);
}

static SSL_CTX *hook_tls(void *ctx)
{
    return server_tls(ctx);
}

static void hook_block_made(void *ctx, const struct guard_block *b, const char *session)
{
    server_block_made(ctx, b, session);
}

static void hook_count(void *ctx, const struct config *c, const struct addr *client,
                       enum guard_reason why)
{
    server_count(ctx, c, client, why);
}

static const struct session_hooks session_hooks = {
    hook_auth, hook_tls, hook_block_made, hook_count,
};

bool server_worker_init(struct server *s, int i, char *err, size_t errlen)
{
    struct worker *w = &s->workers[i];
    struct session_env *e = &w->env;
    w->srv = s;
    w->id = i;
    e->guard = s->guard;
    e->stats = &s->stats;
    e->clients = &s->clients;
    e->stopping = &s->stopping;
    e->hooks = &session_hooks;
    e->ctx = s;
    TAILQ_INIT(&e->sessions);
    TAILQ_INIT(&e->rejected);
    TAILQ_INIT(&e->lingering);
    e->repoll = -1;
    e->base = event_base_new();
    e->mb = e->base ? pool_mailbox_new(e->base) : NULL;
    if (e->base == NULL || e->mb == NULL) {
        snprintf(err, errlen, "cannot create an event base");
        return false;
    }
    /* Always, so that a reload may turn reverse_dns on; without lookups it
     * sends nothing and keeps no event on the loop. A resolver that cannot
     * be set up stops the start only when it is wanted; otherwise lookups
     * turned on later answer "unknown". */
    if ((e->dns = rdns_base_new(e->base, s->cfg, err, errlen)) == NULL) {
        if (s->cfg->reverse_dns)
            return false;
        if (i == 0)
            log_event(LOG_WARN, "resolver_error", "error", err, NULL);
    }
    return true;
}

/* ---- listeners ------------------------------------------------------- */

static void on_repoll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_rejected_ready(&((struct worker *)arg)->env);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    session_rejected_reap(&((struct worker *)arg)->env);
}

static void resume_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    if (w->stopping)
        return;
    for (int i = 0; i < w->nls; i++)
        evconnlistener_enable(w->ls[i]);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    struct worker *w = arg;
    int e = EVUTIL_SOCKET_ERROR();
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM)
        return;
    /* Out of descriptors: stop accepting for a moment instead of spinning
     * on a listener that stays readable. Closing sessions free some. */
    for (int i = 0; i < w->nls; i++)
        evconnlistener_disable(w->ls[i]);
    struct timeval tv = {0, 100000};
    evtimer_add(w->resume, &tv);
    static _Atomic int64_t last;
    int64_t now = util_mono_ms();
    if (now - atomic_load(&last) > 60000) {
        atomic_store(&last, now);
        log_event(LOG_ERROR, "accept_paused", "error", strerror(e), NULL);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)salen;
    struct worker *w = arg;
    struct server *s = w->srv;
    enum listen_mode mode = LISTEN_PLAIN;
    for (int i = 0; i < w->nls; i++)
        if (w->ls[i] == l)
            mode = w->mode[i];
    long n = atomic_fetch_add(&s->clients, 1) + 1;
    struct config *c = server_config(s);
    long max = c->max_clients;
    if (n > max) {
        char line[320];
        snprintf(line, sizeof line, "421 4.3.2 %s Service not available, too busy\r\n", c->hostname);
        config_unref(c);
        ssize_t wr = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)wr;
        close(fd);
        atomic_fetch_sub(&s->clients, 1);
        atomic_fetch_add(&s->stats.rejected_busy, 1);
        return;
    }
    session_accept(&w->env, c, fd, sa, mode);
}

static evutil_socket_t bind_one(const struct listen_addr *la, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = addr_to_sockaddr(&la->addr, la->port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "[server] listen: %s: %s", la->text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

bool server_bind(struct server *s, char *err, size_t errlen)
{
    const struct config *c = s->cfg;
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        struct event_base *base = w->env.base;
        if ((w->resume = evtimer_new(base, resume_accept, w)) == NULL)
            return snprintf(err, errlen, "out of memory"), false;
        w->env.repoll = epoll_create1(EPOLL_CLOEXEC);
        w->repoll_ev = w->env.repoll >= 0 ? event_new(base, w->env.repoll, EV_READ | EV_PERSIST,
                                                      on_repoll, w) : NULL;
        w->reap_ev = event_new(base, -1, EV_PERSIST, on_reap, w);
        static const struct timeval every = {0, 250000};
        if (w->repoll_ev == NULL || w->reap_ev == NULL || event_add(w->repoll_ev, NULL) != 0 ||
            event_add(w->reap_ev, &every) != 0)
            return snprintf(err, errlen, "cannot set up the worker's reject set"), false;
        for (int j = 0; j < c->nlisten; j++) {
            evutil_socket_t fd = bind_one(&c->listen[j], err, errlen);
            if (fd < 0)
                return false;
            w->ls[j] = evconnlistener_new(w->env.base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, -1, fd);
            if (w->ls[j] == NULL) {
                close(fd);
                snprintf(err, errlen, "[server] listen: %s: cannot listen", c->listen[j].text);
                return false;
            }
            evconnlistener_set_error_cb(w->ls[j], on_accept_error);
            w->mode[j] = c->listen[j].mode;
            w->nls = j + 1;
        }
    }
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->env.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

bool server_start(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        s->workers[i].env.pool = s->pool;
        s->workers[i].env.deliver = s->deliver;
        s->workers[i].env.accounts = s->accounts;
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0)
            return false;
    }
    return true;
}

static void worker_stop(void *arg)
{
    struct worker *w = arg;
    w->stopping = true;
    for (int i = 0; i < w->nls; i++)
        evconnlistener_disable(w->ls[i]);
    session_close_idle(&w->env);
}

void server_stop_accepting(struct server *s)
{
    atomic_store(&s->stopping, true);
    for (int i = 0; i < s->nworkers; i++)
        pool_post(s->workers[i].env.mb, worker_stop, &s->workers[i]);
}

size_t server_sessions(struct server *s)
{
    return (size_t)atomic_load(&s->clients);
}

void server_join(struct server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        event_base_loopbreak(s->workers[i].env.base);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
}

void server_free(struct server *s)
{
    /* The workers are stopped: finish the pool's jobs, run their replies
     * here (a reply may start another job, now run in this thread: a
     * message being written goes on to its end), then drop what is still
     * open. */
    pool_stop(s->pool);
    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        int rounds = 0;
        do
            event_base_loop(w->env.base, EVLOOP_NONBLOCK);
        while (pool_mailbox_pending(w->env.mb) && ++rounds < 100000);
        session_drop_all(&w->env);
        if (w->env.dns != NULL) {
            /* The sessions cancelled their lookups; evdns answers each
             * cancel on the loop, which is when the lookups are freed. */
            evdns_base_free(w->env.dns, 1);
            event_base_loop(w->env.base, EVLOOP_NONBLOCK);
        }
        for (int j = 0; j < w->nls; j++)
            evconnlistener_free(w->ls[j]);
        if (w->resume)
            event_free(w->resume);
        if (w->repoll_ev)
            event_free(w->repoll_ev);
        if (w->reap_ev)
            event_free(w->reap_ev);
        if (w->env.repoll >= 0)
            close(w->env.repoll);
        pool_mailbox_free(w->env.mb);
        event_base_free(w->env.base);
    }
    free(s->workers);
    pool_free(s->pool);
}
