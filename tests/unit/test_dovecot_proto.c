/* Unit tests for src/proto/dovecot_proto.h: Dovecot's auth-client lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/dovecot_proto.h"

static char buf[DOVECOT_LINE_MAX + 8];

static bool parse(const char *s, struct dovecot_line *out)
{
    size_t n = strlen(s);
    memcpy(buf, s, n + 1);
    return dovecot_parse_line(buf, n, out);
}

static void test_handshake_lines(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_true(parse("VERSION\t1\t2", &l));
    assert_int_equal(l.kind, DOVECOT_VERSION);
    assert_int_equal(l.major, 1);
    assert_int_equal(l.minor, 2);
    assert_true(parse("MECH\tPLAIN\tplaintext", &l));
    assert_int_equal(l.kind, DOVECOT_MECH);
    assert_string_equal(l.mech, "PLAIN");
    assert_true(parse("MECH\tLOGIN\tplaintext", &l));
    assert_string_equal(l.mech, "LOGIN");
    assert_true(parse("SPID\t1234", &l));
    assert_int_equal(l.kind, DOVECOT_SPID);
    assert_true(parse("CUID\t7", &l));
    assert_int_equal(l.kind, DOVECOT_CUID);
    assert_true(parse("COOKIE\t0123456789abcdef", &l));
    assert_int_equal(l.kind, DOVECOT_COOKIE);
    assert_true(parse("DONE", &l));
    assert_int_equal(l.kind, DOVECOT_DONE);
    /* Lines we do not know are allowed and ignored. */
    assert_true(parse("FUTURE\tthing", &l));
    assert_int_equal(l.kind, DOVECOT_UNKNOWN);
}

static void test_handshake_bad(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_false(parse("VERSION\t1", &l));
    assert_false(parse("VERSION\tx\t2", &l));
    assert_false(parse("VERSION\t-1\t2", &l));
    assert_false(parse("VERSION\t99999999999\t2", &l));
    assert_false(parse("MECH", &l));
    assert_false(parse("MECH\t", &l));
    assert_false(parse("MECH\tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &l));
    assert_false(parse("SPID", &l));
    assert_false(parse("COOKIE\t", &l));
}

static void test_ok_fail_cont(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_true(parse("OK\t17\tuser=alice@example.test", &l));
    assert_int_equal(l.kind, DOVECOT_OK);
    assert_int_equal(l.id, 17);
    assert_string_equal(l.user, "alice@example.test");
    assert_false(l.nologin);
    assert_false(l.proxy);
    assert_true(parse("OK\t3\tuser=a\tnologin\tproxy\thost=10.0.0.1", &l));
    assert_true(l.nologin);
    assert_true(l.proxy);
    assert_true(parse("FAIL\t4\tuser=bob", &l));
    assert_int_equal(l.kind, DOVECOT_FAIL);
    assert_int_equal(l.id, 4);
    assert_false(l.temp);
    assert_true(parse("FAIL\t5\ttemp\treason=Internal error", &l));
    assert_true(l.temp);
    assert_string_equal(l.reason, "Internal error");
    assert_true(parse("FAIL\t6\tcode=temp_fail", &l));
    assert_true(l.temp);
    assert_true(parse("FAIL\t6\tcode=authz_fail", &l));
    assert_false(l.temp);
    assert_true(parse("CONT\t9\tVXNlcm5hbWU6", &l));
    assert_int_equal(l.kind, DOVECOT_CONT);
    assert_int_equal(l.id, 9);
    assert_string_equal(l.cont, "VXNlcm5hbWU6");
    assert_true(parse("CONT\t9", &l));
    assert_string_equal(l.cont, "");
    assert_false(parse("OK", &l));
    assert_false(parse("OK\t", &l));
    assert_false(parse("FAIL\tx", &l));
    assert_false(parse("CONT\t1a\tx", &l));
}

static void test_unescape(void **state)
{
    (void)state;
    struct dovecot_line l;
    assert_true(parse("FAIL\t1\treason=a\001tb\001nc\001rd\0011e", &l));
    assert_string_equal(l.reason, "a\tb\nc\rd\001e");
    assert_false(parse("FAIL\t1\treason=a\001x", &l));
    assert_false(parse("FAIL\t1\treason=a\001", &l));
    /* An embedded NUL is no protocol line. */
    memcpy(buf, "OK\t1\0x", 6);
    assert_false(dovecot_parse_line(buf, 6, &l));
}

static void test_bounds(void **state)
{
    (void)state;
    struct dovecot_line l;
    static char big[DOVECOT_LINE_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "OK\t1\tuser=", 10);
    assert_true(dovecot_parse_line(big, DOVECOT_LINE_MAX, &l));
    assert_int_equal(strlen(l.user), DOVECOT_USER_MAX - 1);
    memset(big, 'a', sizeof big);
    assert_false(dovecot_parse_line(big, DOVECOT_LINE_MAX + 1, &l));
    /* Many fields: the flags past the field cap are not seen, nothing breaks. */
    char many[4096] = "OK\t2";
    for (int i = 0; i < 200; i++)
        strcat(many, "\tx=y");
    strcat(many, "\tnologin");
    assert_true(parse(many, &l));
    assert_int_equal(l.id, 2);
}

static void test_auth_request(void **state)
{
    (void)state;
    char out[512];
    long n = dovecot_auth_request(out, sizeof out, 7, "PLAIN", "127.0.0.1", "203.0.113.5",
                                  true, "AGFsaWNlAHNlY3JldA==");
    assert_true(n > 0);
    assert_string_equal(out, "AUTH\t7\tPLAIN\tservice=smtp\tlip=127.0.0.1\trip=203.0.113.5"
                             "\tsecured\tno-penalty\tresp=AGFsaWNlAHNlY3JldA==\n");
    assert_int_equal(n, (long)strlen(out));
    n = dovecot_auth_request(out, sizeof out, 8, "LOGIN", "::1", "::1", false, NULL);
    assert_string_equal(out, "AUTH\t8\tLOGIN\tservice=smtp\tlip=::1\trip=::1\tno-penalty\n");
    n = dovecot_auth_request(out, sizeof out, 9, "PLAIN", "a", "b", false, "");
    assert_string_equal(out, "AUTH\t9\tPLAIN\tservice=smtp\tlip=a\trip=b\tno-penalty\tresp==\n");
    /* Refused: a TAB or LF in a field, no room. */
    assert_int_equal(dovecot_auth_request(out, sizeof out, 1, "PLAIN", "a\tb", "c", false, NULL), -1);
    assert_int_equal(dovecot_auth_request(out, sizeof out, 1, "PLAIN", "a", "c\n", false, NULL), -1);
    assert_int_equal(dovecot_auth_request(out, sizeof out, 1, "PLAIN", "a", "c", false, "x\001"), -1);
    assert_int_equal(dovecot_auth_request(out, 20, 1, "PLAIN", "a", "c", false, NULL), -1);
    assert_true(dovecot_value_ok("alice@example.test"));
    assert_false(dovecot_value_ok("ali\tce"));
    assert_false(dovecot_value_ok("ali\nce"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_lines),
        cmocka_unit_test(test_handshake_bad),
        cmocka_unit_test(test_ok_fail_cont),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_auth_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
