/* Unit tests for src/smtp_parse.h: command lines, MAIL/RCPT parameters, HELO. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/smtp_parse.h"

static void cmd_is(const char *line, enum smtp_verb verb, const char *arg)
{
    struct smtp_cmd c;
    memset(&c, 0, sizeof c);
    smtp_parse_command(line, &c);
    if (c.verb != verb)
        fail_msg("\"%s\": verb %d, expected %d", line, (int)c.verb, (int)verb);
    if (arg != NULL) {
        if (c.arg == NULL)
            fail_msg("\"%s\": arg is NULL, expected \"%s\"", line, arg);
        if (strcmp(c.arg, arg) != 0)
            fail_msg("\"%s\": arg \"%s\", expected \"%s\"", line, c.arg, arg);
    }
}

static void test_verbs(void **state)
{
    (void)state;
    cmd_is("HELO client.example", SMTP_HELO, "client.example");
    cmd_is("EHLO client.example", SMTP_EHLO, "client.example");
    cmd_is("MAIL FROM:<a@b.example>", SMTP_MAIL, "FROM:<a@b.example>");
    cmd_is("RCPT TO:<c@d.example>", SMTP_RCPT, "TO:<c@d.example>");
    cmd_is("DATA", SMTP_DATA, "");
    cmd_is("RSET", SMTP_RSET, "");
    cmd_is("NOOP", SMTP_NOOP, "");
    cmd_is("QUIT", SMTP_QUIT, "");
    cmd_is("VRFY postmaster", SMTP_VRFY, "postmaster");
    cmd_is("HELP", SMTP_HELP, "");
    cmd_is("STARTTLS", SMTP_STARTTLS, "");
    cmd_is("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SMTP_AUTH, "PLAIN dGVzdAB0ZXN0AHRlc3Q=");
    cmd_is("AUTH LOGIN", SMTP_AUTH, "LOGIN");
}

static void test_verbs_case_insensitive(void **state)
{
    (void)state;
    cmd_is("ehlo x.example", SMTP_EHLO, "x.example");
    cmd_is("EhLo x.example", SMTP_EHLO, "x.example");
    cmd_is("helo x", SMTP_HELO, "x");
    cmd_is("mail FROM:<a@b>", SMTP_MAIL, "FROM:<a@b>");
    cmd_is("MaIl from:<a@b>", SMTP_MAIL, "from:<a@b>");
    cmd_is("rcpt TO:<a@b>", SMTP_RCPT, "TO:<a@b>");
    cmd_is("data", SMTP_DATA, "");
    cmd_is("quit", SMTP_QUIT, "");
    cmd_is("starttls", SMTP_STARTTLS, "");
    cmd_is("StartTLS", SMTP_STARTTLS, "");
    cmd_is("auth plain", SMTP_AUTH, "plain");
    cmd_is("rset", SMTP_RSET, "");
    cmd_is("noop", SMTP_NOOP, "");
    cmd_is("vrfy x", SMTP_VRFY, "x");
    cmd_is("help", SMTP_HELP, "");
}

static void test_unknown_verbs(void **state)
{
    (void)state;
    cmd_is("", SMTP_UNKNOWN, NULL);
    cmd_is("XYZZY", SMTP_UNKNOWN, NULL);
    cmd_is("MAILX FROM:<a@b>", SMTP_UNKNOWN, NULL);
    cmd_is("HELOx", SMTP_UNKNOWN, NULL);
    cmd_is("EHL", SMTP_UNKNOWN, NULL);
    cmd_is("DAT", SMTP_UNKNOWN, NULL);
    cmd_is("DATAX", SMTP_UNKNOWN, NULL);
    cmd_is("QUITQUIT", SMTP_UNKNOWN, NULL);
    cmd_is("STARTTLSX", SMTP_UNKNOWN, NULL);
    cmd_is("GET / HTTP/1.1", SMTP_UNKNOWN, NULL);
    cmd_is("\x01\x02\x03", SMTP_UNKNOWN, NULL);
}

static void test_noop_with_argument(void **state)
{
    (void)state;
    /* RFC 5321 §4.1.1.9: NOOP may carry a string; HELP may name a topic */
    cmd_is("NOOP hello", SMTP_NOOP, "hello");
    cmd_is("HELP MAIL", SMTP_HELP, "MAIL");
}

/* ---- MAIL --------------------------------------------------------------- */

static void mail_ok(const char *arg, struct smtp_mail_from *m)
{
    struct smtp_error e = { 0, NULL };
    memset(m, 0x5A, sizeof *m);
    if (!smtp_parse_mail(arg, m, &e))
        fail_msg("smtp_parse_mail(\"%s\") refused: %d %s", arg, e.code, e.text ? e.text : "(null)");
}

