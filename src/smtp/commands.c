/* commands: the session's command table, {verb, check, proceed} rows in
 * OpenSMTPD's manner, and what each command does: HELO/EHLO, the mail
 * transaction (MAIL, RCPT, DATA, streamed to the delivery backend) and the
 * small ones. AUTH is in session_auth.c, STARTTLS in session_tls.c. */
#include <stdio.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include "base/log.h"
#include "smtp/received.h"
#include "smtp/session_priv.h"
#include "smtp/tls.h"

/* ---- HELO and EHLO ------------------------------------------------------ */

static void greet(struct session *s, const char *arg, bool esmtp)
{
    tx_reset(s);
    util_strlcpy(s->helo, arg, sizeof s->helo);
    s->esmtp = esmtp;
    const struct config *c = s->cfg;
    if (!esmtp) {
        reply(s, "250 %s", c->hostname);
        return;
    }
    char lines[8][64];
    int n = 0;
    snprintf(lines[n++], sizeof lines[0], "PIPELINING");
    snprintf(lines[n++], sizeof lines[0], "SIZE %lld", (long long)c->max_message_size);
    snprintf(lines[n++], sizeof lines[0], "8BITMIME");
    snprintf(lines[n++], sizeof lines[0], "SMTPUTF8");
    snprintf(lines[n++], sizeof lines[0], "ENHANCEDSTATUSCODES");
    if (tls_offered(s))
        snprintf(lines[n++], sizeof lines[0], "STARTTLS");
    if (!s->authed && auth_allowed(s)) {
        unsigned m = auth_mechanisms(s);
        snprintf(lines[n++], sizeof lines[0], "AUTH%s%s", m & AUTH_MECH_PLAIN ? " PLAIN" : "",
                 m & AUTH_MECH_LOGIN ? " LOGIN" : "");
    }
    reply(s, "250-%s", c->hostname);
    for (int i = 0; i < n; i++)
        reply(s, "250%c%s", i == n - 1 ? ' ' : '-', lines[i]);
}

static void cmd_helo(struct session *s, const char *arg)
{
    greet(s, arg, false);
}

static void cmd_ehlo(struct session *s, const char *arg)
{
    greet(s, arg, true);
}

/* ---- the transaction ---------------------------------------------------- */

/* The backend drained what made it hold the message: read on. */
static void data_resume(void *arg)
{
    struct session *s = arg;
    s->held = false;
    carry_on(s);
}

static void cmd_mail(struct session *s, const char *arg)
{
    if (!s->authed) {
        atomic_fetch_add(&s->env->stats->unauth_mail, 1);
        reply(s, "530 5.7.0 Authentication required");
        offend(s, GUARD_UNAUTH_ATTEMPTS);
        return;
    }
    struct tx *t = &s->tx;
    struct smtp_error err;
    if (!smtp_parse_mail(arg, &t->mail, &err)) {
        reply(s, "%d %s", err.code, err.text);
        return;
    }
    if (t->mail.smtputf8 && !s->esmtp) {
        reply(s, "555 5.5.4 SMTPUTF8 needs EHLO");
        return;
    }
    if (t->mail.has_size && t->mail.size > (uint64_t)s->cfg->max_message_size) {
        atomic_fetch_add(&s->env->stats->messages_refused, 1);
        reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
        return;
    }
    util_new_id(t->id);
    struct deliver_envelope e = {
        .queue_id = t->id, .session = s->sid, .sender = t->mail.path, .client = &s->client,
        .client_port = s->port, .client_name = s->rdns_name, .helo = s->helo, .user = s->user,
        .proto = protocol(s),
        .tls = s->tls, .smtputf8 = t->mail.smtputf8, .body_8bit = t->mail.body == BODY_8BITMIME,
    };
    struct session_env *env = s->env;
    t->dtx = env->deliver->ops->begin(env->deliver, s->cfg, env->pool, env->mb, &e,
                                      data_resume, s);
    if (t->dtx == NULL) {
        tx_reset(s);
        reply(s, "452 4.3.1 Insufficient system resources");
        return;
    }
    t->active = true;
    reply(s, "250 2.1.0 Ok");
}

