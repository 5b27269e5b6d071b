#include "admin/metrics.h"

#include <inttypes.h>
#include "auth/auth.h"
#include "base/util.h"
#include "deliver/deliver.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "unknown"
#endif

static void family(struct evbuffer *o, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static unsigned long load(atomic_ulong *v)
{
    return atomic_load(v);
}

/* name{label="value"} n, one line per value of the label. */
static void labelled(struct evbuffer *o, const char *name, const char *label, size_t n,
                     const char *const values[], const unsigned long counts[])
{
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(o, "%s{%s=\"%s\"} %lu\n", name, label, values[i], counts[i]);
}

static void delivery_histogram(struct evbuffer *o, struct stats *st)
{
    static const int64_t bounds[] = STATS_LATENCY_BOUNDS;
    _Static_assert(ARRAY_LEN(bounds) + 1 == STATS_LATENCY_N, "one bucket past the bounds");
    const char *name = "portcullis_delivery_duration_seconds";
    family(o, name, "histogram", "Time from the end of DATA to the message being stored or refused.");
    unsigned long cum = 0;
    for (size_t i = 0; i < ARRAY_LEN(bounds); i++) {
        cum += load(&st->delivery_ms[i]);
        evbuffer_add_printf(o, "%s_bucket{le=\"%" PRId64 ".%03" PRId64 "\"} %lu\n", name,
                            bounds[i] / 1000, bounds[i] % 1000, cum);
    }
    cum += load(&st->delivery_ms[STATS_LATENCY_N - 1]);
    evbuffer_add_printf(o, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
    unsigned long sum = load(&st->delivery_ms_sum);
    evbuffer_add_printf(o, "%s_sum %lu.%03lu\n%s_count %lu\n", name, sum / 1000, sum % 1000,
                        name, cum);
}

static void sessions_by_state(struct evbuffer *o, struct stats *st)
{
    static const char *const names[] = STATS_STATE_NAMES;
    _Static_assert(ARRAY_LEN(names) == STATS_STATES, "a name for every state");
    family(o, "portcullis_sessions", "gauge",
           "SMTP connections open now by what they are doing (rejected: the 554 and its linger).");
    for (size_t i = 0; i < STATS_STATES; i++) {
        /* Workers move connections while we read: a moment's -1 is no state. */
        long n = atomic_load(&st->in_state[i]);
        evbuffer_add_printf(o, "portcullis_sessions{state=\"%s\"} %ld\n", names[i], n > 0 ? n : 0);
    }
}

/* The password checker and, in relay mode, the next hop: up unless the
 * last try to reach them failed. */
static void backends(struct evbuffer *o, struct server *s)
{
    struct auth *a = server_auth(s);
    family(o, "portcullis_auth_backend_up", "gauge",
           "1 unless the last try to reach the auth backend failed (the users file is always up).");
    evbuffer_add_printf(o, "portcullis_auth_backend_up{backend=\"%s\"} %d\n", a->ops->name,
                        a->ops->up == NULL || a->ops->up(a));
    auth_unref(a);
    const struct deliver *d = s->deliver;
    /* The backend opened at start (a reload does not change it). */
    if (d != NULL && d->ops == &deliver_relay) {
        family(o, "portcullis_relay_up", "gauge",
               "1 unless the last try to reach the next hop ([delivery] relay) failed.");
        evbuffer_add_printf(o, "portcullis_relay_up %d\n", d->ops->up(d));
    }
}

void metrics_render(struct server *s, struct evbuffer *o)
{
    struct stats *st = &s->stats;
    int64_t now = util_now_ms();
    struct guard_stats gs;
    guard_stats(s->guard, now, &gs);
    struct config *c = server_config(s);

    family(o, "portcullis_build_info", "gauge", "Always 1; the version is the label.");
    evbuffer_add_printf(o, "portcullis_build_info{version=\"%s\"} 1\n", PORTCULLIS_VERSION);
    family(o, "portcullis_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    evbuffer_add_printf(o, "portcullis_start_time_seconds %" PRId64 "\n", s->started_at / 1000);

    family(o, "portcullis_connections_total", "counter",
           "SMTP connections given a session (a known-blocked address refused at accept is counted only as rejected).");
    evbuffer_add_printf(o, "portcullis_connections_total %lu\n", load(&st->connections));
    family(o, "portcullis_rejected_connections_total", "counter",
           "Connections refused: blocked (554 greeting), over the per-address concurrency, or the server busy.");
    labelled(o, "portcullis_rejected_connections_total", "reason", 3,
             (const char *const[]){"blocked", "concurrency", "busy"},
             (unsigned long[]){load(&st->rejected_blocked), load(&st->rejected_concurrency),
                               load(&st->rejected_busy)});
    family(o, "portcullis_sessions_open", "gauge", "SMTP connections open now.");
    evbuffer_add_printf(o, "portcullis_sessions_open %ld\n", atomic_load(&s->clients));
    sessions_by_state(o, st);
    family(o, "portcullis_tls_sessions_total", "counter", "TLS handshakes completed (STARTTLS and implicit TLS).");
    evbuffer_add_printf(o, "portcullis_tls_sessions_total %lu\n", load(&st->tls_sessions));
    family(o, "portcullis_proxy_errors_total", "counter", "Connections closed for a missing or bad PROXY header.");
    evbuffer_add_printf(o, "portcullis_proxy_errors_total %lu\n", load(&st->proxy_errors));

    family(o, "portcullis_auth_total", "counter", "AUTH attempts by result (tempfail: the check could not run).");
    labelled(o, "portcullis_auth_total", "result", 3,
             (const char *const[]){"success", "failure", "tempfail"},
             (unsigned long[]){load(&st->auth_ok), load(&st->auth_fail), load(&st->auth_tempfail)});
    family(o, "portcullis_unauth_attempts_total", "counter", "MAIL FROM without AUTH (answered 530).");
    evbuffer_add_printf(o, "portcullis_unauth_attempts_total %lu\n", load(&st->unauth_mail));
    family(o, "portcullis_messages_total", "counter",
           "Messages: accepted (stored), refused (over the size limit), failed (could not be stored).");
    labelled(o, "portcullis_messages_total", "result", 3,
             (const char *const[]){"accepted", "refused", "failed"},
             (unsigned long[]){load(&st->messages), load(&st->messages_refused),
                               load(&st->delivery_failures)});
    delivery_histogram(o, st);

    family(o, "portcullis_blocks_total", "counter", "Blocks made on this node, by reason.");
    labelled(o, "portcullis_blocks_total", "reason", 5,
             (const char *const[]){"auth_failures", "unauth_attempts", "conn_rate", "manual",
                                   "escalated"},
             (unsigned long[]){load(&st->blocks_by[GUARD_AUTH_FAILURES]),
                               load(&st->blocks_by[GUARD_UNAUTH_ATTEMPTS]),
                               load(&st->blocks_by[GUARD_CONN_RATE]),
                               load(&st->blocks_by[GUARD_MANUAL]),
                               load(&st->blocks_by[GUARD_ESCALATED])});
    family(o, "portcullis_blocks_active", "gauge", "Blocks in force now.");
    labelled(o, "portcullis_blocks_active", "kind", 2, (const char *const[]){"temporary", "permanent"},
             (unsigned long[]){(unsigned long)(gs.blocks - gs.permanent), (unsigned long)gs.permanent});
    struct accounts_stats as;
    accounts_stats(s->accounts, now, &as);
    family(o, "portcullis_account_locks_active", "gauge",
           "Accounts locked now against unfamiliar addresses (in a cluster: the locks this node has met).");
    evbuffer_add_printf(o, "portcullis_account_locks_active %zu\n", as.accounts.locks);
    family(o, "portcullis_account_locks_total", "counter", "Account locks made on this node.");
    evbuffer_add_printf(o, "portcullis_account_locks_total %lu\n", load(&st->account_locks));
    family(o, "portcullis_auth_repeats_total", "counter",
           "Failed AUTHs that repeated an earlier failure of their prefix (stale passwords; counted nowhere).");
    evbuffer_add_printf(o, "portcullis_auth_repeats_total %lu\n", load(&st->auth_repeats));
    family(o, "portcullis_tracked_accounts", "gauge", "Accounts the account guard tracks now (bounded by max_accounts).");
    evbuffer_add_printf(o, "portcullis_tracked_accounts %zu\n", as.accounts.accounts);
    family(o, "portcullis_tracked_prefixes", "gauge", "Prefixes the guard counts now (bounded by max_tracked).");
    evbuffer_add_printf(o, "portcullis_tracked_prefixes %zu\n", gs.entries);
    family(o, "portcullis_guard_memory_bytes", "gauge", "Memory the guard's table uses.");
    evbuffer_add_printf(o, "portcullis_guard_memory_bytes %zu\n", gs.bytes);

    family(o, "portcullis_store_up", "gauge",
           "1 when the block store takes writes (SQLite) or is reachable (Redis).");
    evbuffer_add_printf(o, "portcullis_store_up{backend=\"%s\"} %d\n",
                        c->store == STORE_REDIS ? "redis" : "sqlite", !atomic_load(&s->store->down));
    backends(o, s);
    family(o, "portcullis_reloads_total", "counter", "Configurations taken on by SIGHUP or a reload request.");
    evbuffer_add_printf(o, "portcullis_reloads_total %lu\n", load(&st->reloads));
    family(o, "portcullis_reload_failures_total", "counter",
           "Reloads refused (a bad configuration, users, TLS or token file): the old one stays.");
    evbuffer_add_printf(o, "portcullis_reload_failures_total %lu\n", load(&st->reload_failures));
    config_unref(c);
}
