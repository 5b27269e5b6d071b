/* test_index: the accept-time index (src/guard/index.h) on its own, and
 * the guard's bound (max_tracked, eviction) and escalation (SPEC §4).
 * Time is a parameter: fixed `now` values from T0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"
#include "guard/index.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
static const int64_t T0 = 1795219200000LL;

static struct addr A(const char *s)
{
    struct addr a;
    if (!addr_parse(s, true, &a))
        fail_msg("addr_parse(\"%s\") failed", s);
    return a;
}

static struct addr v4(uint32_t x, int bits)
{
    struct addr a = {.family = AF_INET, .bits = 32};
    a.b[0] = (uint8_t)(x >> 24);
    a.b[1] = (uint8_t)(x >> 16);
    a.b[2] = (uint8_t)(x >> 8);
    a.b[3] = (uint8_t)x;
    addr_cut(&a, bits);
    return a;
}

/* 2001:db8:NNNN:MMMM::/64 */
static struct addr v6(uint32_t net48, uint32_t sub, int bits)
{
    struct addr a = {.family = AF_INET6, .bits = 128};
    a.b[0] = 0x20, a.b[1] = 0x01, a.b[2] = 0x0d, a.b[3] = 0xb8;
    a.b[4] = (uint8_t)(net48 >> 8), a.b[5] = (uint8_t)net48;
    a.b[6] = (uint8_t)(sub >> 8), a.b[7] = (uint8_t)sub;
    a.b[15] = 7;
    addr_cut(&a, bits);
    return a;
}

/* ---- the index -------------------------------------------------------- */

static void index_put_lookup_del(void **state)
{
    (void)state;
    struct gindex *ix = gindex_new();
    struct addr p = A("203.0.113.7"), q = A("203.0.113.8"), hit;
    int64_t until = 0;
    assert_false(gindex_lookup(ix, &p, T0, false, NULL, NULL));
    assert_true(gindex_put(ix, &p, T0 + MIN));
    assert_true(gindex_lookup(ix, &p, T0, false, &hit, &until));
    assert_true(addr_equal(&hit, &p));
    assert_int_equal(until, T0 + MIN);
    assert_false(gindex_lookup(ix, &q, T0, false, NULL, NULL));
    /* until is exclusive: at T0 + MIN the block is over */
    assert_false(gindex_lookup(ix, &p, T0 + MIN, false, NULL, NULL));
    /* replacing keeps one entry and updates until; permanent survives any now */
    assert_true(gindex_put(ix, &p, INT64_MAX));
    assert_true(gindex_lookup(ix, &p, INT64_MAX - 1, false, NULL, &until));
    assert_int_equal(until, INT64_MAX);
    struct gindex_stats st;
    gindex_stats(ix, &st);
    assert_int_equal(st.live, 1);
    uint32_t pend;
    assert_true(gindex_del(ix, &p, &pend));
    assert_int_equal(pend, 0);
    assert_false(gindex_del(ix, &p, &pend));
    assert_false(gindex_lookup(ix, &p, T0, false, NULL, NULL));
    gindex_free(ix);
}

/* The 554s to a blocked prefix: the first is logged at once, then the
 * count since, at most once a minute, also after the table was rebuilt. */
static void index_reject_notes(void **state)
{
    (void)state;
    struct gindex *ix = gindex_new();
    struct addr net = A("198.51.100.0/24"), c1 = A("198.51.100.1"), c2 = A("198.51.100.2"), p;
    uint32_t n;
    gindex_put(ix, &net, T0 + HOUR);
    assert_true(gindex_reject(ix, &c1, T0, &n, &p));
    assert_int_equal(n, 1);
    assert_true(addr_equal(&p, &net));
    for (int i = 0; i < 9; i++) {
        assert_true(gindex_reject(ix, (i & 1) ? &c1 : &c2, T0 + 1000 * i, &n, &p));
        assert_int_equal(n, 0);
    }
    /* grow the table under it: the pending count moves along */
    for (uint32_t i = 0; i < 5000; i++) {
        struct addr q = v4(0x0a000000u + i, 32);
        gindex_put(ix, &q, T0 + HOUR);
    }
    assert_true(gindex_reject(ix, &c2, T0 + 60 * SEC, &n, &p));
    assert_int_equal(n, 10);
    assert_true(gindex_reject(ix, &c2, T0 + 61 * SEC, &n, &p));
    assert_int_equal(n, 0);
    struct addr out = A("198.51.101.1");
    assert_false(gindex_reject(ix, &out, T0, &n, &p));
    assert_int_equal(n, 0);
    gindex_free(ix);
}

