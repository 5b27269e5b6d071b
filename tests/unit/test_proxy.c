/* Unit tests for src/proxy.h: HAProxy PROXY protocol v1 and v2 headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proto/proxy.h"

static const uint8_t SIG[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static enum proxy_status parse_str(const char *s, struct proxy_result *r)
{
    memset(r, 0, sizeof *r);
    return proxy_parse((const uint8_t *)s, strlen(s), r);
}

static void fmt(const struct addr *a, char out[ADDR_STRLEN])
{
    addr_format(a, false, out);
}

/* ---- v1 ----------------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    struct proxy_result r;
    char s[ADDR_STRLEN];
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";
    assert_int_equal(parse_str(h, &r), PROXY_DONE);
    assert_int_equal(r.len, strlen(h));
    assert_int_equal(r.version, 1);
    assert_false(r.local);
    assert_int_equal(r.src.family, AF_INET);
    fmt(&r.src, s);
    assert_string_equal(s, "192.0.2.1");
    fmt(&r.dst, s);
    assert_string_equal(s, "198.51.100.2");
    assert_int_equal(r.src_port, 56324);
    assert_int_equal(r.dst_port, 25);
}

static void test_v1_followed_by_smtp(void **state)
{
    (void)state;
    struct proxy_result r;
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 1 587\r\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%sEHLO x\r\n", h);
    assert_int_equal(parse_str(buf, &r), PROXY_DONE);
    assert_int_equal(r.len, strlen(h));
    assert_int_equal(r.src_port, 1);
    assert_int_equal(r.dst_port, 587);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    struct proxy_result r;
    char s[ADDR_STRLEN];
    const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 587\r\n";
    assert_int_equal(parse_str(h, &r), PROXY_DONE);
    assert_int_equal(r.len, strlen(h));
    assert_int_equal(r.version, 1);
    assert_false(r.local);
    assert_int_equal(r.src.family, AF_INET6);
    fmt(&r.src, s);
    assert_string_equal(s, "2001:db8::1");
    fmt(&r.dst, s);
    assert_string_equal(s, "2001:db8::2");
    assert_int_equal(r.src_port, 65535);
    assert_int_equal(r.dst_port, 587);
}

static void test_v1_tcp6_mapped_is_ipv4(void **state)
{
    (void)state;
    struct proxy_result r;
    char s[ADDR_STRLEN];
    const char *h = "PROXY TCP6 ::ffff:192.0.2.9 ::1 1000 25\r\n";
    assert_int_equal(parse_str(h, &r), PROXY_DONE);
    assert_int_equal(r.src.family, AF_INET);
    fmt(&r.src, s);
    assert_string_equal(s, "192.0.2.9");
}

static void test_v1_max_length(void **state)
{
    (void)state;
    /* The longest legal v1 line: 107 octets */
    struct proxy_result r;
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_int_equal(strlen(h), 104);
    assert_int_equal(parse_str(h, &r), PROXY_DONE);
    assert_int_equal(r.len, 104);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct proxy_result r;
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &r), PROXY_DONE);
    assert_int_equal(r.len, 15);
    assert_int_equal(r.version, 1);
    assert_true(r.local);

    /* "the receiver must ignore anything presented before the CRLF" */
    const char *h = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 1 2\r\nEHLO";
    assert_int_equal(parse_str(h, &r), PROXY_DONE);
    assert_int_equal(r.len, strlen(h) - 4);
    assert_true(r.local);
}

static void test_v1_truncated(void **state)
{
    (void)state;
    const char *hs[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1234 587\r\n",
        "PROXY UNKNOWN\r\n",
    };
    for (size_t k = 0; k < sizeof hs / sizeof hs[0]; k++) {
        size_t len = strlen(hs[k]);
        for (size_t n = 0; n < len; n++) {
            struct proxy_result r;
            memset(&r, 0, sizeof r);
            enum proxy_status st = proxy_parse((const uint8_t *)hs[k], n, &r);
            if (st != PROXY_NEED_MORE)
                fail_msg("first %zu octets of \"%.*s\": status %d, expected NEED_MORE",
                         n, (int)len - 2, hs[k], (int)st);
        }
    }
}

