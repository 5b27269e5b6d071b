/* Unit tests for src/addr.h: parse, format, cut, prefix_of, in, CIDR lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "base/addr.h"

static struct addr P(const char *s)
{
    struct addr a;
    memset(&a, 0xAA, sizeof a);
    if (!addr_parse(s, true, &a))
        fail_msg("addr_parse(\"%s\") failed", s);
    return a;
}

static void fmt_eq(const struct addr *a, bool with_len, const char *want)
{
    char out[ADDR_STRLEN];
    memset(out, 0, sizeof out);
    addr_format(a, with_len, out);
    assert_string_equal(out, want);
}

static void test_parse_ipv4(void **state)
{
    (void)state;
    struct addr a;
    assert_true(addr_parse("203.0.113.7", false, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.bits, 32);
    assert_int_equal(a.b[0], 203);
    assert_int_equal(a.b[1], 0);
    assert_int_equal(a.b[2], 113);
    assert_int_equal(a.b[3], 7);
    fmt_eq(&a, false, "203.0.113.7");
    fmt_eq(&a, true, "203.0.113.7/32");

    assert_true(addr_parse("0.0.0.0", false, &a));
    fmt_eq(&a, false, "0.0.0.0");
    assert_true(addr_parse("255.255.255.255", false, &a));
    fmt_eq(&a, false, "255.255.255.255");
}

static void test_parse_ipv6(void **state)
{
    (void)state;
    struct addr a;
    assert_true(addr_parse("2001:db8::1", false, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.bits, 128);
    static const uint8_t want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                      0, 0, 0, 0, 0, 0, 0, 1 };
    assert_memory_equal(a.b, want, 16);
    fmt_eq(&a, false, "2001:db8::1");
    fmt_eq(&a, true, "2001:db8::1/128");

    assert_true(addr_parse("2001:DB8:0:0:1:0:0:1", false, &a));
    fmt_eq(&a, false, "2001:db8::1:0:0:1");

    assert_true(addr_parse("::", false, &a));
    assert_int_equal(a.family, AF_INET6);
    fmt_eq(&a, false, "::");
}

static void test_parse_bracketed_v6(void **state)
{
    (void)state;
    struct addr a;
    assert_true(addr_parse("[::1]", false, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.bits, 128);
    for (int i = 0; i < 15; i++)
        assert_int_equal(a.b[i], 0);
    assert_int_equal(a.b[15], 1);
    fmt_eq(&a, false, "::1");

    assert_false(addr_parse("[::1", false, &a));
    assert_false(addr_parse("::1]", false, &a));
    assert_false(addr_parse("[]", false, &a));
}

static void test_parse_prefix(void **state)
{
    (void)state;
    struct addr a;
    assert_true(addr_parse("203.0.113.0/24", true, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.bits, 24);
    fmt_eq(&a, true, "203.0.113.0/24");

    assert_true(addr_parse("2001:db8::/32", true, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.bits, 32);
    fmt_eq(&a, true, "2001:db8::/32");

    assert_true(addr_parse("0.0.0.0/0", true, &a));
    assert_int_equal(a.bits, 0);
    assert_true(addr_parse("::/0", true, &a));
    assert_int_equal(a.bits, 0);
    assert_true(addr_parse("192.0.2.1/32", true, &a));
    assert_int_equal(a.bits, 32);
    assert_true(addr_parse("::1/128", true, &a));
    assert_int_equal(a.bits, 128);

    /* A prefix where only an address is allowed is an error. */
    assert_false(addr_parse("203.0.113.0/24", false, &a));
    assert_false(addr_parse("2001:db8::/64", false, &a));
}

static void test_parse_cuts_host_bits(void **state)
{
    (void)state;
    struct addr a = P("203.0.113.7/24");
    assert_int_equal(a.bits, 24);
    assert_int_equal(a.b[3], 0);
    fmt_eq(&a, true, "203.0.113.0/24");

    a = P("203.0.113.255/28");
    fmt_eq(&a, true, "203.0.113.240/28");

    a = P("10.1.2.3/8");
    fmt_eq(&a, true, "10.0.0.0/8");

    a = P("2001:db8:1:2:3:4:5:6/64");
    fmt_eq(&a, true, "2001:db8:1:2::/64");
    for (int i = 8; i < 16; i++)
        assert_int_equal(a.b[i], 0);

    a = P("2001:db8:ffff::1/20");       /* 0x0db8: top nibble is 0 */
    fmt_eq(&a, true, "2001::/20");
    a = P("2001:db8:ffff::1/36");
    fmt_eq(&a, true, "2001:db8:f000::/36");

    /* The cut result equals the parsed canonical prefix. */
    struct addr c = P("203.0.113.0/24");
    struct addr d = P("203.0.113.99/24");
    assert_true(addr_equal(&c, &d));
}

