#include "base/rate.h"

/* Moves the counter to the period holding `now`. */
static void rate_roll(struct rate *r, int64_t now, int64_t win)
{
    int64_t start = (int64_t)r->start;
    if (start == 0 || now - start >= 2 * win) {
        r->start = (uint64_t)now;
        r->cur = r->prev = 0;
    } else if (now - start >= win) {
        r->prev = r->cur;
        r->cur = 0;
        r->start = (uint64_t)(start + win);
    }
}

uint32_t rate_estimate(const struct rate *r, int64_t now, int64_t win)
{
    int64_t start = (int64_t)r->start;
    if (start == 0 || now - start >= 2 * win)
        return 0;
    uint32_t cur = (uint32_t)r->cur, prev = (uint32_t)r->prev;
    int64_t el = now - start;
    if (el >= win) {           /* not rolled yet: cur is really prev */
        prev = cur;
        cur = 0;
        el -= win;
    }
    int64_t left = win - el;
    return cur + (uint32_t)((uint64_t)prev * (uint64_t)left / (uint64_t)win);
}

uint32_t rate_add(struct rate *r, int64_t now, int64_t win)
{
    if (rate_estimate(r, now, win) == 0)
        r->first = (uint64_t)now;
    rate_roll(r, now, win);
    if (r->cur < RATE_MAX)
        r->cur++;
    return rate_estimate(r, now, win);
}