static void count_flushed(void *ctx, const struct addr *prefix, uint32_t count)
{
    (void)prefix;
    *(uint32_t *)ctx += count;
}

/* Issue 11 on the index: every 554 counted there comes out exactly once,
 * through a flush, a take or the delete of its block. */
static void index_notes_taken(void **state)
{
    (void)state;
    struct gindex *ix = gindex_new();
    struct addr net = A("2001:db8:1::/48"), c = A("2001:db8:1::5"), p;
    uint32_t n, logged = 0, flushed = 0, pend;
    gindex_put(ix, &net, T0 + HOUR);
    for (int i = 0; i < 20; i++) {
        assert_true(gindex_reject(ix, &c, T0 + i, &n, &p));
        logged += n;
    }
    assert_int_equal(logged, 1);
    assert_int_equal(gindex_flush(ix, T0 + 10 * SEC, false, count_flushed, &flushed), 0);
    assert_int_equal(gindex_flush(ix, T0 + 60 * SEC, false, count_flushed, &flushed), 1);
    assert_int_equal(flushed, 19);
    for (int i = 0; i < 7; i++)
        assert_true(gindex_reject(ix, &c, T0 + 61 * SEC + i, &n, &p) && n == 0);
    assert_int_equal(gindex_take(ix, &net, T0 + 62 * SEC), 7);
    assert_int_equal(gindex_take(ix, &net, T0 + 62 * SEC), 0);
    for (int i = 0; i < 3; i++)
        assert_true(gindex_reject(ix, &c, T0 + 63 * SEC + i, &n, &p) && n == 0);
    assert_true(gindex_del(ix, &net, &pend));
    assert_int_equal(pend, 3);
    /* the flush at shutdown finds nothing left */
    assert_int_equal(gindex_flush(ix, T0 + HOUR, true, count_flushed, &flushed), 0);
    gindex_free(ix);
}

static void index_lengths_and_families(void **state)
{
    (void)state;
    struct gindex *ix = gindex_new();
    struct addr n24 = A("198.51.100.0/24"), n64 = A("2001:db8:1:2::/64"), n48 = A("2001:db8:1::/48");
    struct addr in24 = A("198.51.100.99"), out24 = A("198.51.101.1");
    struct addr in64 = A("2001:db8:1:2::99"), in48 = A("2001:db8:1:3::1"), out48 = A("2001:db8:2::1");
    /* the IPv4 address with the same leading bytes as an IPv6 prefix is not inside it */
    struct addr mapped = A("32.1.13.184");
    gindex_put(ix, &n24, T0 + HOUR);
    gindex_put(ix, &n64, T0 + HOUR);
    struct addr hit;
    assert_true(gindex_lookup(ix, &in24, T0, false, &hit, NULL));
    assert_true(addr_equal(&hit, &n24));
    assert_false(gindex_lookup(ix, &out24, T0, false, NULL, NULL));
    assert_true(gindex_lookup(ix, &in64, T0, false, &hit, NULL));
    assert_true(addr_equal(&hit, &n64));
    assert_false(gindex_lookup(ix, &in48, T0, false, NULL, NULL));
    assert_false(gindex_lookup(ix, &mapped, T0, false, NULL, NULL));
    /* the /48 over the /64: the longest first, or the widest when asked */
    gindex_put(ix, &n48, T0 + 2 * HOUR);
    assert_true(gindex_lookup(ix, &in64, T0, false, &hit, NULL));
    assert_true(addr_equal(&hit, &n64));
    assert_true(gindex_lookup(ix, &in64, T0, true, &hit, NULL));
    assert_true(addr_equal(&hit, &n48));
    assert_true(gindex_lookup(ix, &in48, T0, false, &hit, NULL));
    assert_true(addr_equal(&hit, &n48));
    assert_false(gindex_lookup(ix, &out48, T0, false, NULL, NULL));
    /* an expired /64 does not hide the /48 behind it */
    assert_true(gindex_lookup(ix, &in64, T0 + HOUR, false, &hit, NULL));
    assert_true(addr_equal(&hit, &n48));
    /* a prefix key (status of a CIDR) sees lengths up to its own only */
    assert_true(gindex_lookup(ix, &n48, T0, false, &hit, NULL));
    struct addr n32 = A("2001:db8::/32");
    assert_false(gindex_lookup(ix, &n32, T0, false, NULL, NULL));
    gindex_free(ix);
}