static void rcpt_done(void *arg, const struct deliver_reply *r)
{
    struct session *s = arg;
    if (!wake(s))
        return;
    if (r->status == DELIVER_OK)
        s->tx.nrcpt++;
    reply(s, "%d %s %s", r->code, r->enhanced, r->text);
    carry_on(s);
}

static void cmd_rcpt(struct session *s, const char *arg)
{
    struct smtp_rcpt_to r;
    struct smtp_error err;
    if (!smtp_parse_rcpt(arg, &r, &err)) {
        reply(s, "%d %s", err.code, err.text);
        return;
    }
    if (!s->tx.mail.smtputf8)
        for (const char *p = r.path; *p; p++)
            if ((unsigned char)*p >= 0x80) {
                reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8");
                return;
            }
    if (s->tx.nrcpt >= (size_t)s->cfg->max_recipients) {
        reply(s, "452 4.5.3 Too many recipients");
        return;
    }
    s->busy = true;
    s->calling = true;
    s->env->deliver->ops->rcpt(s->tx.dtx, r.path, rcpt_done, s);
    s->calling = false;
}

/* Our Received: header (SPEC §3), the first lines the backend gets. */
static size_t received(struct session *s, char *out, size_t outlen)
{
    char tlsinfo[160] = "";
    if (s->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        if (ssl != NULL)
            tls_describe(ssl, tlsinfo, sizeof tlsinfo);
    }
    /* RFC 5321 §4.4 TCP-info, Postfix style: the name only when confirmed
     * forward, "unknown" when looked up (or still looking: the message
     * never waits for DNS). */
    struct received_info r = {
        .helo = s->helo, .ip = s->ip, .hostname = s->cfg->hostname,
        /* RFC 6531 §3.7.3: UTF8SMTPSA ... for an SMTPUTF8 transaction */
        .proto = smtp_with_protocol(s->esmtp, s->tls, s->authed, s->tx.mail.smtputf8),
        .id = s->tx.id, .tls = tlsinfo, .user = s->authed ? s->user : NULL, .at = util_now_ms(),
        .name = !wants_name(s) ? NULL : s->rdns_name != NULL ? s->rdns_name : "unknown",
    };
    return received_header(&r, out, outlen);
}

/* The message, as the parser emits it, goes straight to the backend. */
static void data_emit(void *ctx, const char *p, size_t n)
{
    struct session *s = ctx;
    if (!s->env->deliver->ops->write(s->tx.dtx, p, n))
        s->held = true;
}

static void cmd_data(struct session *s, const char *arg)
{
    (void)arg;
    char head[2048];
    size_t n = received(s, head, sizeof head);
    if (n == 0) {
        tx_reset(s);
        reply(s, "451 4.3.0 Local error in processing, try again later");
        return;
    }
    smtp_data_init(&s->tx.data, (uint64_t)s->cfg->max_message_size, data_emit, s);
    data_emit(s, head, n);
    enter_state(s, ST_DATA);
    set_timeouts(s, s->cfg->timeout_data_ms);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void data_done(void *arg, const struct deliver_reply *r)
{
    struct session *s = arg;
    struct tx *t = &s->tx;
    stats_delivery_time(s->env->stats, util_mono_ms() - t->ended_ms);
    if (r->status == DELIVER_OK) {
        atomic_fetch_add(&s->env->stats->messages, 1);
        char n[16];
        snprintf(n, sizeof n, "%zu", t->nrcpt);
        /* In relay mode the next hop's id too, so one grep finds both logs. */
        log_event(LOG_INFO, "delivered", "ip", s->ip, "session", s->sid, "id", t->id,
                  "next_id", r->id, "user", s->user, "from", t->mail.path, "rcpts", n, NULL);
    } else {
        atomic_fetch_add(&s->env->stats->delivery_failures, 1);
        log_event(LOG_ERROR, "delivery_failed", "ip", s->ip, "session", s->sid, "id", t->id,
                  "error", r->detail, NULL);
    }
    if (!wake(s))
        return;
    if (r->status == DELIVER_OK)
        reply(s, "250 2.0.0 Ok: queued as %s", t->id);
    else
        reply(s, "%d %s %s", r->code, r->enhanced, r->text);
    tx_reset(s);
    carry_on(s);
}

static void data_end(struct session *s)
{
    enter_state(s, ST_CMD);
    set_timeouts(s, s->cfg->timeout_command_ms);
    const char *refused = NULL;
    switch (s->tx.data.error) {
    case SMTP_DATA_TOO_BIG:
        atomic_fetch_add(&s->env->stats->messages_refused, 1);
        refused = "552 5.3.4 Message size exceeds fixed maximum message size";
        break;
    case SMTP_DATA_LINE_TOO_LONG:
        refused = "550 5.6.0 Message line too long (1000 octets at most)";
        break;
    case SMTP_DATA_NUL:
        refused = "550 5.6.0 NUL character not allowed";
        break;
    case SMTP_DATA_BARE_CRLF:
        refused = "550 5.6.0 Bare CR or LF not allowed";
        break;
    case SMTP_DATA_OK:
        break;
    }
    if (refused != NULL) {
        reply(s, "%s", refused);
        tx_reset(s);              /* the backend forgets what it had */
        return;
    }
    struct deliver_tx *dtx = s->tx.dtx;
    s->tx.dtx = NULL;             /* the backend's until data_done */
    s->tx.ended_ms = util_mono_ms();
    s->held = false;
    s->busy = true;
    s->calling = true;
    s->env->deliver->ops->end(dtx, data_done, s);
    s->calling = false;
}

/* Feeds what has arrived of the message; false when it needs more, or
 * when the backend holds us back. */
bool feed_data(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    while (evbuffer_get_length(in) > 0 && !s->tx.data.done && !s->held) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = smtp_data_feed(&s->tx.data, v.iov_base, v.iov_len);
        evbuffer_drain(in, used);
    }
    if (!s->tx.data.done)
        return false;
    data_end(s);
    return true;
}
/* ---- the rest ----------------------------------------------------------- */

