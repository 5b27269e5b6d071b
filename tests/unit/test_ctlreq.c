/* Unit tests for src/ctlreq.h: the control socket's request checks, their
 * error texts (the daemon's replies, byte for byte) and the reply line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admin/ctlreq.h"

static char err[CTLREQ_ERR_MAX];

/* Parses a request that must pass; the error buffer must stay untouched. */
static struct ctlreq ok(const char *line)
{
    struct ctlreq r;
    memset(&r, 0xAA, sizeof r);
    strcpy(err, "untouched");
    if (!ctlreq_parse(line, strlen(line), &r, err))
        fail_msg("ctlreq_parse(%s) failed: %s", line, err);
    assert_string_equal(err, "untouched");
    return r;
}

/* Parses a request that must fail with exactly `want`. */
static void bad(const char *line, size_t len, const char *want)
{
    struct ctlreq r;
    memset(err, 0, sizeof err);
    if (ctlreq_parse(line, len, &r, err))
        fail_msg("ctlreq_parse(%.*s) passed", (int)len, line);
    assert_string_equal(err, want);
}

static void bad_s(const char *line, const char *want)
{
    bad(line, strlen(line), want);
}

static void prefix_eq(const struct ctlreq *r, int v4, int v6, const char *want)
{
    struct addr p = ctlreq_prefix(r, v4, v6);
    char out[ADDR_STRLEN];
    addr_format(&p, true, out);
    assert_string_equal(out, want);
}

static char *repeat(char c, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    char *s = malloc(n + t + 1);
    assert_non_null(s);
    memset(s, c, n);
    memcpy(s + n, tail, t + 1);
    return s;
}

/* ---- every command's valid form ---------------------------------------- */

static void test_status(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"status\",\"ip\":\"203.0.113.7\"}");
    assert_int_equal(r.cmd, CTLREQ_STATUS);
    assert_string_equal(r.ip, "203.0.113.7");
    assert_int_equal(r.addr.family, AF_INET);
    assert_int_equal(r.addr.bits, 32);
    prefix_eq(&r, 32, 64, "203.0.113.7/32");
    prefix_eq(&r, 24, 64, "203.0.113.0/24");
    assert_string_equal(r.by, "portcullisctl");
    assert_string_equal(r.reason, "");
    assert_int_equal(r.filter, CTLREQ_ALL);
    assert_int_equal(r.duration_ms, 0);

    r = ok("{\"cmd\":\"status\",\"ip\":\"2001:db8::1\"}");
    assert_string_equal(r.ip, "2001:db8::1");
    assert_int_equal(r.addr.family, AF_INET6);
    prefix_eq(&r, 32, 64, "2001:db8::/64");
    prefix_eq(&r, 32, 48, "2001:db8::/48");

    /* IPv4-mapped IPv6 counts as IPv4 (addr.c). */
    r = ok("{\"cmd\":\"status\",\"ip\":\"::ffff:198.51.100.9\"}");
    prefix_eq(&r, 32, 64, "198.51.100.9/32");
}

static void test_history_prefix_taken_as_it_is(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"history\",\"ip\":\"203.0.113.0/24\"}");
    assert_int_equal(r.cmd, CTLREQ_HISTORY);
    assert_string_equal(r.ip, "203.0.113.0/24");
    /* A CIDR is not cut to the counting prefix, wider or narrower. */
    prefix_eq(&r, 32, 64, "203.0.113.0/24");
    prefix_eq(&r, 16, 64, "203.0.113.0/24");
    /* Host bits of a given prefix are cleared; the text stays as given. */
    r = ok("{\"cmd\":\"history\",\"ip\":\"203.0.113.7/24\"}");
    assert_string_equal(r.ip, "203.0.113.7/24");
    prefix_eq(&r, 32, 64, "203.0.113.0/24");
    r = ok("{\"cmd\":\"history\",\"ip\":\"2001:db8::/32\"}");
    prefix_eq(&r, 32, 64, "2001:db8::/32");
}