/* Many puts and deletes: the table grows, leaves tombstones, reuses and
 * shrinks, and every lookup agrees with a plain array. */
static void index_resize_and_tombstones(void **state)
{
    (void)state;
    enum { N = 40000 };
    struct gindex *ix = gindex_new();
    static bool in[N];
    memset(in, 0, sizeof in);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    size_t live = 0;
    for (int round = 0; round < 6 * N; round++) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        uint32_t i = (uint32_t)((x * 2685821657736338717ULL) >> 33) % N;
        /* first half of the run mostly puts, second half mostly deletes */
        bool put = (round < 3 * N) ? (x & 7) != 0 : (x & 7) == 0;
        struct addr p = (i & 1) ? v4(0x0a000000u + i, 32) : v6(i, i, 64);
        if (put) {
            assert_true(gindex_put(ix, &p, T0 + HOUR));
            live += !in[i];
            in[i] = true;
        } else {
            uint32_t pend;
            assert_int_equal(gindex_del(ix, &p, &pend), in[i]);
            live -= in[i];
            in[i] = false;
        }
    }
    struct gindex_stats st;
    gindex_stats(ix, &st);
    assert_int_equal(st.live, live);
    assert_true(st.resizes >= 4);
    /* no more than 96 bytes per prefix even after the deletes (a shrink) */
    assert_true(live == 0 || st.bytes <= 96 * live + 64 * 24 + 64);
    for (uint32_t i = 0; i < N; i++) {
        struct addr p = (i & 1) ? v4(0x0a000000u + i, 32) : v6(i, i, 64);
        if (gindex_lookup(ix, &p, T0, false, NULL, NULL) != in[i])
            fail_msg("prefix %u: lookup says %d, truth %d", i, !in[i], in[i]);
    }
    gindex_free(ix);
}

/* Readers never miss a prefix that stays in the table while a writer
 * grows, fills with tombstones and shrinks it (under ASan: nor read a
 * freed table). */
struct reader_arg {
    struct gindex *ix;
    atomic_bool *stop;
    long lookups, misses;
};

static void *reader(void *p)
{
    struct reader_arg *r = p;
    while (!atomic_load(r->stop)) {
        for (uint32_t i = 0; i < 256; i++) {
            struct addr a = v4(0xc0000200u + i, 32);   /* 192.0.2.i */
            r->misses += !gindex_lookup(r->ix, &a, T0, false, NULL, NULL);
            struct addr b = v6(0xbeef, i, 128);
            r->misses += !gindex_lookup(r->ix, &b, T0, false, NULL, NULL);
            r->lookups += 2;
        }
    }
    return NULL;
}