static void test_parse_v4_mapped(void **state)
{
    (void)state;
    struct addr a;
    assert_true(addr_parse("::ffff:192.0.2.1", false, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.bits, 32);
    assert_int_equal(a.b[0], 192);
    assert_int_equal(a.b[1], 0);
    assert_int_equal(a.b[2], 2);
    assert_int_equal(a.b[3], 1);
    fmt_eq(&a, false, "192.0.2.1");

    struct addr v4 = P("192.0.2.1");
    assert_true(addr_equal(&a, &v4));
    assert_int_equal(addr_hash(&a), addr_hash(&v4));

    assert_true(addr_parse("[::ffff:192.0.2.1]", false, &a));
    assert_int_equal(a.family, AF_INET);
}

static void test_parse_garbage(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "abc", "1.2.3.4/33",
        "::1/129", "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/ab", "1.2.3.4/24x", "/24",
        "1::2::3", "2001:db8::g", "12345::", ":::", "1.2.3.4:25", "example.org",
        "localhost", "1.2.3.-4", "1.2.3.4/8/8", "[1.2.3.4]/8x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct addr a;
        if (addr_parse(bad[i], true, &a))
            fail_msg("addr_parse(\"%s\", true) accepted garbage", bad[i]);
        if (addr_parse(bad[i], false, &a))
            fail_msg("addr_parse(\"%s\", false) accepted garbage", bad[i]);
    }
    /* A long string must not overflow anything. */
    char big[4096];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = 0;
    struct addr a;
    assert_false(addr_parse(big, true, &a));
}

static void test_to_sockaddr(void **state)
{
    (void)state;
    struct addr a, back;
    struct sockaddr_storage ss;
    assert_true(addr_parse("203.0.113.7", false, &a));
    assert_int_equal(addr_to_sockaddr(&a, 2525, &ss), sizeof(struct sockaddr_in));
    const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
    assert_int_equal(in->sin_family, AF_INET);
    assert_int_equal(ntohs(in->sin_port), 2525);
    assert_int_equal(ntohl(in->sin_addr.s_addr), 0xCB007107);
    assert_true(addr_from_sockaddr((const struct sockaddr *)&ss, &back));
    assert_memory_equal(&a, &back, sizeof a);

    assert_true(addr_parse("2001:db8::53", false, &a));
    assert_int_equal(addr_to_sockaddr(&a, 53, &ss), sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(in6->sin6_port), 53);
    assert_int_equal(in6->sin6_addr.s6_addr[0], 0x20);
    assert_int_equal(in6->sin6_addr.s6_addr[15], 0x53);
    assert_true(addr_from_sockaddr((const struct sockaddr *)&ss, &back));
    assert_memory_equal(&a, &back, sizeof a);
}

static void test_from_sockaddr(void **state)
{
    (void)state;
    struct addr a;
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof s4);
    s4.sin_family = AF_INET;
    s4.sin_port = htons(25);
    inet_pton(AF_INET, "198.51.100.9", &s4.sin_addr);
    assert_true(addr_from_sockaddr((struct sockaddr *)&s4, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.bits, 32);
    fmt_eq(&a, false, "198.51.100.9");

    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::abcd", &s6.sin6_addr);
    assert_true(addr_from_sockaddr((struct sockaddr *)&s6, &a));
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.bits, 128);
    fmt_eq(&a, false, "2001:db8::abcd");

    /* dual-stack socket: an IPv4 client arrives as ::ffff:a.b.c.d */
    inet_pton(AF_INET6, "::ffff:198.51.100.9", &s6.sin6_addr);
    assert_true(addr_from_sockaddr((struct sockaddr *)&s6, &a));
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.bits, 32);
    fmt_eq(&a, false, "198.51.100.9");
    struct addr v4 = P("198.51.100.9");
    assert_true(addr_equal(&a, &v4));

    struct sockaddr su;
    memset(&su, 0, sizeof su);
    su.sa_family = AF_UNIX;
    assert_false(addr_from_sockaddr(&su, &a));
}

