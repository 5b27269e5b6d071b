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

struct stats {
    atomic_ulong connections, accepted, rejected_blocked, rejected_concurrency,
        rejected_busy, auth_ok, auth_fail, unauth_mail, messages, delivery_failures,
        blocks, proxy_errors;
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

#endif