static void index_concurrent_readers(void **state)
{
    (void)state;
    struct gindex *ix = gindex_new();
    for (uint32_t i = 0; i < 256; i++) {
        struct addr a = v4(0xc0000200u + i, 32);
        struct addr b = v6(0xbeef, i, 64);
        assert_true(gindex_put(ix, &a, INT64_MAX));
        assert_true(gindex_put(ix, &b, T0 + HOUR));
    }
    atomic_bool stop = false;
    struct reader_arg ra[2] = {{ix, &stop, 0, 0}, {ix, &stop, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reader, &ra[i]);
    struct gindex_stats st;
    for (int round = 0; round < 6; round++) {
        for (uint32_t i = 0; i < 20000; i++) {
            struct addr p = v4(0x0b000000u + i, 32);
            gindex_put(ix, &p, T0 + HOUR);
        }
        for (uint32_t i = 0; i < 20000; i++) {
            struct addr p = v4(0x0b000000u + i, 32);
            uint32_t pend;
            gindex_del(ix, &p, &pend);
        }
    }
    gindex_stats(ix, &st);
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_true(st.resizes >= 12);
    for (int i = 0; i < 2; i++) {
        assert_true(ra[i].lookups > 0);
        assert_int_equal(ra[i].misses, 0);
    }
    gindex_free(ix);
}

/* ---- issue 11's counts on this structure ------------------------------- */

struct tally {
    uint32_t blocked, concurrency;
};

static void tally_cb(void *ctx, const struct addr *prefix, enum guard_verdict why, uint32_t n)
{
    (void)prefix;
    struct tally *t = ctx;
    if (why == GUARD_REJECT_BLOCKED)
        t->blocked += n;
    else
        t->concurrency += n;
}

static void no_expiry_cb(void *ctx, uint64_t id, const struct addr *prefix, int64_t at)
{
    (void)id, (void)prefix, (void)at;
    (*(int *)ctx)++;
}

static struct config *cfg(void);

/* Every 554 counted comes out once: across index rebuilds, a block lifted
 * by the cluster (no take), an expiry, and a table full of a spray that
 * would evict the prefix whose concurrency 554s are still unlogged. */
static void reject_counts_survive(void **state)
{
    (void)state;
    struct config *c = cfg();
    c->max_tracked = 300;
    c->concurrency_limit = 1;
    struct guard *g = guard_new();
    struct guard_block m, old;
    bool had, did;
    struct addr net = A("203.0.113.0/24"), cl = A("203.0.113.9"), p;
    guard_block_manual(g, &net, 1 * HOUR, T0, &m, &old, &had);
    uint32_t n, logged = 0;
    for (uint32_t i = 0; i < 3000; i++) {
        assert_true(guard_check_reject(g, &cl, T0 + i, &n, &p));
        logged += n;
        if (i % 30 == 0) {         /* other blocks grow the index under it */
            struct addr q = v4(0x0a000000u + i, 32);
            guard_block_manual(g, &q, 1 * HOUR, T0, &m, &old, &had);
        }
    }
    assert_int_equal(logged, 1);
    /* lifted elsewhere in the cluster: nobody takes, the flush finds them */
    struct guard_status gs;
    guard_status(g, c, &cl, T0 + 4 * SEC, &gs);
    assert_true(gs.blocked && addr_equal(&gs.block_prefix, &net));
    guard_remove(g, &net, gs.block_id);
    assert_false(guard_blocked(g, &cl, T0 + 4 * SEC));
    struct tally t = {0};
    guard_reject_flush(g, T0 + 5 * SEC, false, tally_cb, &t);
    assert_int_equal(logged + t.blocked, 3000);

    /* an expiry: take() after guard_expire gets what was pending */
    struct addr e = A("198.18.0.0/16"), ec = A("198.18.1.1");
    guard_block_manual(g, &e, 10 * SEC, T0, &m, &old, &had);
    for (int i = 0; i < 4; i++)
        assert_true(guard_check_reject(g, &ec, T0 + i, &n, &p));
    int expired = 0;
    assert_true(guard_expire(g, T0 + 11 * SEC, no_expiry_cb, &expired) >= 1);
    assert_int_equal(guard_reject_take(g, &e, T0 + 11 * SEC), 3);

    /* concurrency 554s pending on a prefix whose connections closed: a
     * spray does not evict them */
    struct addr busy = A("192.0.2.77");
    assert_int_equal(guard_connect(g, c, &busy, T0 + 2 * HOUR, &m, &did), GUARD_ACCEPT);
    uint32_t conc = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(guard_connect(g, c, &busy, T0 + 2 * HOUR + i, &m, &did), GUARD_REJECT_CONCURRENCY);
        conc += guard_concurrency_note(g, c, &busy, T0 + 2 * HOUR + i, &p);
    }
    guard_disconnect(g, c, &busy);
    for (uint32_t i = 0; i < 5000; i++) {
        struct addr a = v4(0x0b000000u + i, 32);
        guard_connect(g, c, &a, T0 + 2 * HOUR + SEC + i, &m, &did);
        guard_disconnect(g, c, &a);
    }
    struct guard_stats st;
    guard_stats(g, T0 + 2 * HOUR + 10 * SEC, &st);
    assert_true(st.evictions >= 4000);
    guard_sweep(g, c, T0 + 2 * HOUR + 10 * SEC);
    memset(&t, 0, sizeof t);
    guard_reject_flush(g, T0 + 2 * HOUR + 10 * SEC, true, tally_cb, &t);
    assert_int_equal(conc, 1);
    assert_int_equal(conc + t.concurrency, 10);
    guard_free(g);
    config_unref(c);
}

