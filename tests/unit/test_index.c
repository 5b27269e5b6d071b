/* test_index: the accept-time index (src/guard/index.h) on its own, and
 * the guard's bound (max_tracked, eviction) and escalation (SPEC §4).
 * Time is a parameter: fixed `now` values from T0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
    assert_true(gindex_del(ix, &p));
    assert_false(gindex_del(ix, &p));
    assert_false(gindex_lookup(ix, &p, T0, false, NULL, NULL));
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
            assert_int_equal(gindex_del(ix, &p), in[i]);
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
            assert_false(guard_offend(g, c, &near[i], GUARD_OFFENSE_AUTH, T0 + k * SEC, &made));
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
        assert_true(guard_offend(g, c, &near[i], GUARD_OFFENSE_AUTH, now, &made));
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
        guard_offend(g, c, &a, GUARD_OFFENSE_AUTH, T0, &made);
        guard_offend(g, c, &a, GUARD_OFFENSE_AUTH, T0, &made);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(index_put_lookup_del),
        cmocka_unit_test(index_lengths_and_families),
        cmocka_unit_test(index_resize_and_tombstones),
        cmocka_unit_test(evict_spray_keeps_near_limit),
        cmocka_unit_test(evict_order),
        cmocka_unit_test(escalate_ipv6),
        cmocka_unit_test(escalate_ipv4_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