static void test_v1_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "PROXY TCP4 192.0.2.300 198.51.100.2 56324 25\r\n",   /* bad address */
        "PROXY TCP4 192.0.2 198.51.100.2 56324 25\r\n",
        "PROXY TCP4 2001:db8::1 198.51.100.2 56324 25\r\n",   /* family mismatch */
        "PROXY TCP6 192.0.2.1 198.51.100.2 56324 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",     /* port > 65535 */
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 99999\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 x 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",        /* missing field */
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 7\r\n",   /* extra field */
        "PROXY TCP4 192.0.2.1\r\n",
        "PROXY TCP4\r\n",
        "PROXY\r\n",
        "PROXY TCP5 192.0.2.1 198.51.100.2 56324 25\r\n",     /* bad protocol */
        "PROXY tcp4 192.0.2.1 198.51.100.2 56324 25\r\n",
        "PROXY  TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",    /* two spaces */
        "PROXY TCP4 192.0.2.1  198.51.100.2 56324 25\r\n",
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n",       /* LF without CR */
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rX\n",
        "PROXY TCP4 192.0.2.1/24 198.51.100.2 56324 25\r\n",
        "PROXY TCP4 [192.0.2.1] 198.51.100.2 56324 25\r\n",
        "PROXYTCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proxy_result r;
        enum proxy_status st = parse_str(bad[i], &r);
        if (st != PROXY_INVALID) {
            print_error("\"%s\": status %d, expected INVALID\n", bad[i], (int)st);
            failures++;
        }
    }
    if (failures)
        fail_msg("%d malformed v1 header(s) not refused", failures);
}

static void test_v1_no_crlf_within_107(void **state)
{
    (void)state;
    char buf[300];
    /* 150 octets of a v1 beginning and no CRLF: a header cannot be longer */
    snprintf(buf, sizeof buf, "PROXY UNKNOWN %0136d", 0);
    assert_int_equal(strlen(buf), 150);
    struct proxy_result r;
    assert_int_equal(parse_str(buf, &r), PROXY_INVALID);

    snprintf(buf, sizeof buf, "PROXY TCP4 %0200d", 7);
    assert_int_equal(parse_str(buf, &r), PROXY_INVALID);

    /* 108 octets, CRLF at 107/108: too long */
    memset(buf, 0, sizeof buf);
    memcpy(buf, "PROXY UNKNOWN ", 14);
    memset(buf + 14, 'a', 92);
    memcpy(buf + 106, "\r\n", 2);
    assert_int_equal(strlen(buf), 108);
    assert_int_equal(parse_str(buf, &r), PROXY_INVALID);
}

static void test_not_a_proxy_header(void **state)
{
    (void)state;
    const char *bad[] = { "EHLO x\r\n", "GET / HTTP/1.1\r\n", "X", "proxy TCP4 1.2.3.4 1.2.3.4 1 1\r\n",
                          "\x16\x03\x01\x02\x00", "PROXZ", " PROXY UNKNOWN\r\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proxy_result r;
        enum proxy_status st = parse_str(bad[i], &r);
        if (st != PROXY_INVALID)
            fail_msg("\"%s\": status %d, expected INVALID", bad[i], (int)st);
    }
    /* the v2 signature broken after its first bytes */
    uint8_t b[16];
    memcpy(b, SIG, 12);
    b[5] = 'X';
    struct proxy_result r;
    assert_int_equal(proxy_parse(b, 6, &r), PROXY_INVALID);
    assert_int_equal(proxy_parse(b, 16, &r), PROXY_INVALID);
}

static void test_need_more_on_prefixes(void **state)
{
    (void)state;
    struct proxy_result r;
    assert_int_equal(proxy_parse((const uint8_t *)"", 0, &r), PROXY_NEED_MORE);
    assert_int_equal(parse_str("P", &r), PROXY_NEED_MORE);
    assert_int_equal(parse_str("PROX", &r), PROXY_NEED_MORE);
    assert_int_equal(proxy_parse(SIG, 1, &r), PROXY_NEED_MORE);
    assert_int_equal(proxy_parse(SIG, 4, &r), PROXY_NEED_MORE);
    assert_int_equal(proxy_parse(SIG, 12, &r), PROXY_NEED_MORE);
}

/* ---- v2 ----------------------------------------------------------------- */

static size_t v2_header(uint8_t *b, uint8_t ver_cmd, uint8_t fam, uint16_t len)
{
    memcpy(b, SIG, 12);
    b[12] = ver_cmd;
    b[13] = fam;
    b[14] = (uint8_t)(len >> 8);
    b[15] = (uint8_t)(len & 0xff);
    return 16;
}