/* ---- max_tracked ------------------------------------------------------ */

static struct config *cfg(void)
{
    struct config *c = config_defaults("/tmp");
    assert_non_null(c);
    return c;
}

/* A spray of fresh addresses cannot push out the counts of a few that are
 * near their limit, nor a block; memory stays at the bound. */
static void evict_spray_keeps_near_limit(void **state)
{
    (void)state;
    struct config *c = cfg();
    c->max_tracked = 100;
    struct guard *g = guard_new();
    struct guard_block made;
    bool did;
    struct addr near[5];
    for (int i = 0; i < 5; i++) {
        near[i] = v4(0xc6336400u + (uint32_t)i, 32);   /* 198.51.100.i */
        for (int k = 0; k < c->auth_fail_limit - 1; k++)
            assert_false(guard_offend(g, c, &near[i], GUARD_AUTH_FAILURES, T0 + k * SEC, &made));
    }
    struct addr blocked = A("192.0.2.1");
    assert_true(guard_impose(g, c, &blocked, GUARD_AUTH_FAILURES, T0, 5, T0, &made));
    for (uint32_t i = 0; i < 20000; i++) {
        struct addr a = v4(0x0a000000u + i, 32);
        enum guard_verdict v = guard_connect(g, c, &a, T0 + 10 * SEC + i, &made, &did);
        assert_int_equal(v, GUARD_ACCEPT);
        guard_disconnect(g, c, &a);
    }
    struct guard_stats st;
    int64_t now = T0 + 40 * SEC;
    guard_stats(g, now, &st);
    assert_true(st.entries <= 100);
    assert_true(st.evictions >= 19000);
    assert_true(guard_blocked(g, &blocked, now));
    for (int i = 0; i < 5; i++) {
        struct guard_status gs;
        guard_status(g, c, &near[i], now, &gs);
        assert_int_equal(gs.auth_failures, c->auth_fail_limit - 1);
        /* and the next failure is the limit */
        assert_true(guard_offend(g, c, &near[i], GUARD_AUTH_FAILURES, now, &made));
    }
    guard_free(g);
    config_unref(c);
}

/* When every entry is worth more than a newcomer, the newcomer is not
 * counted (and nothing is evicted); the oldest of equals goes first. */
static void evict_order(void **state)
{
    (void)state;
    struct config *c = cfg();
    c->max_tracked = 100;
    struct guard *g = guard_new();
    struct guard_block made;
    bool did;
    for (uint32_t i = 0; i < 100; i++) {
        struct addr a = v4(0x0a000000u + i, 32);
        guard_offend(g, c, &a, GUARD_AUTH_FAILURES, T0, &made);
        guard_offend(g, c, &a, GUARD_AUTH_FAILURES, T0, &made);
    }
    struct guard_stats st;
    struct addr fresh = A("192.0.2.200");
    assert_int_equal(guard_connect(g, c, &fresh, T0 + SEC, &made, &did), GUARD_ACCEPT);
    guard_stats(g, T0 + SEC, &st);
    assert_int_equal(st.entries, 100);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.untracked, 1);
    struct guard_status gs;
    guard_status(g, c, &fresh, T0 + SEC, &gs);
    assert_int_equal(gs.connections, 0);
    /* once their window has passed, the old counts are worth nothing and
     * give way */
    int64_t later = T0 + c->auth_fail_window_ms + 2 * c->auth_fail_window_ms;
    assert_int_equal(guard_connect(g, c, &fresh, later, &made, &did), GUARD_ACCEPT);
    guard_status(g, c, &fresh, later, &gs);
    assert_int_equal(gs.connections, 1);
    guard_stats(g, later, &st);
    assert_int_equal(st.evictions, 1);
    guard_free(g);
    config_unref(c);
}

