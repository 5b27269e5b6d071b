#include "proto/smtp_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "base/util.h"

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    {"EHLO", SMTP_EHLO}, {"HELO", SMTP_HELO}, {"MAIL", SMTP_MAIL},
    {"RCPT", SMTP_RCPT}, {"DATA", SMTP_DATA}, {"RSET", SMTP_RSET},
    {"NOOP", SMTP_NOOP}, {"QUIT", SMTP_QUIT}, {"VRFY", SMTP_VRFY},
    {"HELP", SMTP_HELP}, {"STARTTLS", SMTP_STARTTLS}, {"AUTH", SMTP_AUTH},
};

void smtp_parse_command(const char *line, struct smtp_cmd *out)
{
    out->verb = SMTP_UNKNOWN;
    out->arg = "";
    size_t n = strcspn(line, " ");
    for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
        if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0) {
            out->verb = verbs[i].verb;
            break;
        }
    }
    if (line[n] == ' ')
        out->arg = line + n + 1;
}

static const struct smtp_error
    err_mail_syntax = {501, "5.5.4 Syntax: MAIL FROM:<address>"},
    err_rcpt_syntax = {501, "5.5.4 Syntax: RCPT TO:<address>"},
    err_path_long = {501, "5.1.3 Path too long"},
    err_bad_path = {553, "5.1.3 Bad address syntax"},
    err_param = {555, "5.5.4 Unsupported parameter"},
    err_param_syntax = {501, "5.5.4 Bad parameter"};

/* A local part as RFC 5321 §4.1.2 has it: a Dot-string, or a
 * Quoted-string (which may hold spaces). Returns its length, 0 if bad. */
static size_t local_part(const char *s, size_t n)
{
    if (n > 0 && s[0] == '"') {
        for (size_t i = 1; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '\\' && i + 1 < n && (unsigned char)s[i + 1] >= ' ')
                i++;
            else if (ch == '"')
                return i + 1;
            else if (ch < ' ' || ch == 0x7f)
                return 0;
        }
        return 0;
    }
    size_t i = 0;
    while (i < n && s[i] != '@') {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>' || ch == '"' || ch == '(' ||
            ch == ')' || ch == ',' || ch == ';' || ch == ':' || ch == '\\' || ch == '[' || ch == ']')
            return 0;
        i++;
    }
    return i;
}

/* "<path>" (RFC 5321 §4.1.2; a leading source route is tolerated as its
 * appendix C asks). Leaves *p after '>'. */
