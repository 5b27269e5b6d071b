/* stats: the daemon's counters, in one place. Sessions, the reject path
 * and enforce.c count; admin/handlers.c (stats) and admin/metrics.c
 * (/metrics) read them. */
#ifndef PORTCULLIS_STATS_H
#define PORTCULLIS_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include "guard/guard.h"

/* Delivery times are counted into these buckets (upper bounds, ms) for
 * /metrics' histogram; the last bucket is everything slower. */
#define STATS_LATENCY_BOUNDS {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
#define STATS_LATENCY_N 12

/* What the connections open now are doing, for /metrics' sessions by
 * state: a session's state (the three AUTH steps are one), and the
 * connections of the reject path, which have no session: "rejected" (the
 * 554 and its 10 s of 503s) and "closing" (a session we hung up on,
 * drained before the close). Each open connection is in exactly one. */
enum stats_state {
    STATS_NEW, STATS_PROXY, STATS_COMMAND, STATS_AUTH, STATS_DATA, STATS_REJECTED,
    STATS_CLOSING, STATS_STATES
};
#define STATS_STATE_NAMES {"new", "proxy", "command", "auth", "data", "rejected", "closing"}

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
    atomic_ulong reload_failures;        /* ... and refused (the old one stays) */
    atomic_ulong blocks_by[GUARD_ESCALATED + 1];   /* by enum guard_reason */
    atomic_ulong delivery_ms[STATS_LATENCY_N];  /* per bucket, not cumulative */
    atomic_ulong delivery_ms_sum;
    atomic_long in_state[STATS_STATES];  /* a gauge each: see enum stats_state */
};

/* A connection moves from one state to another; -1 for none (it opens or
 * closes). Two atomic adds: cheap enough for every transition. */
static inline void stats_state_move(struct stats *st, int from, int to)
{
    if (from >= 0)
        atomic_fetch_sub(&st->in_state[from], 1);
    if (to >= 0)
        atomic_fetch_add(&st->in_state[to], 1);
}

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

#endif