static void cmd_rset(struct session *s, const char *arg)
{
    (void)arg;
    tx_reset(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, const char *arg)
{
    (void)arg;
    reply(s, "250 2.0.0 Ok");
}

static void cmd_vrfy(struct session *s, const char *arg)
{
    (void)arg;
    reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_help(struct session *s, const char *arg)
{
    (void)arg;
    reply(s, "214 2.0.0 See RFC 5321; this is Portcullis, a submission server");
}

static void cmd_quit(struct session *s, const char *arg)
{
    (void)arg;
    reply(s, "221 2.0.0 %s closing connection", s->cfg->hostname);
    close_after_reply(s);
}

/* ---- the table ------------------------------------------------------------ */

/* Each verb: the order rules it must pass (pure, proto/smtp_order.c, unit
 * tested), then what it does. */
static const struct {
    enum smtp_verb verb;
    smtp_check_fn check;
    void (*proceed)(struct session *s, const char *arg);
} commands[] = {
    {SMTP_HELO, smtp_check_helo, cmd_helo},
    {SMTP_EHLO, smtp_check_ehlo, cmd_ehlo},
    {SMTP_STARTTLS, smtp_check_starttls, cmd_starttls},
    {SMTP_AUTH, smtp_check_auth, cmd_auth},
    {SMTP_MAIL, smtp_check_mail, cmd_mail},
    {SMTP_RCPT, smtp_check_rcpt, cmd_rcpt},
    {SMTP_DATA, smtp_check_data, cmd_data},
    {SMTP_RSET, smtp_check_none, cmd_rset},
    {SMTP_NOOP, smtp_check_none, cmd_noop},
    {SMTP_VRFY, smtp_check_none, cmd_vrfy},
    {SMTP_HELP, smtp_check_none, cmd_help},
    {SMTP_QUIT, smtp_check_none, cmd_quit},
};

void session_command(struct session *s, const char *line)
{
    struct smtp_cmd cmd;
    smtp_parse_command(line, &cmd);
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (commands[i].verb != cmd.verb)
            continue;
        const struct smtp_order o = {
            .helo = s->helo[0] != '\0', .esmtp = s->esmtp, .tls = s->tls,
            .authed = s->authed, .in_tx = s->tx.active, .nrcpt = s->tx.nrcpt,
        };
        const char *refused = commands[i].check(&o, cmd.arg);
        if (refused != NULL)
            reply(s, "%s", refused);
        else
            commands[i].proceed(s, cmd.arg);
        return;
    }
    bad_command(s, "500 5.5.2 Command unrecognized");
}
