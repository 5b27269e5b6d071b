/* smtp_order: the order rules of the SMTP dialogue (RFC 5321 §4.1.4 and
 * §4.3.2, RFC 3207 §4, RFC 4954 §4) as pure checks on what the session has
 * done so far. Each returns NULL when the command may go on, or the reply
 * that refuses it. The session's command table pairs each verb with its
 * check (here) and its proceed step (smtp/commands.c). */
#ifndef PORTCULLIS_SMTP_ORDER_H
#define PORTCULLIS_SMTP_ORDER_H

#include <stdbool.h>
#include <stddef.h>

/* What the rules look at. */
struct smtp_order {
    bool helo;        /* HELO or EHLO accepted (and not undone by STARTTLS) */
    bool esmtp;       /* ... and it was EHLO */
    bool tls;
    bool authed;
    bool in_tx;       /* MAIL accepted, DATA not ended, no RSET */
    size_t nrcpt;     /* recipients accepted in this transaction */
};

typedef const char *(*smtp_check_fn)(const struct smtp_order *o, const char *arg);

const char *smtp_check_none(const struct smtp_order *o, const char *arg);
const char *smtp_check_helo(const struct smtp_order *o, const char *arg);
const char *smtp_check_ehlo(const struct smtp_order *o, const char *arg);
const char *smtp_check_starttls(const struct smtp_order *o, const char *arg);
const char *smtp_check_auth(const struct smtp_order *o, const char *arg);
const char *smtp_check_mail(const struct smtp_order *o, const char *arg);
const char *smtp_check_rcpt(const struct smtp_order *o, const char *arg);
const char *smtp_check_data(const struct smtp_order *o, const char *arg);

#endif
