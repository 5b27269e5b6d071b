/* Unit tests for src/util.h: durations, sizes, booleans, numbers, dates, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>
#include <time.h>

#include "base/util.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static void test_duration_units(void **state)
{
    (void)state;
    assert_int_equal(util_parse_duration("45s"), 45 * SEC);
    assert_int_equal(util_parse_duration("10m"), 10 * MIN);
    assert_int_equal(util_parse_duration("2h"), 2 * HOUR);
    assert_int_equal(util_parse_duration("30d"), 30 * DAY);
    assert_int_equal(util_parse_duration("365d"), 365 * DAY);
    assert_int_equal(util_parse_duration("200ms"), 200);
    assert_int_equal(util_parse_duration("1ms"), 1);
    assert_int_equal(util_parse_duration("0s"), 0);
    assert_int_equal(util_parse_duration("0ms"), 0);
    assert_int_equal(util_parse_duration("1s"), SEC);
    assert_int_equal(util_parse_duration("15m"), 15 * MIN);
    assert_int_equal(util_parse_duration("24h"), 24 * HOUR);
}

static void test_duration_bare_number_is_seconds(void **state)
{
    (void)state;
    assert_int_equal(util_parse_duration("5"), 5 * SEC);
    assert_int_equal(util_parse_duration("0"), 0);
    assert_int_equal(util_parse_duration("90"), 90 * SEC);
}

static void test_duration_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "s", "m", "ms", "abc", "10x", "10mm", "10sm", "m10", "-5s", "-1",
        "5 s x", "10q", "1y", "h2", "99999999999999999999999d", "10m5", "ten",
        "0x10s", "1 0s", "10 s s",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = util_parse_duration(bad[i]);
        if (v != -1)
            fail_msg("util_parse_duration(\"%s\") = %lld, expected -1", bad[i], (long long)v);
    }
}

static void test_size_units(void **state)
{
    (void)state;
    assert_int_equal(util_parse_size("512K"), 512 * 1024);
    assert_int_equal(util_parse_size("25M"), 25 * 1024 * 1024);
    assert_int_equal(util_parse_size("1G"), 1024LL * 1024 * 1024);
    assert_int_equal(util_parse_size("1000"), 1000);
    assert_int_equal(util_parse_size("0"), 0);
    assert_int_equal(util_parse_size("1K"), 1024);
    assert_int_equal(util_parse_size("1M"), 1048576);
}

static void test_size_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "K", "M", "12X", "-1K", "-5", "abc", "25MM", "M25", "1.5M", "25 M x",
        "99999999999999999999999M", "K1", "0xFF",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t v = util_parse_size(bad[i]);
        if (v != -1)
            fail_msg("util_parse_size(\"%s\") = %lld, expected -1", bad[i], (long long)v);
    }
}

static void test_bool(void **state)
{
    (void)state;
    assert_int_equal(util_parse_bool("yes"), 1);
    assert_int_equal(util_parse_bool("no"), 0);
    assert_int_equal(util_parse_bool("true"), 1);
    assert_int_equal(util_parse_bool("false"), 0);
    assert_int_equal(util_parse_bool("on"), 1);
    assert_int_equal(util_parse_bool("off"), 0);
    assert_int_equal(util_parse_bool("1"), 1);
    assert_int_equal(util_parse_bool("0"), 0);
    const char *bad[] = { "", "maybe", "yess", "2", "-1", "ye", "nope", "y e s" };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int v = util_parse_bool(bad[i]);
        if (v != -1)
            fail_msg("util_parse_bool(\"%s\") = %d, expected -1", bad[i], v);
    }
}

static void test_parse_long(void **state)
{
    (void)state;
    long v = 77;
    assert_true(util_parse_long("42", 0, 100, &v));
    assert_int_equal(v, 42);
    assert_true(util_parse_long("0", 0, 100, &v));
    assert_int_equal(v, 0);
    assert_true(util_parse_long("100", 0, 100, &v));
    assert_int_equal(v, 100);
    assert_true(util_parse_long("-3", -5, 5, &v));
    assert_int_equal((long long)v, -3LL);
    assert_false(util_parse_long("101", 0, 100, &v));
    assert_false(util_parse_long("-1", 0, 100, &v));
    assert_false(util_parse_long("4x", 0, 100, &v));
    assert_false(util_parse_long("x4", 0, 100, &v));
    assert_false(util_parse_long("", 0, 100, &v));
    assert_false(util_parse_long("1.5", 0, 100, &v));
    assert_false(util_parse_long("99999999999999999999999", 0, 100, &v));
}

static void test_rfc3339(void **state)
{
    (void)state;
    char out[UTIL_RFC3339_LEN];
    util_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    util_rfc3339(1795391999123LL, out);
    assert_string_equal(out, "2026-11-22T23:59:59.123Z");
    util_rfc3339(1795395723456LL, out);
    assert_string_equal(out, "2026-11-23T01:02:03.456Z");
    util_rfc3339(1795395723000LL + 7, out);
    assert_string_equal(out, "2026-11-23T01:02:03.007Z");
    /* 2024-02-29T12:00:00.999Z: a leap day */
    util_rfc3339(1709208000999LL, out);
    assert_string_equal(out, "2024-02-29T12:00:00.999Z");
    assert_int_equal(strlen(out), 24);
}

