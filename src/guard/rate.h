/* rate: a sliding-window event counter in 24 bytes (HAProxy's freq_ctr
 * idea): the current and the previous period of the window's length, the
 * previous one weighted by the share of it still inside the window. The
 * error bounds are explained in guard.c, which counts prefixes the same
 * way; accounts (account.c) use this one. Pure; the caller locks. */
#ifndef PORTCULLIS_RATE_H
#define PORTCULLIS_RATE_H

#include <stdint.h>

struct rate {
    int64_t start;       /* start of the current period, ms; 0 = never used */
    int64_t first;       /* first event since the counter was last empty */
    uint32_t cur, prev;
};

/* Events within the window ending at `now` (an estimate, see guard.c). */
uint32_t rate_estimate(const struct rate *r, int64_t now, int64_t win);
/* One more event at `now`; returns the new estimate. */
uint32_t rate_add(struct rate *r, int64_t now, int64_t win);

#endif