static bool parse_path(const char **p, char out[SMTP_PATH_MAX + 1], bool is_rcpt,
                       struct smtp_error *err, const struct smtp_error *syntax)
{
    const char *s = *p;
    /* Some clients write "MAIL FROM: <a@b>"; RFC 5321 does not allow the
     * space but every server accepts it. */
    while (*s == ' ')
        s++;
    if (*s != '<')
        return *err = *syntax, false;
    s++;
    if (*s == '@') {   /* source route: "@a,@b:user@host" */
        const char *colon = strchr(s, ':');
        const char *gt = strchr(s, '>');
        if (colon == NULL || (gt != NULL && gt < colon))
            return *err = err_bad_path, false;
        s = colon + 1;
    }
    size_t lp = local_part(s, strlen(s));
    const char *end = strchr(s + lp, '>');
    if (end == NULL)
        return *err = *syntax, false;
    size_t n = (size_t)(end - s);
    if (n > SMTP_PATH_MAX)
        return *err = err_path_long, false;
    if (n == 0) {
        if (is_rcpt)
            return *err = err_bad_path, false;
    } else if (is_rcpt && n == 10 && strncasecmp(s, "postmaster", 10) == 0) {
        /* RFC 5321 §4.1.1.3: <Postmaster> without a domain is accepted. */
    } else {
        if (lp == 0 || lp >= n || s[lp] != '@')
            return *err = err_bad_path, false;
        const char *dom = s + lp + 1;
        size_t dn = n - lp - 1;
        if (dn == 0)
            return *err = err_bad_path, false;
        for (size_t i = 0; i < dn; i++) {
            unsigned char ch = (unsigned char)dom[i];
            /* 8-bit is UTF-8 under SMTPUTF8 and checked by the caller. */
            if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '@' || ch == '"')
                return *err = err_bad_path, false;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
    *p = end + 1;
    return true;
}

static bool has_8bit(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return true;
    return false;
}

/* The next " KEY[=VALUE]" parameter. Returns false at the end. */
static bool next_param(const char **p, char *key, size_t klen, char *val, size_t vlen, bool *bad)
{
    const char *s = *p;
    *bad = false;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return false;
    size_t n = strcspn(s, " ");
    const char *eq = memchr(s, '=', n);
    size_t kn = eq ? (size_t)(eq - s) : n;
    size_t vn = eq ? n - kn - 1 : 0;
    if (kn == 0 || kn >= klen || vn >= vlen) {
        *bad = true;
        return true;
    }
    memcpy(key, s, kn);
    key[kn] = '\0';
    memcpy(val, eq ? eq + 1 : "", vn);
    val[vn] = '\0';
    *p = s + n;
    return true;
}

bool smtp_parse_mail(const char *arg, struct smtp_mail_from *out, struct smtp_error *err)
{
    memset(out, 0, sizeof *out);
    if (!util_strcaseprefix(arg, "FROM:"))
        return *err = err_mail_syntax, false;
    const char *p = arg + 5;
    if (!parse_path(&p, out->path, false, err, &err_mail_syntax))
        return false;
    if (*p != '\0' && *p != ' ')
        return *err = err_mail_syntax, false;
    char key[32], val[128];
    bool bad;
    while (next_param(&p, key, sizeof key, val, sizeof val, &bad)) {
        if (bad)
            return *err = err_param_syntax, false;
        if (strcasecmp(key, "SIZE") == 0) {
            char *end;
            if (val[0] < '0' || val[0] > '9')
                return *err = err_param_syntax, false;
            unsigned long long v = strtoull(val, &end, 10);
            if (*end != '\0' || strlen(val) > 20)
                return *err = err_param_syntax, false;
            out->size = v;
            out->has_size = true;
        } else if (strcasecmp(key, "BODY") == 0) {
            if (strcasecmp(val, "7BIT") == 0)
                out->body = BODY_7BIT;
            else if (strcasecmp(val, "8BITMIME") == 0)
                out->body = BODY_8BITMIME;
            else
                return *err = err_param_syntax, false;
        } else if (strcasecmp(key, "SMTPUTF8") == 0 && val[0] == '\0') {
            out->smtputf8 = true;
        } else if (strcasecmp(key, "AUTH") == 0) {
            /* RFC 4954 §5: the submitter's identity; we trust only our own AUTH. */
        } else {
            return *err = err_param, false;
        }
    }
    if (!out->smtputf8 && has_8bit(out->path))
        return *err = (struct smtp_error){553, "5.6.7 Non-ASCII address needs SMTPUTF8"}, false;
    return true;
}

bool smtp_parse_rcpt(const char *arg, struct smtp_rcpt_to *out, struct smtp_error *err)
{
    memset(out, 0, sizeof *out);
    if (!util_strcaseprefix(arg, "TO:"))
        return *err = err_rcpt_syntax, false;
    const char *p = arg + 3;
    if (!parse_path(&p, out->path, true, err, &err_rcpt_syntax))
        return false;
    if (*p != '\0' && *p != ' ')
        return *err = err_rcpt_syntax, false;
    char key[32], val[128];
    bool bad;
    /* We support no RCPT parameters (no DSN). */
    if (next_param(&p, key, sizeof key, val, sizeof val, &bad))
        return *err = bad ? err_param_syntax : err_param, false;
    return true;
}

const char *smtp_with_protocol(bool esmtp, bool tls, bool authed, bool smtputf8)
{
    if (!esmtp)
        return "SMTP";   /* SMTPUTF8 needs EHLO: there is no HELO form */
    static const char *const names[2][2][2] = {
        {{"ESMTP", "ESMTPA"}, {"ESMTPS", "ESMTPSA"}},
        {{"UTF8SMTP", "UTF8SMTPA"}, {"UTF8SMTPS", "UTF8SMTPSA"}},
    };
    return names[smtputf8][tls][authed];
}

/* Letters, digits, hyphen, and the underscore real clients put in host
 * names (Windows machine names) although RFC 5321 does not. */
static bool ldh_(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_';
}

/* Dot-separated labels of ldh_ characters or well-formed UTF-8 (RFC 6531
 * U-labels); no empty label, but a trailing dot is fine. A bare IPv4
 * address has this shape too, and clients send it. */
static bool helo_domain(const char *s, size_t n)
{
    size_t label = 0;
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
            i++;
        } else if (ch >= 0x80) {
            size_t k = util_utf8_char(s + i);
            if (k == 0)
                return false;
            i += k;
            label++;
        } else if (ldh_(ch)) {
            i++;
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* RFC 5321 §4.1.3: "[192.0.2.1]", "[IPv6:2001:db8::1]", or a general
 * literal "[tag:content]" with content of printable ASCII but [ \ ]. */
static bool helo_literal(const char *s, size_t n)
{
    if (n < 3 || s[0] != '[' || s[n - 1] != ']')
        return false;
    char in[256];
    size_t len = n - 2;
    memcpy(in, s + 1, len);
    in[len] = '\0';
    unsigned char bin[16];
    if (strncasecmp(in, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, in + 5, bin) == 1;
    if (strspn(in, "0123456789.") == len)
        return inet_pton(AF_INET, in, bin) == 1;
    size_t tag = 0;
    while (tag < len && ldh_((unsigned char)in[tag]) && in[tag] != '_')
        tag++;
    if (tag == 0 || tag + 1 >= len || in[tag] != ':')
        return false;
    for (size_t i = tag + 1; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch < 33 || ch > 126 || ch == '[' || ch == '\\' || ch == ']')
            return false;
    }
    return true;
}

bool smtp_valid_helo(const char *arg)
{
    size_t n = strlen(arg);
    if (n == 0 || n > 255)
        return false;
    return arg[0] == '[' ? helo_literal(arg, n) : helo_domain(arg, n);
}