static void test_rfc5322_date(void **state)
{
    (void)state;
    char out[64];
    util_rfc5322_date(1795395723456LL, out, sizeof out);
    assert_string_equal(out, "Mon, 23 Nov 2026 01:02:03 +0000");
    util_rfc5322_date(0, out, sizeof out);
    /* RFC 5322 allows a one- or two-digit day. */
    if (strcmp(out, "Thu, 1 Jan 1970 00:00:00 +0000") != 0 &&
        strcmp(out, "Thu, 01 Jan 1970 00:00:00 +0000") != 0)
        fail_msg("util_rfc5322_date(0) = \"%s\"", out);
}

static void test_strlcpy(void **state)
{
    (void)state;
    char buf[6];
    memset(buf, 'X', sizeof buf);
    assert_int_equal(util_strlcpy(buf, "hello world", sizeof buf), 11);
    assert_string_equal(buf, "hello");
    assert_int_equal(util_strlcpy(buf, "hi", sizeof buf), 2);
    assert_string_equal(buf, "hi");
    assert_int_equal(util_strlcpy(buf, "", sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(util_strlcpy(buf, "abcde", sizeof buf), 5);
    assert_string_equal(buf, "abcde");
}

static void test_strcaseprefix(void **state)
{
    (void)state;
    assert_true(util_strcaseprefix("MAIL FROM:<a@b>", "mail from:"));
    assert_true(util_strcaseprefix("starttls", "STARTTLS"));
    assert_true(util_strcaseprefix("abc", ""));
    assert_false(util_strcaseprefix("MAI", "MAIL"));
    assert_false(util_strcaseprefix("RCPT TO:", "MAIL"));
}

static void test_dns_name_valid(void **state)
{
    (void)state;
    char long_ok[254], too_long[255], label64[70];
    memset(long_ok, 'a', sizeof long_ok - 1);
    long_ok[sizeof long_ok - 1] = '\0';
    for (size_t i = 63; i < sizeof long_ok - 1; i += 64)
        long_ok[i] = '.';              /* labels of 63: 253 characters */
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    for (size_t i = 63; i < sizeof too_long - 1; i += 64)
        too_long[i] = '.';
    memset(label64, 'b', 64);
    memcpy(label64 + 64, ".test", 6);

    assert_true(util_dns_name_valid("mail.example.test"));
    assert_true(util_dns_name_valid("localhost"));
    assert_true(util_dns_name_valid("host-1.EXAMPLE.org"));
    assert_true(util_dns_name_valid("1.2.3.4.dyn.example.net"));
    assert_true(util_dns_name_valid("3com.com"));
    assert_true(util_dns_name_valid(long_ok));
    assert_int_equal(strlen(long_ok), 253);

    assert_false(util_dns_name_valid(""));
    assert_false(util_dns_name_valid(too_long));
    assert_false(util_dns_name_valid(label64));
    assert_false(util_dns_name_valid("mail.example.test."));
    assert_false(util_dns_name_valid(".example.test"));
    assert_false(util_dns_name_valid("a..b"));
    assert_false(util_dns_name_valid("-a.test"));
    assert_false(util_dns_name_valid("a-.test"));
    assert_false(util_dns_name_valid("bad name.test"));
    assert_false(util_dns_name_valid("bad\tname.test"));
    assert_false(util_dns_name_valid("evil.test\r\nX-Injected: yes"));
    assert_false(util_dns_name_valid("under_score.test"));
    assert_false(util_dns_name_valid("caf\xc3\xa9.test"));
    assert_false(util_dns_name_valid("a(b).test"));
    assert_false(util_dns_name_valid("127.0.0.1"));
    assert_false(util_dns_name_valid("12345"));
}

static void test_new_id(void **state)
{
    (void)state;
    char a[UTIL_ID_LEN], b[UTIL_ID_LEN];
    util_new_id(a);
    util_new_id(b);
    assert_int_equal(strlen(a), 16);
    for (int i = 0; i < 16; i++)
        assert_true(isdigit((unsigned char)a[i]) || (a[i] >= 'A' && a[i] <= 'F'));
    assert_string_not_equal(a, b);
}

static void test_random(void **state)
{
    (void)state;
    unsigned char x[32], y[32];
    memset(x, 0, sizeof x);
    memset(y, 0, sizeof y);
    util_random(x, sizeof x);
    util_random(y, sizeof y);
    assert_memory_not_equal(x, y, sizeof x);
}

static void test_clocks(void **state)
{
    (void)state;
    int64_t wall = util_now_ms();
    int64_t sys = (int64_t)time(NULL) * 1000;
    assert_true(wall > sys - 5000 && wall < sys + 5000);
    int64_t m1 = util_mono_ms();
    int64_t m2 = util_mono_ms();
    assert_true(m2 >= m1);
}

/* Regression (fuzz/regressions/control-*-cut-mid-utf8): a copy that must
 * be cut never splits a UTF-8 character, so the JSON built from it stays
 * valid. */
static void test_utf8_char(void **state)
{
    (void)state;
    assert_int_equal(util_utf8_char("\xc3\xa9x"), 2);          /* é */
    assert_int_equal(util_utf8_char("\xe2\x82\xac"), 3);      /* € */
    assert_int_equal(util_utf8_char("\xf0\x9f\x93\xa7"), 4); /* U+1F4E7 */
    assert_int_equal(util_utf8_char("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
    assert_int_equal(util_utf8_char("a"), 0);                   /* one byte */
    assert_int_equal(util_utf8_char("\xff\xfe"), 0);
    assert_int_equal(util_utf8_char("\xa9"), 0);                /* continuation first */
    assert_int_equal(util_utf8_char("\xc0\xaf"), 0);           /* overlong '/' */
    assert_int_equal(util_utf8_char("\xe0\x80\xaf"), 0);      /* overlong */
    assert_int_equal(util_utf8_char("\xed\xa0\x80"), 0);      /* surrogate D800 */
    assert_int_equal(util_utf8_char("\xf4\x90\x80\x80"), 0); /* above U+10FFFF */
    assert_int_equal(util_utf8_char("\xe2\x82"), 0);           /* cut by the NUL */
    assert_int_equal(util_utf8_char("\xc3"), 0);
}

static void test_strlcpy_keeps_utf8_whole(void **state)
{
    (void)state;
    char dst[6];
    /* "abcd" + U+00E9 (2 bytes): 6 bytes do not fit in 5. */
    assert_int_equal(util_strlcpy(dst, "abcd\xc3\xa9", sizeof dst), 6);
    assert_string_equal(dst, "abcd");
    /* U+20AC (3 bytes) twice: only the first fits. */
    assert_int_equal(util_strlcpy(dst, "\xe2\x82\xac\xe2\x82\xac", sizeof dst), 6);
    assert_string_equal(dst, "\xe2\x82\xac");
    assert_int_equal(util_utf8_cut("\xe2\x82\xac", 2), 0);
    assert_int_equal(util_utf8_cut("abc", 10), 3);
    assert_int_equal(util_utf8_cut("ab\xc3\xa9", 3), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strlcpy_keeps_utf8_whole),
        cmocka_unit_test(test_utf8_char),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_bare_number_is_seconds),
        cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_size_units),
        cmocka_unit_test(test_size_bad),
        cmocka_unit_test(test_bool),
        cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc5322_date),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_strcaseprefix),
        cmocka_unit_test(test_dns_name_valid),
        cmocka_unit_test(test_new_id),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
