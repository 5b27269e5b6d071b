/* portcullisd: the daemon. Loads the configuration, binds, drops
 * privileges, restores the guard from the store, then runs one event loop
 * per worker plus this main loop (signals, timers, control socket). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "admin/control.h"
#include "admin/http.h"
#include "deliver/deliver.h"
#include "base/log.h"
#include "smtp/reject.h"
#include "smtp/server.h"
#include "smtp/tls.h"
#include "base/util.h"

#define SHUTDOWN_DEADLINE_MS 30000

static struct server srv;
static struct control *ctl;
static struct http *http;
static struct event *stop_timer;
static int64_t stop_deadline;

/* --help: to stdout, exit 0; a usage error: to stderr, exit 2. */
static void usage(FILE *f)
{
    fprintf(f, "usage: portcullisd [-c FILE] [-t]\n"
               "  -c FILE  configuration file (INI); default $PORTCULLIS_CONF, else\n"
               "           " CONFIG_DEFAULT_PATH "\n"
               "  -t       check the configuration and exit (0 good, 1 bad)\n"
               "  -h, --help  this text\n");
}

static void print_problem(void *ctx, const char *problem)
{
    (void)ctx;
    fprintf(stderr, "%s\n", problem);
}

static bool is_loopback(const struct addr *a)
{
    struct addr lo4, lo6;
    addr_parse("127.0.0.0/8", true, &lo4);
    addr_parse("::1/128", true, &lo6);
    return addr_in(&lo4, a) || addr_in(&lo6, a);
}

static void warn_demo(const struct config *c, const struct auth *a)
{
    if (a->ops->has_demo == NULL || !a->ops->has_demo(a))
        return;
    for (int i = 0; i < c->nlisten; i++)
        if (!is_loopback(&c->listen[i].addr))
            log_event(LOG_ERROR, "demo_users_exposed", "listen", c->listen[i].text, "users", c->users,
                      "hint", "the demo users file is in use on a non-loopback address: replace it", NULL);
}

/* SIGHUP, and the control requests "reload" (handed in as admin.reload).
 * Returns false (and logs) when the new configuration or users file is
 * refused. */
static bool daemon_reload(struct server *s, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    char path[CONFIG_PATH_MAX];
    util_strlcpy(path, s->cfg->path, sizeof path);
    pthread_mutex_unlock(&s->mu);
    struct config *c = config_load(path, err, errlen);
    struct auth *u = c ? auth_open(c, err, errlen) : NULL;
    SSL_CTX *tls = NULL;
    if (u != NULL && c->tls_cert[0] != '\0' && (tls = tls_ctx_new(c, err, errlen)) == NULL) {
        auth_unref(u);
        u = NULL;
    }
    /* The last check, as it takes effect at once: a token rotation needs
     * no restart, and a refused file keeps the tokens in use. */
    if (u != NULL && !http_tokens_reload(http, c, err, errlen)) {
        auth_unref(u);
        u = NULL;
        if (tls)
            SSL_CTX_free(tls);
    }
    if (u == NULL) {
        config_unref(c);
        log_event(LOG_ERROR, "reload_refused", "error", err, NULL);
        atomic_fetch_add(&s->stats.reload_failures, 1);
        return false;
    }
    pthread_mutex_lock(&s->mu);
    struct config *oldc = s->cfg;
    struct auth *oldu = s->auth;
    SSL_CTX *oldt = s->tls;
    s->cfg = c;
    s->auth = u;
    s->tls = tls;
    pthread_mutex_unlock(&s->mu);
    if (oldc->nlisten != c->nlisten || memcmp(oldc->listen, c->listen, sizeof c->listen) != 0 ||
        oldc->workers != c->workers)
        log_event(LOG_WARN, "reload_partial", "hint", "listen and workers change at restart", NULL);
    if (strcmp(oldc->control_http, c->control_http) != 0 ||
        strcmp(oldc->public_http, c->public_http) != 0)
        log_event(LOG_WARN, "reload_partial", "hint", "[control] http and public_http change at restart",
                  NULL);
    /* Each worker's resolver is built once, at start. */
    if (oldc->nresolver != c->nresolver ||
        memcmp(oldc->resolver, c->resolver, sizeof c->resolver) != 0)
        log_event(LOG_WARN, "reload_partial", "hint", "resolver changes at restart", NULL);
    /* The delivery backend is opened once, at start (relay keeps its
     * per-worker connections to the next hop it was opened with). */
    if (oldc->delivery != c->delivery || strcmp(oldc->relay, c->relay) != 0 ||
        oldc->relay_tls != c->relay_tls || strcmp(oldc->relay_ca, c->relay_ca) != 0 ||
        oldc->relay_forward != c->relay_forward || oldc->relay_timeout_ms != c->relay_timeout_ms)
        log_event(LOG_WARN, "reload_partial", "hint", "[delivery] mode and relay keys change at restart",
                  NULL);
    log_configure(c->log_level, c->log_format);
    atomic_fetch_add(&s->stats.reloads, 1);
    char n[16];
    snprintf(n, sizeof n, "%zu", u->ops->count ? u->ops->count(u) : 0);
    log_event(LOG_INFO, "reload", "config", c->path, "users", n, NULL);
    warn_demo(c, u);
    config_unref(oldc);
    auth_unref(oldu);
    if (oldt)
        SSL_CTX_free(oldt);
    return true;
}

