/* The order rules of the SMTP dialogue (src/proto/smtp_order.h): each
 * command's check against the states that matter, without a socket. One
 * table row per (command, state) with the reply expected, NULL = go on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "proto/smtp_order.h"

#define NEW      {0}
#define HELO     {.helo = true}
#define EHLO     {.helo = true, .esmtp = true}
#define EHLO_TLS {.helo = true, .esmtp = true, .tls = true}
#define AUTHED   {.helo = true, .esmtp = true, .authed = true}
#define IN_TX    {.helo = true, .esmtp = true, .authed = true, .in_tx = true}
#define WITH_RCPT {.helo = true, .esmtp = true, .authed = true, .in_tx = true, .nrcpt = 1}

static const struct row {
    const char *name;
    smtp_check_fn check;
    struct smtp_order o;
    const char *arg;
    const char *want;     /* NULL: allowed */
} rows[] = {
    {"HELO name", smtp_check_helo, NEW, "client.test", NULL},
    {"HELO empty", smtp_check_helo, NEW, "", "501 5.5.4 Syntax: HELO hostname"},
    {"EHLO bad", smtp_check_ehlo, EHLO, "a b", "501 5.5.4 Syntax: EHLO hostname"},
    {"EHLO again in tx", smtp_check_ehlo, IN_TX, "client.test", NULL},
    {"STARTTLS", smtp_check_starttls, EHLO, "", NULL},
    {"STARTTLS before EHLO", smtp_check_starttls, NEW, "", NULL},
    {"STARTTLS arg", smtp_check_starttls, EHLO, "x", "501 5.5.4 Syntax: STARTTLS"},
    {"STARTTLS twice", smtp_check_starttls, EHLO_TLS, "", "503 5.5.1 Already in TLS"},
    {"AUTH", smtp_check_auth, EHLO, "PLAIN", NULL},
    {"AUTH after HELO", smtp_check_auth, HELO, "PLAIN", "503 5.5.1 Send EHLO first"},
    {"AUTH before EHLO", smtp_check_auth, NEW, "PLAIN", "503 5.5.1 Send EHLO first"},
    {"AUTH twice", smtp_check_auth, AUTHED, "PLAIN", "503 5.5.1 Already authenticated"},
    {"AUTH in tx", smtp_check_auth, {.helo = true, .esmtp = true, .in_tx = true}, "PLAIN",
     "503 5.5.1 AUTH not allowed during a mail transaction"},
    {"MAIL", smtp_check_mail, AUTHED, "FROM:<a@b>", NULL},
    {"MAIL unauthenticated (the session's 530)", smtp_check_mail, EHLO, "FROM:<a@b>", NULL},
    {"MAIL before HELO", smtp_check_mail, NEW, "FROM:<a@b>", "503 5.5.1 Send HELO/EHLO first"},
    {"MAIL nested", smtp_check_mail, IN_TX, "FROM:<a@b>", "503 5.5.1 Nested MAIL command"},
    {"RCPT", smtp_check_rcpt, IN_TX, "TO:<a@b>", NULL},
    {"RCPT without MAIL", smtp_check_rcpt, AUTHED, "TO:<a@b>", "503 5.5.1 Need MAIL command"},
    {"DATA", smtp_check_data, WITH_RCPT, "", NULL},
    {"DATA arg", smtp_check_data, WITH_RCPT, "x", "501 5.5.4 Syntax: DATA"},
    {"DATA without MAIL", smtp_check_data, AUTHED, "", "503 5.5.1 Need MAIL command"},
    {"DATA without RCPT", smtp_check_data, IN_TX, "", "503 5.5.1 Need RCPT command"},
    {"NOOP anywhere", smtp_check_none, NEW, "", NULL},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        const char *got = r->check(&r->o, r->arg);
        if (r->want == NULL && got != NULL)
            fail_msg("%s: refused with \"%s\"", r->name, got);
        if (r->want != NULL && (got == NULL || strcmp(got, r->want) != 0))
            fail_msg("%s: got \"%s\", want \"%s\"", r->name, got ? got : "(allowed)", r->want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rows)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