static size_t v2_ipv4(uint8_t *b, const uint8_t *tlv, size_t tlvlen)
{
    size_t n = v2_header(b, 0x21, 0x11, (uint16_t)(12 + tlvlen));
    const uint8_t body[12] = { 192, 0, 2, 77, 198, 51, 100, 3, 0xdc, 0x04, 0x02, 0x4b };
    memcpy(b + n, body, 12);                   /* src port 56324, dst port 587 */
    n += 12;
    if (tlvlen)
        memcpy(b + n, tlv, tlvlen);
    return n + tlvlen;
}

static void test_v2_ipv4(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = v2_ipv4(b, NULL, 0);
    struct proxy_result r;
    char s[ADDR_STRLEN];
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 28);
    assert_int_equal(r.version, 2);
    assert_false(r.local);
    assert_int_equal(r.src.family, AF_INET);
    assert_int_equal(r.src.bits, 32);
    fmt(&r.src, s);
    assert_string_equal(s, "192.0.2.77");
    fmt(&r.dst, s);
    assert_string_equal(s, "198.51.100.3");
    assert_int_equal(r.src_port, 56324);
    assert_int_equal(r.dst_port, 587);

    /* followed by SMTP: only the header is consumed */
    memcpy(b + n, "EHLO x\r\n", 8);
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n + 8, &r), PROXY_DONE);
    assert_int_equal(r.len, 28);
}

static void test_v2_ipv6(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = v2_header(b, 0x21, 0x21, 36);
    const uint8_t src[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42 };
    const uint8_t dst[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01 };
    memcpy(b + n, src, 16); n += 16;
    memcpy(b + n, dst, 16); n += 16;
    b[n++] = 0x30; b[n++] = 0x39;              /* 12345 */
    b[n++] = 0x01; b[n++] = 0xd1;              /* 465 */
    struct proxy_result r;
    char s[ADDR_STRLEN];
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 52);
    assert_int_equal(r.version, 2);
    assert_false(r.local);
    assert_int_equal(r.src.family, AF_INET6);
    assert_int_equal(r.src.bits, 128);
    fmt(&r.src, s);
    assert_string_equal(s, "2001:db8::42");
    fmt(&r.dst, s);
    assert_string_equal(s, "2001:db8:1::1");
    assert_int_equal(r.src_port, 12345);
    assert_int_equal(r.dst_port, 465);
}

static void test_v2_tlvs(void **state)
{
    (void)state;
    /* PP2_TYPE_ALPN "smtp", PP2_TYPE_AUTHORITY "mail.example", PP2_TYPE_NOOP (3 zeros),
     * PP2_TYPE_SSL with a sub-TLV */
    const uint8_t tlv[] = {
        0x01, 0x00, 0x04, 's', 'm', 't', 'p',
        0x02, 0x00, 0x0c, 'm', 'a', 'i', 'l', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e',
        0x04, 0x00, 0x03, 0, 0, 0,
        0x20, 0x00, 0x0b, 0x01, 0, 0, 0, 0, 0x21, 0x00, 0x03, 'v', '1', '3',
    };
    uint8_t b[128];
    size_t n = v2_ipv4(b, tlv, sizeof tlv);
    struct proxy_result r;
    char s[ADDR_STRLEN];
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 28 + sizeof tlv);
    assert_int_equal(r.len, n);
    fmt(&r.src, s);
    assert_string_equal(s, "192.0.2.77");
    assert_int_equal(r.src_port, 56324);
}

static void test_v2_local(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = v2_header(b, 0x20, 0x00, 0);
    struct proxy_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 16);
    assert_int_equal(r.version, 2);
    assert_true(r.local);

    /* LOCAL with an address block: the addresses are ignored */
    n = v2_header(b, 0x20, 0x11, 12);
    memset(b + n, 9, 12);
    n += 12;
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 28);
    assert_true(r.local);
}

static void expect_v2_invalid(uint8_t ver_cmd, uint8_t fam, uint16_t len, size_t give, const char *what)
{
    uint8_t *b = calloc(1, 16 + (size_t)len + 16);
    v2_header(b, ver_cmd, fam, len);
    if (fam == 0x11 && len >= 12) {
        const uint8_t body[12] = { 192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 25 };
        memcpy(b + 16, body, 12);
    }
    struct proxy_result r;
    memset(&r, 0, sizeof r);
    enum proxy_status st = proxy_parse(b, give, &r);
    free(b);
    if (st != PROXY_INVALID)
        fail_msg("v2 %s (ver_cmd %#x fam %#x len %u, %zu octets given): status %d, expected INVALID",
                 what, ver_cmd, fam, len, give, (int)st);
}