static void test_list_filters(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"list\"}");
    assert_int_equal(r.cmd, CTLREQ_LIST);
    assert_int_equal(r.filter, CTLREQ_ALL);
    assert_int_equal(ok("{\"cmd\":\"list\",\"filter\":\"all\"}").filter, CTLREQ_ALL);
    assert_int_equal(ok("{\"cmd\":\"list\",\"filter\":\"permanent\"}").filter, CTLREQ_PERMANENT);
    assert_int_equal(ok("{\"cmd\":\"list\",\"filter\":\"temporary\"}").filter, CTLREQ_TEMPORARY);
    /* A filter that is not a string counts as absent, as it always has. */
    assert_int_equal(ok("{\"cmd\":\"list\",\"filter\":1}").filter, CTLREQ_ALL);
    assert_int_equal(ok("{\"cmd\":\"list\",\"filter\":null}").filter, CTLREQ_ALL);
    /* list takes no ip: one that is there is not looked at. */
    r = ok("{\"cmd\":\"list\",\"ip\":\"garbage\"}");
    assert_string_equal(r.ip, "");
}

static void test_list_bad_filter(void **state)
{
    (void)state;
    const char *want = "filter is all, permanent or temporary";
    bad_s("{\"cmd\":\"list\",\"filter\":\"sideways\"}", want);
    bad_s("{\"cmd\":\"list\",\"filter\":\"\"}", want);
    bad_s("{\"cmd\":\"list\",\"filter\":\"ALL\"}", want);
    bad_s("{\"cmd\":\"list\",\"filter\":\"permanent \"}", want);
    /* Only list checks a filter. */
    ok("{\"cmd\":\"stats\",\"filter\":\"sideways\"}");
}

static void test_block(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"block\",\"ip\":\"198.51.100.0/24\",\"duration_ms\":7200000,"
                         "\"reason\":\"abuse report\",\"by\":\"me\"}");
    assert_int_equal(r.cmd, CTLREQ_BLOCK);
    assert_string_equal(r.ip, "198.51.100.0/24");
    prefix_eq(&r, 32, 64, "198.51.100.0/24");
    assert_int_equal(r.duration_ms, 7200000);
    assert_string_equal(r.reason, "abuse report");
    assert_string_equal(r.by, "me");

    r = ok("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":-1}");
    assert_int_equal(r.duration_ms, -1);
    prefix_eq(&r, 32, 64, "192.0.2.9/32");
    assert_string_equal(r.by, "portcullisctl");
    assert_string_equal(r.reason, "");

    r = ok("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":1}");
    assert_int_equal(r.duration_ms, 1);
    r = ok("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":3155760000000}");
    assert_int_equal(r.duration_ms, CTLREQ_DURATION_MAX);     /* 100 years */
}

static void test_block_bad_duration(void **state)
{
    (void)state;
    const char *want = "duration_ms is a positive number up to 100 years, or -1 for permanent";
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":3155760000001}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":9223372036854775807}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\"}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":0}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":-2}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":\"3600000\"}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":\"1h\"}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":1.5}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":true}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":null}", want);
    bad_s("{\"cmd\":\"block\",\"ip\":\"192.0.2.9\",\"duration_ms\":[60000]}", want);
    /* The address is checked first: its error wins. */
    bad_s("{\"cmd\":\"block\",\"ip\":\"nope\",\"duration_ms\":0}", "not an address or prefix: nope");
    /* Only block checks a duration. */
    ok("{\"cmd\":\"unblock\",\"ip\":\"192.0.2.9\",\"duration_ms\":\"x\"}");
}