static int mail_err(const char *arg)
{
    struct smtp_mail_from m;
    struct smtp_error e = { 0, NULL };
    if (smtp_parse_mail(arg, &m, &e))
        fail_msg("smtp_parse_mail(\"%s\") accepted, expected an error", arg);
    if (e.code < 500 || e.code > 599)
        fail_msg("smtp_parse_mail(\"%s\"): code %d, expected 5xx", arg, e.code);
    if (e.text == NULL || strncmp(e.text, "5.", 2) != 0)
        fail_msg("smtp_parse_mail(\"%s\"): text \"%s\", expected an enhanced code 5.x.x",
                 arg, e.text ? e.text : "(null)");
    return e.code;
}

static void test_mail_simple(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<a@b.example>", &m);
    assert_string_equal(m.path, "a@b.example");
    assert_false(m.has_size);
    assert_int_equal(m.size, 0);
    assert_int_equal(m.body, BODY_7BIT);
    assert_false(m.smtputf8);

    mail_ok("from:<user@example.org>", &m);
    assert_string_equal(m.path, "user@example.org");
    mail_ok("From:<x@y>", &m);
    assert_string_equal(m.path, "x@y");
}

static void test_mail_null_sender(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<>", &m);
    assert_string_equal(m.path, "");
    mail_ok("FROM:<> SIZE=100", &m);
    assert_string_equal(m.path, "");
    assert_true(m.has_size);
    assert_int_equal(m.size, 100);
}

static void test_mail_size(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<a@b> SIZE=12345", &m);
    assert_string_equal(m.path, "a@b");
    assert_true(m.has_size);
    assert_int_equal(m.size, 12345);
    mail_ok("FROM:<a@b> SIZE=0", &m);
    assert_true(m.has_size);
    assert_int_equal(m.size, 0);
    mail_ok("FROM:<a@b> SIZE=26214400", &m);
    assert_int_equal(m.size, 26214400);
    mail_ok("FROM:<a@b> size=77", &m);          /* keywords are case-insensitive */
    assert_true(m.has_size);
    assert_int_equal(m.size, 77);

    assert_int_equal(mail_err("FROM:<a@b> SIZE=abc"), 501);
    mail_err("FROM:<a@b> SIZE=");
    mail_err("FROM:<a@b> SIZE=-5");
    mail_err("FROM:<a@b> SIZE=12x");
}

static void test_mail_body(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<a@b> BODY=8BITMIME", &m);
    assert_int_equal(m.body, BODY_8BITMIME);
    mail_ok("FROM:<a@b> BODY=7BIT", &m);
    assert_int_equal(m.body, BODY_7BIT);
    mail_ok("FROM:<a@b> body=8bitmime", &m);
    assert_int_equal(m.body, BODY_8BITMIME);
    mail_err("FROM:<a@b> BODY=BINARYMIME");     /* CHUNKING is not offered */
    mail_err("FROM:<a@b> BODY=");
    mail_err("FROM:<a@b> BODY=bogus");
}

static void test_mail_smtputf8(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<a@b> SMTPUTF8", &m);
    assert_true(m.smtputf8);
    mail_ok("FROM:<a@b> smtputf8", &m);
    assert_true(m.smtputf8);
    mail_ok("FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8", &m);
    assert_string_equal(m.path, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
}

static void test_mail_all_params(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8", &m);
    assert_string_equal(m.path, "a@b.example");
    assert_true(m.has_size);
    assert_int_equal(m.size, 1000);
    assert_int_equal(m.body, BODY_8BITMIME);
    assert_true(m.smtputf8);
    mail_ok("FROM:<a@b.example> SMTPUTF8 BODY=8BITMIME SIZE=5", &m);
    assert_int_equal(m.size, 5);
    assert_int_equal(m.body, BODY_8BITMIME);
    assert_true(m.smtputf8);
}

static void test_mail_unknown_param_555(void **state)
{
    (void)state;
    /* RFC 5321 §4.1.1.11 / RFC 1869: unrecognised parameter -> 555 */
    assert_int_equal(mail_err("FROM:<a@b> FOO=bar"), 555);
    assert_int_equal(mail_err("FROM:<a@b> XFORWARD"), 555);
    assert_int_equal(mail_err("FROM:<a@b> SIZE=10 RET=HDRS"), 555);
}

static void test_mail_missing_brackets_501(void **state)
{
    (void)state;
    /* RFC 5321 §4.2.2 501: syntax error in parameters or arguments */
    const char *bad[] = { "FROM:a@b", "FROM:<a@b", "FROM:a@b>", "", "FROM", "FROM:",
                          "TO:<a@b>", "FRUM:<a@b>", "<a@b>" };
    int failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = mail_err(bad[i]);
        if (code != 501) {
            print_error("MAIL \"%s\": %d, expected 501\n", bad[i], code);
            failures++;
        }
    }
    if (failures)
        fail_msg("%d MAIL syntax error(s) not answered 501", failures);
}

