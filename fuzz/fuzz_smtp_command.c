/* Fuzzes one SMTP command line: smtp_parse_command, then MAIL/RCPT
 * argument parsing and the HELO check, on a NUL-terminated copy. */
#include <stdbool.h>
#include <strings.h>
#include "fuzz_common.h"
#include "proto/smtp_parse.h"

/* What smtp_parse.c accepts as a path (RFC 5321 §4.1.2): "" only for
 * MAIL, <Postmaster> only for RCPT, otherwise local-part "@" domain where
 * the domain is non-empty and plain; never a control character, never
 * longer than SMTP_PATH_MAX, 8-bit only under SMTPUTF8. */
static bool path_ok(const char *path, bool is_rcpt, bool utf8)
{
    size_t n = strlen(path);
    if (n > SMTP_PATH_MAX)
        return false;
    if (n == 0)
        return !is_rcpt;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch < ' ' || (ch >= 0x80 && !utf8))
            return false;
    }
    if (is_rcpt && strcasecmp(path, "postmaster") == 0)
        return true;
    const char *at = strrchr(path, '@');   /* the domain holds no '@' */
    if (at == NULL || at == path || at == path + n - 1)
        return false;
    for (const char *d = at + 1; *d; d++) {
        unsigned char ch = (unsigned char)*d;
        if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>' || ch == '"')
            return false;
    }
    return true;
}

static void check_error(const struct smtp_error *e)
{
    CHECK(e->code >= 500 && e->code <= 599);
    CHECK(e->text != NULL && e->text[0] == '5' && strlen(e->text) < 200);
}

static void parse_args(const char *arg)
{
    struct smtp_mail_from m;
    struct smtp_rcpt_to r;
    struct smtp_error e;
    memset(&e, 0, sizeof e);
    if (smtp_parse_mail(arg, &m, &e)) {
        CHECK(path_ok(m.path, false, m.smtputf8));
        CHECK(m.has_size || m.size == 0);
        CHECK(m.body == BODY_7BIT || m.body == BODY_8BITMIME);
    } else {
        check_error(&e);
    }
    memset(&e, 0, sizeof e);
    if (smtp_parse_rcpt(arg, &r, &e))
        CHECK(path_ok(r.path, true, true));
    else
        check_error(&e);
    if (smtp_valid_helo(arg)) {
        size_t n = strlen(arg);
        CHECK(n >= 1 && n <= 255);
        CHECK(strchr(arg, ' ') == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = fuzz_cstr(data, size);
    size_t len = strlen(line);   /* an embedded NUL ends the C string */

    struct smtp_cmd cmd;
    smtp_parse_command(line, &cmd);
    CHECK(cmd.verb >= SMTP_UNKNOWN && cmd.verb <= SMTP_AUTH);
    CHECK(cmd.arg != NULL);
    if (cmd.arg[0] != '\0') {
        /* The argument points into the line, after the verb and one space. */
        CHECK(cmd.arg > line && cmd.arg <= line + len);
        CHECK(cmd.arg[-1] == ' ');
    }
    if (cmd.verb != SMTP_UNKNOWN) {
        size_t vn = strcspn(line, " ");
        CHECK(vn >= 4 && vn <= 8);
    }

    /* The session hands the argument to the MAIL/RCPT/HELO parsers; feed
     * both the argument and the whole line so every parser sees every input. */
    parse_args(cmd.arg);
    parse_args(line);

    free(line);
    return 0;
}
