/* Unit tests for src/proto/relay_reply.h: the next hop's replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/relay_reply.h"

/* Feeds the lines of `lines` (NULL-ended) and returns the last verdict. */
static enum relay_feed feed_all(struct relay_reply *r, const char *const *lines)
{
    relay_reply_init(r);
    enum relay_feed v = RELAY_BAD;
    for (int i = 0; lines[i] != NULL; i++) {
        v = relay_reply_feed(r, lines[i], strlen(lines[i]));
        if (v != RELAY_MORE)
            return lines[i + 1] == NULL ? v : RELAY_BAD;
    }
    return v;
}

static void test_single_line(void **state)
{
    (void)state;
    struct relay_reply r;
    const char *l[] = {"250 2.0.0 Ok: queued as 4Qx1", NULL};
    assert_int_equal(feed_all(&r, l), RELAY_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enh, "2.0.0");
    assert_string_equal(r.text, "Ok: queued as 4Qx1");
    assert_int_equal(r.lines, 1);
}

static void test_no_enhanced_code(void **state)
{
    (void)state;
    struct relay_reply r;
    const char *l[] = {"220 mx.example.test ESMTP Postfix", NULL};
    assert_int_equal(feed_all(&r, l), RELAY_DONE);
    assert_int_equal(r.code, 220);
    assert_string_equal(r.enh, "");
    assert_string_equal(r.text, "mx.example.test ESMTP Postfix");
    /* A bare code is a whole reply. */
    const char *b[] = {"354", NULL};
    assert_int_equal(feed_all(&r, b), RELAY_DONE);
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text, "");
}

static void test_enhanced_code_class_must_match(void **state)
{
    (void)state;
    struct relay_reply r;
    const char *l[] = {"550 4.1.1 odd", NULL};
    assert_int_equal(feed_all(&r, l), RELAY_DONE);
    assert_string_equal(r.enh, "");
    assert_string_equal(r.text, "4.1.1 odd");
    const char *m[] = {"550 5.1.1 <x@y>: Recipient address rejected", NULL};
    assert_int_equal(feed_all(&r, m), RELAY_DONE);
    assert_string_equal(r.enh, "5.1.1");
    assert_true(relay_enh_valid("5.7.1", 5));
    assert_true(relay_enh_valid("4.123.456", 9));
    assert_false(relay_enh_valid("5.1234.1", 8));
    assert_false(relay_enh_valid("3.1.1", 5));
    assert_false(relay_enh_valid("5.1.", 4));
    assert_false(relay_enh_valid("5..1", 4));
}

static void test_ehlo_keywords(void **state)
{
    (void)state;
    struct relay_reply r;
    const char *l[] = {
        "250-mx.example.test", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY",
        "250-ETRN", "250-STARTTLS", "250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT",
        "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250 SMTPUTF8", NULL};
    assert_int_equal(feed_all(&r, l), RELAY_DONE);
    assert_int_equal(r.code, 250);
    assert_int_equal(r.lines, 11);
    assert_int_equal(r.ext, RELAY_EXT_PIPELINING | RELAY_EXT_SIZE | RELAY_EXT_STARTTLS |
                                RELAY_EXT_XFORWARD | RELAY_EXT_ENHANCEDSTATUSCODES |
                                RELAY_EXT_8BITMIME | RELAY_EXT_SMTPUTF8);
    assert_int_equal(r.size, 10240000);
    assert_int_equal(r.xforward, XF_NAME | XF_ADDR | XF_PROTO | XF_HELO | XF_SOURCE |
                                     XF_PORT | XF_IDENT);
    /* The first line is the host's name, never a keyword; partial keywords
     * do not count; keywords are case-insensitive. */
    const char *m[] = {"250-STARTTLS", "250-pipelining", "250-STARTTLSX",
                       "250 xforward addr", NULL};
    assert_int_equal(feed_all(&r, m), RELAY_DONE);
    assert_int_equal(r.ext, RELAY_EXT_PIPELINING | RELAY_EXT_XFORWARD);
    assert_int_equal(r.xforward, XF_ADDR);
}

static void test_size_odd_values(void **state)
{
    (void)state;
    struct relay_reply r;
    const char *a[] = {"250-h", "250 SIZE", NULL};
    assert_int_equal(feed_all(&r, a), RELAY_DONE);
    assert_true(r.ext & RELAY_EXT_SIZE);
    assert_int_equal(r.size, 0);
    const char *b[] = {"250-h", "250 SIZE 99999999999999999999999", NULL};
    assert_int_equal(feed_all(&r, b), RELAY_DONE);
    assert_int_equal(r.size, 0);
    const char *c[] = {"250-h", "250 SIZE 12x", NULL};
    assert_int_equal(feed_all(&r, c), RELAY_DONE);
    assert_int_equal(r.size, 0);
}

static void test_bad_lines(void **state)
{
    (void)state;
    struct relay_reply r;
    static const char *const bad[] = {"", "25", "2500 x", "25a ok", "650 x", "150 x",
                                      "250_x", "abc def"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        relay_reply_init(&r);
        assert_int_equal(relay_reply_feed(&r, bad[i], strlen(bad[i])), RELAY_BAD);
    }
    /* The code changes within one reply. */
    const char *l[] = {"250-a", "251 b", NULL};
    assert_int_equal(feed_all(&r, l), RELAY_BAD);
}