/* ---- escalation ------------------------------------------------------- */

static void block_narrow(struct guard *g, struct config *c, const struct addr *p, int64_t now,
                         bool expect_escalation)
{
    struct guard_block made, wide;
    assert_true(guard_impose(g, c, p, GUARD_AUTH_FAILURES, now, 5, now, &made));
    bool esc = guard_escalate(g, c, &made.prefix, now, &wide);
    if (esc != expect_escalation)
        fail_msg("escalation %d, expected %d", esc, expect_escalation);
    if (esc) {
        assert_int_equal(wide.reason, GUARD_ESCALATED);
        assert_int_equal(wide.prefix.bits, wide.prefix.family == AF_INET ? c->ipv4_escalate_prefix
                                                                         : c->ipv6_escalate_prefix);
        assert_true(addr_in(&wide.prefix, p));
        assert_int_equal(wide.state, BLOCK_ACTIVE);
        assert_true(wide.expires_at > now);
    }
}

static void escalate_ipv6(void **state)
{
    (void)state;
    struct config *c = cfg();   /* escalate_count 8, ipv6_escalate_prefix 48 */
    struct guard *g = guard_new();
    int64_t now = T0;
    struct addr w = v6(1, 0, 48), ninth = v6(1, 9, 128);
    for (uint32_t i = 1; i <= 7; i++) {
        struct addr p = v6(1, i, 64);
        block_narrow(g, c, &p, now, false);
    }
    assert_int_equal(guard_escalation_count(g, &w), 7);
    /* manual blocks inside do not count */
    struct guard_block m, old;
    bool had;
    struct addr man = v6(1, 100, 64);
    guard_block_manual(g, &man, HOUR, now, &m, &old, &had);
    assert_int_equal(guard_escalation_count(g, &w), 7);
    /* nor does a block in another /48 */
    struct addr other = v6(2, 8, 64);
    block_narrow(g, c, &other, now, false);
    assert_false(guard_blocked(g, &ninth, now));
    struct addr p8 = v6(1, 8, 64);
    block_narrow(g, c, &p8, now, true);
    assert_true(guard_blocked(g, &ninth, now));
    struct guard_status gs;
    guard_status(g, c, &ninth, now, &gs);
    assert_true(gs.blocked);
    assert_int_equal(gs.block_reason, GUARD_ESCALATED);
    assert_true(addr_equal(&gs.block_prefix, &w));
    /* status of a narrowly blocked /64 inside shows the wide block too */
    struct addr p3 = v6(1, 3, 64);
    guard_status(g, c, &p3, now, &gs);
    assert_true(addr_equal(&gs.block_prefix, &w));
    /* the wide block is on the ladder of the /48 itself */
    guard_status(g, c, &w, now, &gs);
    assert_int_equal(gs.offenses, 1);

    /* lifting the wide block leaves the narrow ones; it comes back only
     * with a further narrow block */
    uint64_t id;
    assert_true(guard_unblock(g, &w, now + SEC, &id));
    assert_false(guard_blocked(g, &ninth, now + SEC));
    assert_true(guard_blocked(g, &p8, now + SEC));
    struct addr p9 = v6(1, 9, 64);
    block_narrow(g, c, &p9, now + 2 * SEC, true);
    assert_true(guard_blocked(g, &ninth, now + 2 * SEC));
    guard_status(g, c, &w, now + 2 * SEC, &gs);
    assert_int_equal(gs.offenses, 2);   /* its own ladder: a second block */
    assert_int_equal(gs.block_reason, GUARD_ESCALATED);
    guard_free(g);
    config_unref(c);
}

