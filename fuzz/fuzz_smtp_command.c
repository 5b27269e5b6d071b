/* Fuzzes one SMTP command line: smtp_parse_command, then MAIL/RCPT
 * argument parsing and the HELO check, on a NUL-terminated copy. */
#include <stdbool.h>
#include "fuzz_common.h"
#include "smtp_parse.h"

static bool path_ok(const char *path, bool allow_null, bool utf8)
{
    size_t n = strlen(path);
    if (n > SMTP_PATH_MAX)
        return false;
    if (n == 0)
        return allow_null;
    const char *at = strchr(path, '@');
    if (at == NULL || at == path || at == path + n - 1)   /* the first '@' */
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)path[i];
        if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>')
            return false;
        if (ch >= 0x80 && !utf8)
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
        CHECK(path_ok(m.path, true, m.smtputf8));
        CHECK(m.has_size || m.size == 0);
        CHECK(m.body == BODY_7BIT || m.body == BODY_8BITMIME);
    } else {
        check_error(&e);
    }
    memset(&e, 0, sizeof e);
    if (smtp_parse_rcpt(arg, &r, &e))
        CHECK(path_ok(r.path, false, true));
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