static void test_cut(void **state)
{
    (void)state;
    struct addr a = P("203.0.113.7");
    addr_cut(&a, 24);
    assert_int_equal(a.bits, 24);
    fmt_eq(&a, true, "203.0.113.0/24");

    a = P("203.0.113.7");
    addr_cut(&a, 40);          /* clamped to 32 */
    assert_int_equal(a.bits, 32);
    fmt_eq(&a, true, "203.0.113.7/32");

    a = P("203.0.113.7");
    addr_cut(&a, 0);
    assert_int_equal(a.bits, 0);
    fmt_eq(&a, true, "0.0.0.0/0");

    a = P("203.0.113.7");
    addr_cut(&a, 31);
    fmt_eq(&a, true, "203.0.113.6/31");

    a = P("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff");
    addr_cut(&a, 200);         /* clamped to 128 */
    assert_int_equal(a.bits, 128);
    addr_cut(&a, 48);
    fmt_eq(&a, true, "2001:db8:aaaa::/48");
    addr_cut(&a, 36);
    fmt_eq(&a, true, "2001:db8:a000::/36");
}

static void test_prefix_of(void **state)
{
    (void)state;
    struct addr v4 = P("203.0.113.77");
    struct addr k = addr_prefix_of(&v4, 24, 64);
    assert_int_equal(k.family, AF_INET);
    assert_int_equal(k.bits, 24);
    fmt_eq(&k, true, "203.0.113.0/24");
    /* the input is untouched */
    fmt_eq(&v4, true, "203.0.113.77/32");

    k = addr_prefix_of(&v4, 32, 64);
    fmt_eq(&k, true, "203.0.113.77/32");

    struct addr v6 = P("2001:db8:1:2:3:4:5:6");
    k = addr_prefix_of(&v6, 24, 64);
    assert_int_equal(k.family, AF_INET6);
    assert_int_equal(k.bits, 64);
    fmt_eq(&k, true, "2001:db8:1:2::/64");
    fmt_eq(&v6, false, "2001:db8:1:2:3:4:5:6");

    /* two clients of one /64 share a key; a neighbouring /64 does not */
    struct addr o1 = P("2001:db8:1:2:ffff:ffff:ffff:ffff");
    struct addr o2 = P("2001:db8:1:3::1");
    struct addr k1 = addr_prefix_of(&o1, 24, 64);
    struct addr k2 = addr_prefix_of(&o2, 24, 64);
    assert_true(addr_equal(&k, &k1));
    assert_int_equal(addr_hash(&k), addr_hash(&k1));
    assert_false(addr_equal(&k, &k2));

    /* ::1 per /64 */
    struct addr lo = P("::1");
    k = addr_prefix_of(&lo, 32, 64);
    fmt_eq(&k, true, "::/64");
}

static void test_equal(void **state)
{
    (void)state;
    struct addr a = P("203.0.113.0/24");
    struct addr b = P("203.0.113.0/25");
    struct addr c = P("203.0.113.0");
    struct addr d = P("::ffff:203.0.113.0");
    struct addr e = P("203.0.113.0/24");
    assert_true(addr_equal(&a, &e));
    assert_false(addr_equal(&a, &b));
    assert_false(addr_equal(&a, &c));
    assert_true(addr_equal(&c, &d));
    struct addr v6 = P("::cb00:7100");   /* same 4 bytes at the end, other family */
    assert_false(addr_equal(&c, &v6));
}

static void test_in(void **state)
{
    (void)state;
    struct addr net = P("203.0.113.0/24");
    struct addr in = P("203.0.113.7");
    struct addr out = P("203.0.114.1");
    struct addr v6 = P("2001:db8::1");
    assert_true(addr_in(&net, &in));
    assert_false(addr_in(&net, &out));
    assert_false(addr_in(&net, &v6));

    struct addr all4 = P("0.0.0.0/0");
    assert_true(addr_in(&all4, &in));
    assert_false(addr_in(&all4, &v6));
    struct addr all6 = P("::/0");
    assert_true(addr_in(&all6, &v6));
    assert_false(addr_in(&all6, &in));

    struct addr lo = P("::1/128");
    struct addr one = P("::1");
    struct addr two = P("::2");
    assert_true(addr_in(&lo, &one));
    assert_false(addr_in(&lo, &two));

    struct addr n64 = P("2001:db8:1:2::/64");
    struct addr a64 = P("2001:db8:1:2:ffff::9");
    struct addr b64 = P("2001:db8:1:3::9");
    assert_true(addr_in(&n64, &a64));
    assert_false(addr_in(&n64, &b64));

    /* a prefix inside a larger one */
    struct addr n16 = P("203.0.0.0/16");
    assert_true(addr_in(&n16, &net));
    struct addr n28 = P("203.0.113.16/28");
    struct addr x = P("203.0.113.31");
    struct addr y = P("203.0.113.32");
    assert_true(addr_in(&n28, &x));
    assert_false(addr_in(&n28, &y));

    /* mapped addresses count as IPv4 */
    struct addr m = P("::ffff:203.0.113.200");
    assert_true(addr_in(&net, &m));
}

