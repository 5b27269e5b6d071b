/* rate: a two-period event rate counter, HAProxy's freq_ctr as the model.
 * The window is cut into consecutive periods of its own length; the
 * estimate of events in the sliding window ending now is
 *
 *     cur + floor(prev * (window - elapsed_in_cur) / window)
 *
 * i.e. the previous period's count weighted by the share of that period
 * still inside the window, assuming its events were spread evenly. The
 * error, both ways, comes from that assumption:
 *  - a burst straddling a period boundary (L-1 events just before it, the
 *    rest just after) is counted almost in full: rounding down costs at
 *    most one event, so it is blocked at the L-th or (L+1)-th event, never
 *    at 2L as with fixed buckets;
 *  - events bunched at the end of a period and a wait of a fraction f into
 *    the next are credited f of them as gone early: in the worst case
 *    (f = 1/2) about 1.5 x L events fit in one window length;
 *  - events bunched at the start of a period are counted longer than they
 *    are in the window, so such a client is blocked a little early.
 * A counter costs 16 bytes (the guard keeps three per counting entry);
 * an exact window would cost a timestamp per event (1.6 KB per prefix at
 * conn_rate_limit = 200).
 *
 * The cluster's counters in Redis carry the same arithmetic in Lua
 * (store/redis_lua.c, LUA_RATE); tests/vectors/rate.txt is run against both
 * (tests/unit/test_rate.c, tests/integration/test_store_rate.py). */
#ifndef PORTCULLIS_RATE_H
#define PORTCULLIS_RATE_H

#include <stdint.h>

/* Packed: times are ms since the epoch in 42 bits (until the year 2109),
 * counts saturate at RATE_MAX (limits above are treated as that). */
struct rate {
    uint64_t start : 42;   /* start of the current period; 0 = never used */
    uint64_t cur : 22;
    uint64_t first : 42;   /* first event since the counter was last empty */
    uint64_t prev : 22;
};
#define RATE_MAX ((1u << 22) - 1)

/* Events in the window of `win` ms ending at `now`. */
uint32_t rate_estimate(const struct rate *r, int64_t now, int64_t win);
/* Counts one event at `now`; returns the estimate with it. */
uint32_t rate_add(struct rate *r, int64_t now, int64_t win);

#endif