static size_t expired_n;
static void count_expired(void *ctx, uint64_t id, const struct addr *p, int64_t at)
{
    (void)ctx, (void)id, (void)p, (void)at;
    expired_n++;
}

/* IPv4 ranges, counts falling as narrow blocks end, escalation off. */
static void escalate_ipv4_edges(void **state)
{
    (void)state;
    struct config *c = cfg();
    c->ipv4_escalate_prefix = 24;
    c->escalate_count = 3;
    struct guard *g = guard_new();
    struct addr w = A("203.0.113.0/24"), inside = A("203.0.113.200");
    struct addr a1 = A("203.0.113.1"), a2 = A("203.0.113.2"), a3 = A("203.0.113.3");
    block_narrow(g, c, &a1, T0, false);
    block_narrow(g, c, &a2, T0 + 10 * MIN, false);
    assert_int_equal(guard_escalation_count(g, &w), 2);
    /* the first block (15 min) has ended when the third comes */
    expired_n = 0;
    guard_expire(g, T0 + 16 * MIN, count_expired, NULL);
    assert_int_equal(expired_n, 1);
    assert_int_equal(guard_escalation_count(g, &w), 1);
    block_narrow(g, c, &a3, T0 + 16 * MIN, false);
    /* lifting one by hand lowers the count too */
    uint64_t id;
    assert_true(guard_unblock(g, &a3, T0 + 17 * MIN, &id));
    assert_int_equal(guard_escalation_count(g, &w), 1);
    block_narrow(g, c, &a3, T0 + 18 * MIN, false);
    block_narrow(g, c, &a1, T0 + 19 * MIN, true);
    assert_true(guard_blocked(g, &inside, T0 + 19 * MIN));
    guard_free(g);

    /* off: escalate prefix 0, or not shorter than the counting prefix */
    for (int k = 0; k < 2; k++) {
        c->ipv4_escalate_prefix = k == 0 ? 0 : 32;
        g = guard_new();
        block_narrow(g, c, &a1, T0, false);
        block_narrow(g, c, &a2, T0, false);
        block_narrow(g, c, &a3, T0, false);
        assert_false(guard_blocked(g, &inside, T0));
        guard_free(g);
    }
    config_unref(c);
}

/* A ladder longer than a block record's first room (4 block times): the
 * record grows and every block is remembered. */
static void long_ladder(void **state)
{
    (void)state;
    struct config *c = cfg();
    c->permanent_after = 10;
    struct guard *g = guard_new();
    struct addr a = A("192.0.2.77");
    struct guard_block made;
    for (int k = 1; k <= 10; k++) {
        int64_t now = T0 + k * 2 * 24 * HOUR;
        expired_n = 0;
        guard_expire(g, now, count_expired, NULL);
        assert_int_equal(expired_n, k == 1 ? 0 : 1);
        assert_true(guard_impose(g, c, &a, GUARD_AUTH_FAILURES, now, 5, now, &made));
        assert_int_equal(made.state, k == 10 ? BLOCK_PERMANENT : BLOCK_ACTIVE);
        struct guard_status gs;
        guard_status(g, c, &a, now, &gs);
        assert_int_equal(gs.offenses, k);
    }
    struct guard_stats st;
    guard_stats(g, T0, &st);
    assert_true(st.block_bytes > 0);
    guard_free(g);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(index_put_lookup_del),
        cmocka_unit_test(index_lengths_and_families),
        cmocka_unit_test(index_reject_notes),
        cmocka_unit_test(index_notes_taken),
        cmocka_unit_test(reject_counts_survive),
        cmocka_unit_test(index_resize_and_tombstones),
        cmocka_unit_test(index_concurrent_readers),
        cmocka_unit_test(evict_spray_keeps_near_limit),
        cmocka_unit_test(evict_order),
        cmocka_unit_test(escalate_ipv6),
        cmocka_unit_test(escalate_ipv4_edges),
        cmocka_unit_test(long_ladder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
