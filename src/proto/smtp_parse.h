/* smtp_parse: one SMTP command line -> verb and arguments. Pure. */
#ifndef PORTCULLIS_SMTP_PARSE_H
#define PORTCULLIS_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1: 512 octets for a command line and 1000 for a text
 * line, CRLF included; RFC 4954 §4: 12288 for AUTH exchanges. */
#define SMTP_LINE_MAX 512
#define SMTP_TEXT_LINE_MAX 1000
#define SMTP_AUTH_LINE_MAX 12288
/* RFC 5321 §4.5.3.1.3: a path is at most 256 octets. */
#define SMTP_PATH_MAX 256

enum smtp_verb {
    SMTP_UNKNOWN = 0,
    SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_RSET,
    SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_HELP, SMTP_STARTTLS, SMTP_AUTH,
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg;      /* points into the line: what follows the verb and
                             one space ("FROM:<a@b> SIZE=1" for MAIL), or "" */
};

/* `line` is one line without its CRLF, NUL-terminated. Never fails: an
 * unrecognised verb is SMTP_UNKNOWN. Verbs are case-insensitive. */
void smtp_parse_command(const char *line, struct smtp_cmd *out);

enum smtp_body { BODY_7BIT, BODY_8BITMIME };

struct smtp_mail_from {
    char path[SMTP_PATH_MAX + 1];  /* without angle brackets; "" for <> */
    uint64_t size;                 /* SIZE=, 0 if absent */
    bool has_size;
    enum smtp_body body;
    bool smtputf8;
};

struct smtp_rcpt_to {
    char path[SMTP_PATH_MAX + 1];
};

/* A parse error: the reply to send, e.g. "501 5.5.4 Syntax: MAIL FROM:<address>". */
struct smtp_error {
    int code;
    const char *text;    /* static string: "5.5.4 ..." (without the code) */
};

/* Parse the argument of MAIL ("FROM:<path> [params]") and RCPT
 * ("TO:<path> [params]"). Return true on success; on failure fill err. */
bool smtp_parse_mail(const char *arg, struct smtp_mail_from *out, struct smtp_error *err);
bool smtp_parse_rcpt(const char *arg, struct smtp_rcpt_to *out, struct smtp_error *err);

/* The WITH protocol of the Received: header: RFC 3848's ESMTP, ESMTPA,
 * ESMTPS, ESMTPSA (SMTP after HELO), and for a transaction with SMTPUTF8
 * RFC 6531 §3.7.3's UTF8SMTP, UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA. */
const char *smtp_with_protocol(bool esmtp, bool tls, bool authed, bool smtputf8);

/* A HELO/EHLO argument (RFC 5321 §4.1.1.1), 1..255 octets: a domain
 * (labels of letters, digits, '-', '_' or UTF-8 U-labels, dot-separated,
 * a trailing dot allowed) or an address literal ([IPv4], [IPv6:...],
 * [tag:content]). Anything else (control bytes, spaces, bytes that are not
 * UTF-8, other punctuation) is refused with 501, so the Received: header
 * only ever carries a well-formed name. */
bool smtp_valid_helo(const char *arg);

#endif
