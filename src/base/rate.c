#include "base/rate.h"

/* Moves the counter to the period holding `now`. */
static void rate_roll(struct rate *r, int64_t now, int64_t win)
{
    if (r->start == 0 || now - r->start >= 2 * win) {
        r->start = now;
        r->cur = r->prev = 0;
    } else if (now - r->start >= win) {
        r->prev = r->cur;
        r->cur = 0;
        r->start += win;
    }
}

uint32_t rate_estimate(const struct rate *r, int64_t now, int64_t win)
{
    if (r->start == 0 || now - r->start >= 2 * win)
        return 0;
    uint32_t cur = r->cur, prev = r->prev;
    int64_t el = now - r->start;
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
        r->first = now;
    rate_roll(r, now, win);
    r->cur++;
    return rate_estimate(r, now, win);
}