static void test_bounds(void **state)
{
    (void)state;
    struct relay_reply r;
    relay_reply_init(&r);
    for (int i = 0; i < RELAY_REPLY_LINES_MAX; i++)
        assert_int_equal(relay_reply_feed(&r, "250-x", 5), RELAY_MORE);
    assert_int_equal(relay_reply_feed(&r, "250 x", 5), RELAY_BAD);

    static char big[RELAY_REPLY_LINE_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "550 5.0.0 ", 10);
    relay_reply_init(&r);
    assert_int_equal(relay_reply_feed(&r, big, RELAY_REPLY_LINE_MAX + 1), RELAY_BAD);
    relay_reply_init(&r);
    assert_int_equal(relay_reply_feed(&r, big, RELAY_REPLY_LINE_MAX), RELAY_DONE);
    assert_int_equal(strlen(r.text), RELAY_REPLY_TEXT_MAX - 1);
}

static void test_text_is_sanitised(void **state)
{
    (void)state;
    struct relay_reply r;
    relay_reply_init(&r);
    const char line[] = "451 4.3.0 a\x01" "b\xff" "c";
    assert_int_equal(relay_reply_feed(&r, line, sizeof line - 1), RELAY_DONE);
    assert_string_equal(r.text, "a?b?c");
    /* Not NUL-terminated input: only len octets are read. */
    relay_reply_init(&r);
    assert_int_equal(relay_reply_feed(&r, "250 okXXXX", 6), RELAY_DONE);
    assert_string_equal(r.text, "ok");
}

static void test_xtext(void **state)
{
    (void)state;
    char out[64];
    relay_xtext(out, sizeof out, "client.test");
    assert_string_equal(out, "client.test");
    relay_xtext(out, sizeof out, "a+b=c d\x01\xff");
    assert_string_equal(out, "a+2Bb+3Dc+20d+01+FF");
    /* cut at a whole character */
    relay_xtext(out, 5, "ab+cd");
    assert_string_equal(out, "ab");
    relay_xtext(out, 6, "ab+cd");
    assert_string_equal(out, "ab+2B");
}

static void test_xforward_lines(void **state)
{
    (void)state;
    char l1[RELAY_XFORWARD_MAX], l2[RELAY_XFORWARD_MAX];
    struct relay_xforward x = {"203.0.113.5", 50123, "ESMTP", "A1B2", "[UNAVAILABLE]",
                               "client.test"};
    unsigned all = XF_ADDR | XF_PORT | XF_PROTO | XF_IDENT | XF_NAME | XF_HELO;
    assert_int_equal(relay_xforward_lines(all, &x, l1, l2), 1);
    assert_string_equal(l1, "XFORWARD ADDR=203.0.113.5 PORT=50123 PROTO=ESMTP IDENT=A1B2"
                            " NAME=[UNAVAILABLE] HELO=client.test");
    /* only what the next hop lists */
    assert_int_equal(relay_xforward_lines(XF_ADDR | XF_HELO, &x, l1, l2), 1);
    assert_string_equal(l1, "XFORWARD ADDR=203.0.113.5 HELO=client.test");
    assert_int_equal(relay_xforward_lines(XF_SOURCE, &x, l1, l2), 0);
    /* no port, no HELO: not sent */
    x.port = 0;
    x.helo = "";
    assert_int_equal(relay_xforward_lines(XF_PORT | XF_HELO, &x, l1, l2), 0);
    /* a HELO name that makes one line too long goes alone */
    char helo[256];
    memset(helo, 'h', 255);
    helo[255] = '\0';
    char name[256];
    memset(name, 'n', 255);
    name[255] = '\0';
    x.helo = helo;
    x.name = name;
    assert_int_equal(relay_xforward_lines(all, &x, l1, l2), 2);
    assert_true(strlen(l1) < 510 && strlen(l2) < 510);
    assert_non_null(strstr(l1, " NAME=nnn"));
    assert_null(strstr(l1, "HELO="));
    assert_int_equal(strncmp(l2, "XFORWARD HELO=hhh", 17), 0);
    /* values needing xtext, and the bound on them */
    memset(helo, '=', 255);
    assert_int_equal(relay_xforward_lines(XF_HELO, &x, l1, l2), 1);
    assert_true(strlen(l1) < RELAY_XFORWARD_MAX);
    assert_int_equal(strncmp(l1, "XFORWARD HELO=+3D+3D", 20), 0);
}

static void test_queue_id(void **state)
{
    (void)state;
    char id[16];
    relay_queue_id("Ok: queued as 4QxY1ZK", id, sizeof id);
    assert_string_equal(id, "4QxY1ZK");
    relay_queue_id("Ok: queued as 4QxY1ZK (more)", id, sizeof id);
    assert_string_equal(id, "4QxY1ZK");
    relay_queue_id("<bob@example.test> Saved", id, sizeof id);
    assert_string_equal(id, "");
    relay_queue_id("queued as 0123456789ABCDEFGHIJ", id, sizeof id);
    assert_string_equal(id, "0123456789ABCDE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_line),
        cmocka_unit_test(test_no_enhanced_code),
        cmocka_unit_test(test_enhanced_code_class_must_match),
        cmocka_unit_test(test_ehlo_keywords),
        cmocka_unit_test(test_size_odd_values),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_text_is_sanitised),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_xforward_lines),
        cmocka_unit_test(test_queue_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