static void test_unblock(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"unblock\",\"ip\":\"203.0.113.7\",\"reason\":\"ticket 4711\","
                         "\"by\":\"me\"}");
    assert_int_equal(r.cmd, CTLREQ_UNBLOCK);
    prefix_eq(&r, 32, 64, "203.0.113.7/32");
    assert_string_equal(r.reason, "ticket 4711");
    assert_string_equal(r.by, "me");
    assert_int_equal(r.duration_ms, 0);
    /* by and reason that are not strings take the defaults. */
    r = ok("{\"cmd\":\"unblock\",\"ip\":\"203.0.113.7\",\"reason\":5,\"by\":false}");
    assert_string_equal(r.reason, "");
    assert_string_equal(r.by, "portcullisctl");
}

static void test_account_and_unlock(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"account\",\"name\":\"Alice@Example.org\"}");
    assert_int_equal(r.cmd, CTLREQ_ACCOUNT);
    assert_string_equal(r.name, "Alice@Example.org");     /* as given; normalised where used */
    r = ok("{\"cmd\":\"unlock\",\"name\":\"j\u00fcrgen@x\",\"reason\":\"ticket 5\",\"by\":\"me\"}");
    assert_int_equal(r.cmd, CTLREQ_UNLOCK);
    assert_string_equal(r.name, "j\xc3\xbcrgen@x");
    assert_string_equal(r.reason, "ticket 5");
    assert_string_equal(r.by, "me");
    bad_s("{\"cmd\":\"account\"}", "name is an account name");
    bad_s("{\"cmd\":\"unlock\",\"name\":\"\"}", "name is an account name");
    bad_s("{\"cmd\":\"unlock\",\"name\":5}", "name is an account name");
    bad_s("{\"cmd\":\"account\",\"name\":\"a\\tb\"}", "name holds a control character");
    char *longname = repeat('a', ACCOUNT_NAME_MAX, "");
    char line[ACCOUNT_NAME_MAX + 64];
    snprintf(line, sizeof line, "{\"cmd\":\"account\",\"name\":\"%s\"}", longname);
    bad_s(line, "name is longer than 255 bytes");
    longname[ACCOUNT_NAME_MAX - 1] = '\0';
    snprintf(line, sizeof line, "{\"cmd\":\"account\",\"name\":\"%s\"}", longname);
    r = ok(line);
    assert_int_equal(strlen(r.name), ACCOUNT_NAME_MAX - 1);
    free(longname);
    /* The check portcullisctl makes before it asks. */
    char e[CTLREQ_ERR_MAX];
    assert_true(ctlreq_name("bob@example.org", e, sizeof e));
    assert_false(ctlreq_name("bad\xff", e, sizeof e));
    assert_string_equal(e, "name is not UTF-8");
    assert_false(ctlreq_name(NULL, e, sizeof e));
}

static void test_stats_reload_and_extra_keys(void **state)
{
    (void)state;
    struct ctlreq r = ok("{\"cmd\":\"stats\"}");
    assert_int_equal(r.cmd, CTLREQ_STATS);
    assert_string_equal(r.ip, "");
    assert_int_equal(ok("{\"cmd\":\"reload\"}").cmd, CTLREQ_RELOAD);
    /* Keys a command does not use are ignored, whatever they hold. */
    r = ok("{\"cmd\":\"stats\",\"ip\":\"nope\",\"duration_ms\":0,\"x\":[1,{}]}");
    assert_int_equal(r.cmd, CTLREQ_STATS);
    r = ok("{\"extra\":true,\"cmd\":\"status\",\"ip\":\"192.0.2.1\"}");
    assert_int_equal(r.cmd, CTLREQ_STATUS);
    /* White space around the object is JSON. */
    assert_int_equal(ok("  { \"cmd\" : \"reload\" }\r").cmd, CTLREQ_RELOAD);
}

/* ---- refused requests ---------------------------------------------------- */