static void test_mail_quoted_local_part(void **state)
{
    (void)state;
    struct smtp_mail_from m;
    mail_ok("FROM:<\"john smith\"@example.org> SIZE=9", &m);
    assert_string_equal(m.path, "\"john smith\"@example.org");
    assert_int_equal(m.size, 9);
}

/* A mailbox of n octets: "a@" followed by labels of <= 50 octets. */
static void mailbox(char *out, size_t n)
{
    size_t i = 0;
    out[i++] = 'a';
    out[i++] = '@';
    int label = 0;
    while (i < n) {
        if (label == 50 && i + 1 < n) {
            out[i++] = '.';
            label = 0;
        } else {
            out[i++] = 'x';
            label++;
        }
    }
    out[n] = 0;
}

static void test_mail_path_length(void **state)
{
    (void)state;
    char mb[1024], arg[1100];
    struct smtp_mail_from m;

    /* 254 octets + the angle brackets = 256: the largest path */
    mailbox(mb, 254);
    snprintf(arg, sizeof arg, "FROM:<%s>", mb);
    mail_ok(arg, &m);
    assert_string_equal(m.path, mb);

    mailbox(mb, 300);
    snprintf(arg, sizeof arg, "FROM:<%s>", mb);
    mail_err(arg);

    mailbox(mb, 1000);
    snprintf(arg, sizeof arg, "FROM:<%s> SIZE=1", mb);
    mail_err(arg);
}

/* ---- RCPT --------------------------------------------------------------- */

static void rcpt_ok(const char *arg, const char *path)
{
    struct smtp_rcpt_to r;
    struct smtp_error e = { 0, NULL };
    memset(&r, 0x5A, sizeof r);
    if (!smtp_parse_rcpt(arg, &r, &e))
        fail_msg("smtp_parse_rcpt(\"%s\") refused: %d %s", arg, e.code, e.text ? e.text : "(null)");
    assert_string_equal(r.path, path);
}

static int rcpt_err(const char *arg)
{
    struct smtp_rcpt_to r;
    struct smtp_error e = { 0, NULL };
    if (smtp_parse_rcpt(arg, &r, &e))
        fail_msg("smtp_parse_rcpt(\"%s\") accepted, expected an error", arg);
    if (e.code < 500 || e.code > 599)
        fail_msg("smtp_parse_rcpt(\"%s\"): code %d, expected 5xx", arg, e.code);
    if (e.text == NULL || strncmp(e.text, "5.", 2) != 0)
        fail_msg("smtp_parse_rcpt(\"%s\"): text \"%s\"", arg, e.text ? e.text : "(null)");
    return e.code;
}

static void test_rcpt(void **state)
{
    (void)state;
    rcpt_ok("TO:<c@d.example>", "c@d.example");
    rcpt_ok("to:<c@d.example>", "c@d.example");

    const char *bad[] = { "TO:c@d.example", "TO:<c@d.example", "", "FROM:<c@d.example>" };
    int failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = rcpt_err(bad[i]);
        if (code != 501) {
            print_error("RCPT \"%s\": %d, expected 501\n", bad[i], code);
            failures++;
        }
    }
    rcpt_err("TO:<>");                            /* a null recipient is no recipient */
    assert_int_equal(rcpt_err("TO:<c@d.example> FOO=1"), 555);

    char mb[512], arg[600];
    mailbox(mb, 300);
    snprintf(arg, sizeof arg, "TO:<%s>", mb);
    rcpt_err(arg);
    mailbox(mb, 254);
    snprintf(arg, sizeof arg, "TO:<%s>", mb);
    rcpt_ok(arg, mb);
    if (failures)
        fail_msg("%d RCPT syntax error(s) not answered 501", failures);
}

static void test_rcpt_postmaster(void **state)
{
    (void)state;
    /* RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted */
    rcpt_ok("To:<Postmaster>", "Postmaster");
}

static void test_rcpt_quoted_local_part(void **state)
{
    (void)state;
    /* RFC 5321 §4.1.2: Local-part = Dot-string / Quoted-string */
    rcpt_ok("TO:<\"a b\"@d.example>", "\"a b\"@d.example");
}

/* ---- HELO --------------------------------------------------------------- */