static void test_cidr_list_good(void **state)
{
    (void)state;
    struct cidr_list l = { 0, NULL };
    char err[128] = "";
    assert_true(cidr_list_parse("127.0.0.0/8 ::1/128", &l, err, sizeof err));
    assert_int_equal(l.n, 2);
    fmt_eq(&l.v[0], true, "127.0.0.0/8");
    fmt_eq(&l.v[1], true, "::1/128");
    struct addr a = P("127.3.4.5"), b = P("::1"), c = P("128.0.0.1"), d = P("::2");
    assert_true(cidr_list_match(&l, &a));
    assert_true(cidr_list_match(&l, &b));
    assert_false(cidr_list_match(&l, &c));
    assert_false(cidr_list_match(&l, &d));
    cidr_list_free(&l);

    assert_true(cidr_list_parse("10.0.0.0/8,192.168.0.0/16", &l, err, sizeof err));
    assert_int_equal(l.n, 2);
    cidr_list_free(&l);
    assert_true(cidr_list_parse("10.0.0.0/8, 192.168.0.0/16   172.16.0.0/12", &l, err, sizeof err));
    assert_int_equal(l.n, 3);
    struct addr e = P("172.31.255.255");
    assert_true(cidr_list_match(&l, &e));
    cidr_list_free(&l);

    /* a bare address stands for itself */
    assert_true(cidr_list_parse("192.0.2.1", &l, err, sizeof err));
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].bits, 32);
    struct addr f = P("192.0.2.1"), g = P("192.0.2.2");
    assert_true(cidr_list_match(&l, &f));
    assert_false(cidr_list_match(&l, &g));
    cidr_list_free(&l);

    /* host bits are cut */
    assert_true(cidr_list_parse("198.51.100.77/24", &l, err, sizeof err));
    fmt_eq(&l.v[0], true, "198.51.100.0/24");
    cidr_list_free(&l);

    /* empty list: matches nothing */
    assert_true(cidr_list_parse("", &l, err, sizeof err));
    assert_int_equal(l.n, 0);
    assert_false(cidr_list_match(&l, &a));
    cidr_list_free(&l);
    assert_true(cidr_list_parse("   ", &l, err, sizeof err));
    assert_int_equal(l.n, 0);
    cidr_list_free(&l);
}

static void test_cidr_list_bad(void **state)
{
    (void)state;
    const char *bad[][2] = {
        { "10.0.0.0/8 bogus", "bogus" },
        { "10.0.0.0/33", "10.0.0.0/33" },
        { "127.0.0.0/8 1.2.3/8", "1.2.3/8" },
        { "::1/129 127.0.0.1", "::1/129" },
        { "10.0.0.0/8,garbage!", "garbage!" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct addr sentinel_v[1];
        struct cidr_list l = { 12345, sentinel_v };
        char err[256] = "";
        if (cidr_list_parse(bad[i][0], &l, err, sizeof err))
            fail_msg("cidr_list_parse(\"%s\") accepted a bad list", bad[i][0]);
        if (strstr(err, bad[i][1]) == NULL)
            fail_msg("cidr_list_parse(\"%s\"): error \"%s\" does not name \"%s\"",
                     bad[i][0], err, bad[i][1]);
        /* out is untouched on error */
        assert_int_equal(l.n, 12345);
        assert_ptr_equal(l.v, sentinel_v);
    }
}

static void test_hash_differs(void **state)
{
    (void)state;
    /* Not a strict requirement per pair, but 256 neighbours should not all collide. */
    struct addr a = P("198.51.100.0");
    uint64_t h0 = addr_hash(&a);
    int same = 0;
    for (int i = 1; i < 256; i++) {
        a.b[3] = (uint8_t)i;
        if (addr_hash(&a) == h0)
            same++;
    }
    assert_true(same < 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_parse_ipv6),
        cmocka_unit_test(test_parse_bracketed_v6),
        cmocka_unit_test(test_parse_prefix),
        cmocka_unit_test(test_parse_cuts_host_bits),
        cmocka_unit_test(test_parse_v4_mapped),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_from_sockaddr),
        cmocka_unit_test(test_to_sockaddr),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_prefix_of),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_in),
        cmocka_unit_test(test_cidr_list_good),
        cmocka_unit_test(test_cidr_list_bad),
        cmocka_unit_test(test_hash_differs),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