static void test_not_an_object(void **state)
{
    (void)state;
    const char *want = "the request is not a JSON object";
    bad_s("", want);
    bad_s("   ", want);
    bad_s("[]", want);
    bad_s("[{\"cmd\":\"stats\"}]", want);
    bad_s("\"status\"", want);
    bad_s("42", want);
    bad_s("null", want);
    bad_s("{", want);
    bad_s("{\"cmd\":\"stats\"", want);
    bad_s("{\"cmd\":\"stats\"} {}", want);
    bad_s("{cmd:\"stats\"}", want);
    bad_s("{\"cmd\":\"stats\"}x", want);
    /* A key twice is refused: which one would count? */
    bad_s("{\"cmd\":\"stats\",\"cmd\":\"reload\"}", want);
    bad_s("{\"cmd\":\"status\",\"ip\":\"192.0.2.1\",\"ip\":\"192.0.2.2\"}", want);
    /* Only len bytes are read: a NUL or what follows is not skipped. */
    bad("{\"cmd\":\"stats\"}\0", 16, want);
    bad("{\"cmd\":\"stats\"}", 10, want);
    /* A \u0000 escape: no string may hide a NUL from the C side. */
    bad_s("{\"cmd\":\"stats\\u0000x\"}", want);
    bad_s("{\"cmd\":\"status\",\"ip\":\"x\\u00001.2.3.4\"}", want);
    /* Not UTF-8. */
    bad_s("{\"cmd\":\"stats\",\"reason\":\"\xff\"}", want);
}

static void test_unknown_command(void **state)
{
    (void)state;
    const char *want = "unknown command";
    bad_s("{}", want);
    bad_s("{\"ip\":\"192.0.2.1\"}", want);
    bad_s("{\"cmd\":\"frobnicate\"}", want);
    bad_s("{\"cmd\":\"STATUS\",\"ip\":\"192.0.2.1\"}", want);
    bad_s("{\"cmd\":\"status \",\"ip\":\"192.0.2.1\"}", want);
    bad_s("{\"cmd\":\"\"}", want);
    bad_s("{\"cmd\":\"passwd\"}", want);    /* portcullisctl's own, not the daemon's */
    bad_s("{\"cmd\":1}", want);
    bad_s("{\"cmd\":null}", want);
    bad_s("{\"cmd\":[\"stats\"]}", want);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    bad_s("{\"cmd\":\"status\"}", "not an address or prefix: (none)");
    bad_s("{\"cmd\":\"history\",\"ip\":null}", "not an address or prefix: (none)");
    bad_s("{\"cmd\":\"block\",\"ip\":3232235521,\"duration_ms\":-1}",
          "not an address or prefix: (none)");
    bad_s("{\"cmd\":\"unblock\",\"ip\":[\"192.0.2.1\"]}", "not an address or prefix: (none)");
    bad_s("{\"cmd\":\"status\",\"ip\":\"\"}", "not an address or prefix: ");
    bad_s("{\"cmd\":\"status\",\"ip\":\"nope\"}", "not an address or prefix: nope");
    bad_s("{\"cmd\":\"status\",\"ip\":\"300.1.1.1\"}", "not an address or prefix: 300.1.1.1");
    bad_s("{\"cmd\":\"status\",\"ip\":\"203.0.113\"}", "not an address or prefix: 203.0.113");
    bad_s("{\"cmd\":\"status\",\"ip\":\" 203.0.113.7\"}", "not an address or prefix:  203.0.113.7");
    bad_s("{\"cmd\":\"status\",\"ip\":\"203.0.113.0/33\"}",
          "not an address or prefix: 203.0.113.0/33");
    bad_s("{\"cmd\":\"status\",\"ip\":\"203.0.113.0/\"}", "not an address or prefix: 203.0.113.0/");
    bad_s("{\"cmd\":\"status\",\"ip\":\"203.0.113.0/-1\"}",
          "not an address or prefix: 203.0.113.0/-1");
    bad_s("{\"cmd\":\"history\",\"ip\":\"2001:db8::/129\"}",
          "not an address or prefix: 2001:db8::/129");
    bad_s("{\"cmd\":\"history\",\"ip\":\"2001:db8:::1\"}", "not an address or prefix: 2001:db8:::1");
}

/* ---- bounds -------------------------------------------------------------- */