/* ---- timers ------------------------------------------------------------ */

static void lock_expired_cb(void *ctx, const struct account_lock *l)
{
    (void)ctx;
    char hex[17];
    store_id_format(l->id, hex);
    log_event(LOG_INFO, "account_expire", "account", l->account, "lock", hex, NULL);
}

/* SPEC §4: one line when the guard starts forgetting prefixes to stay
 * within max_tracked, one when it has not had to for ten seconds. */
static void note_evictions(struct server *s, const struct config *c, int64_t now)
{
    static uint64_t seen, at_start;
    static int64_t last;
    static bool evicting;
    uint64_t n = guard_evictions(s->guard);
    char a[24], b[24];
    if (n != seen) {
        if (!evicting) {
            evicting = true;
            at_start = seen;
            snprintf(a, sizeof a, "%ld", c->max_tracked);
            log_event(LOG_WARN, "evict_start", "max_tracked", a, NULL);
        }
        seen = n;
        last = now;
    } else if (evicting && now - last >= 10000) {
        evicting = false;
        snprintf(a, sizeof a, "%llu", (unsigned long long)(n - at_start));
        snprintf(b, sizeof b, "%llu", (unsigned long long)n);
        log_event(LOG_INFO, "evict_stop", "evicted", a, "total", b, NULL);
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct server *s = arg;
    int64_t now = util_now_ms();
    enforce_expire(&s->enforce, now);
    accounts_expire(s->accounts, now, lock_expired_cb, s);
    struct config *c = server_config(s);
    static int64_t last_sweep, last_prune;
    if (now - last_sweep >= 10000) {
        last_sweep = now;
        /* Counts of 554s whose prefix had no line for a minute. */
        guard_reject_flush(s->guard, now, false, reject_log_cb, NULL);
        guard_sweep(s->guard, c, now);
        accounts_sweep(s->accounts, c, now);
    }
    note_evictions(s, c, now);
    if (now - last_prune > 3600000) {
        last_prune = now;
        store_prune(s->store, now - c->history_retention_ms);
        accounts_prune(s->accounts, c, now);
    }
    config_unref(c);
}

/* ---- signals ----------------------------------------------------------- */

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    char err[1024];
    daemon_reload(arg, err, sizeof err);
}

static void stop_check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct server *s = arg;
    if (server_sessions(s) == 0 || util_mono_ms() >= stop_deadline)
        event_base_loopexit(s->main_base, NULL);
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct server *s = arg;
    if (atomic_load(&s->stopping)) {
        log_event(LOG_WARN, "shutdown_now", NULL);
        event_base_loopexit(s->main_base, NULL);
        return;
    }
    char sig[8], n[16];
    snprintf(sig, sizeof sig, "%d", (int)fd);
    snprintf(n, sizeof n, "%zu", server_sessions(s));
    log_event(LOG_INFO, "shutdown", "signal", sig, "sessions", n, NULL);
    server_stop_accepting(s);
    stop_deadline = util_mono_ms() + SHUTDOWN_DEADLINE_MS;
    struct timeval tv = {0, 100000};
    stop_timer = event_new(s->main_base, -1, EV_PERSIST, stop_check, s);
    event_add(stop_timer, &tv);
}

static bool drop_privileges(const char *user, char *err, size_t errlen)
{
    if (user[0] == '\0' || geteuid() != 0)
        return true;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "[server] user: no such user: %s", user);
        return false;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
        setuid(pw->pw_uid) != 0) {
        snprintf(err, errlen, "[server] user: cannot become %s: %s", user, strerror(errno));
        return false;
    }
    if (setuid(0) == 0) {
        snprintf(err, errlen, "[server] user: could regain root after dropping to %s", user);
        return false;
    }
    return true;
}

static void install_cb(void *ctx, const struct guard_block *b)
{
    struct server *s = ctx;
    guard_install(s->guard, s->cfg, b, util_now_ms());
}

static int fail(const char *what)
{
    log_event(LOG_ERROR, "fatal", "error", what, NULL);
    return 1;
}