static void test_helo(void **state)
{
    (void)state;
    assert_true(smtp_valid_helo("mail.example.com"));
    assert_true(smtp_valid_helo("x"));
    assert_true(smtp_valid_helo("[192.0.2.1]"));
    assert_true(smtp_valid_helo("[IPv6:2001:db8::1]"));
    assert_false(smtp_valid_helo(""));
    assert_false(smtp_valid_helo("a b"));
    assert_false(smtp_valid_helo("mail.example.com "));
    assert_false(smtp_valid_helo("foo\x01"));
    assert_false(smtp_valid_helo("foo\tbar"));
    assert_false(smtp_valid_helo("foo\x7f"));
    assert_false(smtp_valid_helo("foo\r"));

    /* issue 11 item 8: a domain or an address literal, nothing else */
    assert_true(smtp_valid_helo("localhost.localdomain"));
    assert_true(smtp_valid_helo("DESKTOP_4F2A.corp.example"));     /* Windows names */
    assert_true(smtp_valid_helo("mail.example.com."));             /* trailing dot */
    assert_true(smtp_valid_helo("192.168.1.5"));                   /* bare IPv4 */
    assert_true(smtp_valid_helo("m\xc3\xbcller.example"));          /* U-label */
    assert_true(smtp_valid_helo("[IPV6:::1]"));
    assert_true(smtp_valid_helo("[x-tag:some.thing]"));
    assert_false(smtp_valid_helo("m\xfcller.example"));             /* Latin-1, not UTF-8 */
    assert_false(smtp_valid_helo("a\xc3"));                         /* cut UTF-8 */
    assert_false(smtp_valid_helo("\xed\xa0\x80.example"));          /* a surrogate */
    assert_false(smtp_valid_helo("foo\x1b[31m"));                   /* terminal escape */
    assert_false(smtp_valid_helo("a..b"));
    assert_false(smtp_valid_helo(".example"));
    assert_false(smtp_valid_helo("host;rm"));
    assert_false(smtp_valid_helo("a(b)"));
    assert_false(smtp_valid_helo("<host>"));
    assert_false(smtp_valid_helo("[192.0.2.300]"));
    assert_false(smtp_valid_helo("[IPv6:not-an-address]"));
    assert_false(smtp_valid_helo("[192.0.2.1"));
    assert_false(smtp_valid_helo("[]"));
    assert_false(smtp_valid_helo("[tag:a]b]"));
    assert_false(smtp_valid_helo("[:x]"));

    char s[300];
    memset(s, 'a', 255);
    s[255] = 0;
    assert_true(smtp_valid_helo(s));
    memset(s, 'a', 256);
    s[256] = 0;
    assert_false(smtp_valid_helo(s));
}

/* issue 11 item 7: RFC 3848 and RFC 6531 §3.7.3 */
static void test_with_protocol(void **state)
{
    (void)state;
    assert_string_equal(smtp_with_protocol(false, false, false, false), "SMTP");
    assert_string_equal(smtp_with_protocol(true, false, false, false), "ESMTP");
    assert_string_equal(smtp_with_protocol(true, false, true, false), "ESMTPA");
    assert_string_equal(smtp_with_protocol(true, true, false, false), "ESMTPS");
    assert_string_equal(smtp_with_protocol(true, true, true, false), "ESMTPSA");
    assert_string_equal(smtp_with_protocol(true, false, false, true), "UTF8SMTP");
    assert_string_equal(smtp_with_protocol(true, false, true, true), "UTF8SMTPA");
    assert_string_equal(smtp_with_protocol(true, true, false, true), "UTF8SMTPS");
    assert_string_equal(smtp_with_protocol(true, true, true, true), "UTF8SMTPSA");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_verbs_case_insensitive),
        cmocka_unit_test(test_unknown_verbs),
        cmocka_unit_test(test_noop_with_argument),
        cmocka_unit_test(test_mail_simple),
        cmocka_unit_test(test_mail_null_sender),
        cmocka_unit_test(test_mail_size),
        cmocka_unit_test(test_mail_body),
        cmocka_unit_test(test_mail_smtputf8),
        cmocka_unit_test(test_mail_all_params),
        cmocka_unit_test(test_mail_unknown_param_555),
        cmocka_unit_test(test_mail_missing_brackets_501),
        cmocka_unit_test(test_mail_quoted_local_part),
        cmocka_unit_test(test_mail_path_length),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_rcpt_postmaster),
        cmocka_unit_test(test_rcpt_quoted_local_part),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_with_protocol),
    };
    return cmocka_run_group_tests_name("smtp_parse", tests, NULL, NULL);
}