/* An ip of n 'a' and then tail is refused, quoting its first `kept` bytes. */
static void long_ip(size_t n, const char *tail, size_t kept)
{
    char line[1024], want[512];
    char *ip = repeat('a', n, tail);
    snprintf(line, sizeof line, "{\"cmd\":\"status\",\"ip\":\"%s\"}", ip);
    snprintf(want, sizeof want, "not an address or prefix: %.*s", (int)kept, ip);
    bad_s(line, want);
    assert_int_equal(strlen(err), 26 + kept);
    free(ip);
}

static void test_long_address_text_cut_at_200(void **state)
{
    (void)state;
    long_ip(300, "", 200);
    /* Never inside a character: 199 a and a 2-byte é is cut before the é. */
    long_ip(199, "\xc3\xa9zz", 199);
    /* 198 a and é fit in 200 exactly. */
    long_ip(198, "\xc3\xa9zz", 200);
    long_ip(200, "", 200);
    long_ip(199, "", 199);
}

/* A block whose reason is n 'n' and an é keeps its first `kept` bytes. */
static void block_reason(size_t n, size_t kept)
{
    char line[1024];
    char *why = repeat('n', n, "\xc3\xa9");
    snprintf(line, sizeof line, "{\"cmd\":\"block\",\"ip\":\"192.0.2.1\",\"duration_ms\":60000,"
             "\"reason\":\"%s\"}", why);
    struct ctlreq r = ok(line);
    assert_int_equal(strlen(r.reason), kept);
    assert_memory_equal(r.reason, why, kept);
    free(why);
}

static void test_by_and_reason_cut_to_the_record(void **state)
{
    (void)state;
    char line[2048];
    char *by = repeat('b', 100, ""), *why = repeat('r', 300, "");
    snprintf(line, sizeof line, "{\"cmd\":\"unblock\",\"ip\":\"192.0.2.1\",\"by\":\"%s\","
             "\"reason\":\"%s\"}", by, why);
    struct ctlreq r = ok(line);
    assert_int_equal(sizeof r.by, 64);
    assert_int_equal(sizeof r.reason, 256);
    assert_int_equal(strlen(r.by), 63);
    assert_int_equal(strlen(r.reason), 255);
    assert_memory_equal(r.by, by, 63);
    assert_memory_equal(r.reason, why, 255);
    free(by);
    free(why);

    /* 254 n and a 2-byte é: the é would end at byte 256, so it goes. */
    block_reason(254, 254);
    /* 253 n and é: fits in 255. */
    block_reason(253, 255);
}

static void test_longest_request(void **state)
{
    (void)state;
    /* A request of CTLREQ_MAX bytes is still parsed (control.c refuses
     * longer lines before they get here). */
    assert_int_equal(CTLREQ_MAX, 65536);
    const char *head = "{\"cmd\":\"unblock\",\"ip\":\"192.0.2.1\",\"reason\":\"";
    size_t fill = CTLREQ_MAX - strlen(head) - 2;
    char *line = repeat('x', 0, head);
    line = realloc(line, CTLREQ_MAX + 1);
    assert_non_null(line);
    memset(line + strlen(head), 'x', fill);
    memcpy(line + strlen(head) + fill, "\"}", 3);
    assert_int_equal(strlen(line), CTLREQ_MAX);
    struct ctlreq r = ok(line);
    assert_int_equal(strlen(r.reason), 255);
    free(line);
}

