#include "proto/smtp_order.h"

#include "proto/smtp_parse.h"

const char *smtp_check_none(const struct smtp_order *o, const char *arg)
{
    (void)o;
    (void)arg;
    return NULL;
}

const char *smtp_check_helo(const struct smtp_order *o, const char *arg)
{
    (void)o;
    return smtp_valid_helo(arg) ? NULL : "501 5.5.4 Syntax: HELO hostname";
}

const char *smtp_check_ehlo(const struct smtp_order *o, const char *arg)
{
    (void)o;
    return smtp_valid_helo(arg) ? NULL : "501 5.5.4 Syntax: EHLO hostname";
}

const char *smtp_check_starttls(const struct smtp_order *o, const char *arg)
{
    if (*arg != '\0')
        return "501 5.5.4 Syntax: STARTTLS";
    if (o->tls)
        return "503 5.5.1 Already in TLS";
    return NULL;
}

const char *smtp_check_auth(const struct smtp_order *o, const char *arg)
{
    (void)arg;
    if (o->authed)
        return "503 5.5.1 Already authenticated";
    if (!o->esmtp)
        return "503 5.5.1 Send EHLO first";
    if (o->in_tx)
        return "503 5.5.1 AUTH not allowed during a mail transaction";
    return NULL;
}

/* MAIL without authentication is refused too (530), but by the session:
 * that refusal is an offence the guard counts, not an order rule. */
const char *smtp_check_mail(const struct smtp_order *o, const char *arg)
{
    (void)arg;
    if (!o->helo)
        return "503 5.5.1 Send HELO/EHLO first";
    if (o->in_tx)
        return "503 5.5.1 Nested MAIL command";
    return NULL;
}

const char *smtp_check_rcpt(const struct smtp_order *o, const char *arg)
{
    (void)arg;
    return o->in_tx ? NULL : "503 5.5.1 Need MAIL command";
}

const char *smtp_check_data(const struct smtp_order *o, const char *arg)
{
    if (*arg != '\0')
        return "501 5.5.4 Syntax: DATA";
    if (!o->in_tx)
        return "503 5.5.1 Need MAIL command";
    if (o->nrcpt == 0)
        return "503 5.5.1 Need RCPT command";
    return NULL;
}