static void test_v2_bad_version(void **state)
{
    (void)state;
    expect_v2_invalid(0x11, 0x11, 12, 28, "version 1");
    expect_v2_invalid(0x31, 0x11, 12, 28, "version 3");
    expect_v2_invalid(0x01, 0x11, 12, 28, "version 0");
    expect_v2_invalid(0xf1, 0x11, 12, 28, "version 15");
}

/* proxy.h: NEED_MORE means "a valid beginning". Signature + a version
 * byte of 3 is no valid beginning: the verdict needs only 13 octets. */
static void test_v2_bad_version_early(void **state)
{
    (void)state;
    expect_v2_invalid(0x31, 0x11, 12, 13, "version 3 (13 octets)");
}

static void test_v2_bad_command(void **state)
{
    (void)state;
    expect_v2_invalid(0x22, 0x11, 12, 28, "command 2");
    expect_v2_invalid(0x2f, 0x11, 12, 28, "command 15");
}

static void test_v2_bad_family(void **state)
{
    (void)state;
    expect_v2_invalid(0x21, 0x41, 12, 28, "family 4");
    expect_v2_invalid(0x21, 0xf1, 12, 28, "family 15");
    expect_v2_invalid(0x21, 0x13, 12, 28, "transport 3");
    /* too short an address block for the family */
    expect_v2_invalid(0x21, 0x11, 8, 24, "TCP4 with 8 octets");
    expect_v2_invalid(0x21, 0x21, 12, 28, "TCP6 with 12 octets");
}

static void test_v2_too_long(void **state)
{
    (void)state;
    /* a length that would make us buffer more than PROXY_MAX_HEADER:
     * refused on sight, from the first 16 octets */
    expect_v2_invalid(0x21, 0x11, 2000, 16, "length 2000");
    expect_v2_invalid(0x21, 0x11, 0xffff, 16, "length 65535");
    expect_v2_invalid(0x21, 0x11, (uint16_t)(PROXY_MAX_HEADER - 16 + 1), 16, "total PROXY_MAX_HEADER+1");
}

static void test_v2_max_length_ok(void **state)
{
    (void)state;
    /* exactly PROXY_MAX_HEADER octets in all, padded with a NOOP TLV */
    size_t total = PROXY_MAX_HEADER;
    size_t tlvlen = total - 28;
    uint8_t *tlv = calloc(1, tlvlen);
    tlv[0] = 0x04;
    tlv[1] = (uint8_t)((tlvlen - 3) >> 8);
    tlv[2] = (uint8_t)((tlvlen - 3) & 0xff);
    uint8_t *b = calloc(1, total + 8);
    size_t n = v2_ipv4(b, tlv, tlvlen);
    assert_int_equal(n, total);
    struct proxy_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, PROXY_MAX_HEADER);
    free(b);
    free(tlv);
}

static void test_v2_partial(void **state)
{
    (void)state;
    const uint8_t tlv[] = { 0x01, 0x00, 0x02, 'h', '2' };
    uint8_t b[64];
    size_t n = v2_ipv4(b, tlv, sizeof tlv);
    for (size_t k = 0; k < n; k++) {
        struct proxy_result r;
        memset(&r, 0, sizeof r);
        enum proxy_status st = proxy_parse(b, k, &r);
        if (st != PROXY_NEED_MORE)
            fail_msg("first %zu of %zu octets of a v2 header: status %d, expected NEED_MORE", k, n, (int)st);
    }
    struct proxy_result r;
    assert_int_equal(proxy_parse(b, n, &r), PROXY_DONE);
    assert_int_equal(r.len, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_followed_by_smtp),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_tcp6_mapped_is_ipv4),
        cmocka_unit_test(test_v1_max_length),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_truncated),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_no_crlf_within_107),
        cmocka_unit_test(test_not_a_proxy_header),
        cmocka_unit_test(test_need_more_on_prefixes),
        cmocka_unit_test(test_v2_ipv4),
        cmocka_unit_test(test_v2_ipv6),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_bad_version),
        cmocka_unit_test(test_v2_bad_version_early),
        cmocka_unit_test(test_v2_bad_command),
        cmocka_unit_test(test_v2_bad_family),
        cmocka_unit_test(test_v2_too_long),
        cmocka_unit_test(test_v2_max_length_ok),
        cmocka_unit_test(test_v2_partial),
    };
    return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