int main(int argc, char **argv)
{
    /* The same default as portcullisctl's, so that both find one file. */
    const char *conf = config_default_path();
    bool check = false;
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 't': check = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    if (check) {
        /* Every problem of the file, one line each, before the files it
         * names (those only once the file itself is good). */
        struct config *c = config_load_report(conf, print_problem, NULL);
        if (c == NULL)
            return 1;
        struct auth *u = auth_open(c, err, sizeof err);
        SSL_CTX *t = u && c->tls_cert[0] ? tls_ctx_new(c, err, sizeof err) : NULL;
        struct httpreq_tokens *tok = malloc(sizeof *tok);
        bool ok = u != NULL && (c->tls_cert[0] == '\0' || t != NULL) && tok != NULL &&
                  (c->control_http[0] == '\0' ||
                   http_tokens_load(c->http_token_file, tok, err, sizeof err));
        free(tok);
        /* The relay backend's open has no side effects (it checks the
         * address and relay_ca); Maildir's cleans tmp/, so not that one. */
        if (ok && c->delivery == DELIVER_RELAY) {
            struct deliver *dv = deliver_relay.open(c, err, sizeof err);
            ok = dv != NULL;
            if (dv != NULL)
                deliver_relay.close(dv);
        }
        if (!ok)
            fprintf(stderr, "portcullisd: %s\n", err);
        else
            printf("%s: configuration is good\n", c->path);
        auth_unref(u);
        if (t)
            SSL_CTX_free(t);
        config_unref(c);
        return ok ? 0 : 1;
    }
    struct config *c = config_load(conf, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "portcullisd: %s\n", err);
        return 1;
    }
    log_configure(c->log_level, c->log_format);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    srv.cfg = c;
    pthread_mutex_init(&srv.mu, NULL);
    srv.started_at = util_now_ms();
    srv.reload = daemon_reload;
    if ((srv.auth = auth_open(c, err, sizeof err)) == NULL)
        return fail(err);
    if (c->tls_cert[0] != '\0' && (srv.tls = tls_ctx_new(c, err, sizeof err)) == NULL)
        return fail(err);
    srv.guard = guard_new();
    srv.main_base = event_base_new();
    srv.nworkers = c->workers;
    srv.workers = calloc((size_t)srv.nworkers, sizeof *srv.workers);
    for (int i = 0; i < srv.nworkers; i++)
        if (!server_worker_init(&srv, i, err, sizeof err))
            return fail(err);
    if (!server_bind(&srv, err, sizeof err))
        return fail(err);
    struct admin admin = {&srv, daemon_reload};
    if (!http_open(&admin, c, &http, err, sizeof err))
        return fail(err);
    if (!drop_privileges(c->user, err, sizeof err))
        return fail(err);
    /* A backend not built in yet: Maildir, as before the key existed. */
    const struct deliver_ops *dops = deliver_backend(c->delivery);
    if ((srv.deliver = (dops ? dops : &deliver_maildir)->open(c, err, sizeof err)) == NULL)
        return fail(err);
    struct store_hooks hooks = server_store_hooks;
    hooks.ctx = &srv;
    if ((srv.store = store_open(c, &hooks, err, sizeof err)) == NULL)
        return fail(err);
    srv.enforce = (struct enforce){srv.guard, srv.store, &srv.stats};
    int64_t now = util_now_ms();
    if (!store_load(srv.store, now - c->offense_memory_ms, now, install_cb, &srv))
        return fail("cannot load the blocks from the store");
    if ((srv.accounts = accounts_open(c, c->hostname, err, sizeof err)) == NULL)
        return fail(err);
    if ((ctl = control_start(&admin, c->control_socket, err, sizeof err)) == NULL)
        return fail(err);
    /* crypt and fsync: enough threads that a slow disk does not hold up
     * password checks, few enough to leave the cores to the workers. */
    srv.pool = pool_new(srv.nworkers + 2);

    struct event *hup = evsignal_new(srv.main_base, SIGHUP, on_hup, &srv);
    struct event *term = evsignal_new(srv.main_base, SIGTERM, on_term, &srv);
    struct event *intr = evsignal_new(srv.main_base, SIGINT, on_term, &srv);
    struct event *timer = event_new(srv.main_base, -1, EV_PERSIST, tick, &srv);
    struct timeval tv = {0, 100000};
    event_add(hup, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_add(timer, &tv);

    if (!server_start(&srv))
        return fail("cannot start the worker threads");
    if (!http_run(http, err, sizeof err))
        return fail(err);
    warn_demo(c, srv.auth);
    char workers[16], blocks[16];
    struct guard_stats gs;
    guard_stats(srv.guard, now, &gs);
    snprintf(workers, sizeof workers, "%d", srv.nworkers);
    snprintf(blocks, sizeof blocks, "%zu", gs.blocks);
    for (int i = 0; i < c->nlisten; i++)
        log_event(LOG_INFO, "listen", "addr", c->listen[i].text, NULL);
    log_event(LOG_INFO, "ready", "hostname", c->hostname, "workers", workers,
              "blocks", blocks, "config", c->path, NULL);

    event_base_dispatch(srv.main_base);

    http_stop(http);

    server_join(&srv);
    /* No 554 is sent any more: every count still pending gets its line. */
    guard_reject_flush(srv.guard, util_now_ms(), true, reject_log_cb, NULL);
    control_stop(ctl);
    server_free(&srv);
    store_close(srv.store);
    accounts_close(srv.accounts);
    event_free(hup);
    event_free(term);
    event_free(intr);
    event_free(timer);
    if (stop_timer)
        event_free(stop_timer);
    event_base_free(srv.main_base);
    guard_free(srv.guard);
    auth_unref(srv.auth);
    srv.deliver->ops->close(srv.deliver);
    if (srv.tls)
        SSL_CTX_free(srv.tls);
    config_unref(srv.cfg);
    log_event(LOG_INFO, "stopped", NULL);
    return 0;
}