/* ---- names and the reply ------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    static const char *const names[] = {"status", "history", "list", "block", "unblock",
                                        "stats", "reload", "account", "unlock"};
    enum ctlreq_cmd c;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        c = CTLREQ_NCMD;
        assert_true(ctlreq_command(names[i], &c));
        assert_int_equal(c, i);
    }
    assert_false(ctlreq_command(NULL, &c));
    assert_false(ctlreq_command("passwd", &c));
    assert_true(ctlreq_takes_ip(CTLREQ_STATUS));
    assert_true(ctlreq_takes_ip(CTLREQ_HISTORY));
    assert_true(ctlreq_takes_ip(CTLREQ_BLOCK));
    assert_true(ctlreq_takes_ip(CTLREQ_UNBLOCK));
    assert_false(ctlreq_takes_ip(CTLREQ_LIST));
    assert_false(ctlreq_takes_ip(CTLREQ_STATS));
    assert_false(ctlreq_takes_ip(CTLREQ_RELOAD));
    assert_false(ctlreq_takes_ip(CTLREQ_ACCOUNT));
    assert_true(ctlreq_takes_name(CTLREQ_ACCOUNT));
    assert_true(ctlreq_takes_name(CTLREQ_UNLOCK));
    assert_false(ctlreq_takes_name(CTLREQ_STATUS));
    assert_string_equal(ctlreq_filter_name(CTLREQ_ALL), "all");
    assert_string_equal(ctlreq_filter_name(CTLREQ_PERMANENT), "permanent");
    assert_string_equal(ctlreq_filter_name(CTLREQ_TEMPORARY), "temporary");
}

static void test_ip_check(void **state)
{
    (void)state;
    struct addr a;
    char e[CTLREQ_ERR_MAX] = "untouched";
    assert_true(ctlreq_ip("192.0.2.0/24", &a, e, sizeof e));
    assert_int_equal(a.bits, 24);
    assert_string_equal(e, "untouched");
    assert_false(ctlreq_ip("not-an-ip", &a, e, sizeof e));
    assert_string_equal(e, "not an address or prefix: not-an-ip");
    assert_false(ctlreq_ip(NULL, &a, e, sizeof e));
    assert_string_equal(e, "not an address or prefix: (none)");
    /* A short buffer is cut, never overrun. */
    char small[10];
    assert_false(ctlreq_ip("nope", &a, small, sizeof small));
    assert_string_equal(small, "not an ad");
}

static void reply_eq(json_t *result, const char *e, const char *want)
{
    char *out = ctlreq_reply(result, e);
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void test_reply(void **state)
{
    (void)state;
    reply_eq(NULL, "unknown command", "{\"ok\":false,\"error\":\"unknown command\"}");
    reply_eq(NULL, NULL, "{\"ok\":false,\"error\":\"failed\"}");
    reply_eq(NULL, "say \"no\"", "{\"ok\":false,\"error\":\"say \\\"no\\\"\"}");
    /* Text that is not UTF-8 cannot be a JSON string: the reply still fails. */
    reply_eq(NULL, "bad byte \xff", "{\"ok\":false,\"error\":\"failed\"}");
    reply_eq(json_object(), NULL, "{\"ok\":true,\"result\":{}}");
    reply_eq(json_pack("{s:s,s:i}", "prefix", "192.0.2.0/24", "n", 2), "ignored",
             "{\"ok\":true,\"result\":{\"prefix\":\"192.0.2.0/24\",\"n\":2}}");
    /* The fixed reply to an over-long line is the same shape. */
    char *out = ctlreq_reply(NULL, "request too long");
    assert_non_null(out);
    assert_int_equal(strlen(CTLREQ_TOO_LONG), strlen(out) + 1);
    assert_memory_equal(CTLREQ_TOO_LONG, out, strlen(out));
    assert_string_equal(CTLREQ_TOO_LONG + strlen(out), "\n");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_history_prefix_taken_as_it_is),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_list_bad_filter),
        cmocka_unit_test(test_block),
        cmocka_unit_test(test_block_bad_duration),
        cmocka_unit_test(test_unblock),
        cmocka_unit_test(test_account_and_unlock),
        cmocka_unit_test(test_stats_reload_and_extra_keys),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_long_address_text_cut_at_200),
        cmocka_unit_test(test_by_and_reason_cut_to_the_record),
        cmocka_unit_test(test_longest_request),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ip_check),
        cmocka_unit_test(test_reply),
    };
    return cmocka_run_group_tests_name("ctlreq", tests, NULL, NULL);
}
