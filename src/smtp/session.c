/* session: the SMTP dialogue of one connection, on libevent bufferevents.
 *
 * Shape (after OpenSMTPD): an explicit state, a command table, one reply
 * function. Blocking work (password hashing, the Maildir write) goes to the
 * pool; while it runs the session is `busy` and reads nothing, so pipelined
 * commands are answered in order. A session closed while a job runs is
 * freed when the job comes back (`dead`). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include "base/log.h"
#include "proto/proxy.h"
#include "smtp/rdns.h"
#include "proto/sasl.h"
#include "smtp/session.h"
#include "proto/smtp_data.h"
#include "proto/smtp_parse.h"
#include "smtp/tls.h"
#include "base/util.h"

enum state {
    ST_PROXY,        /* waiting for the PROXY header */
    ST_CMD,          /* waiting for a command */
    ST_AUTH_PLAIN,   /* 334 sent, waiting for the PLAIN response */
    ST_AUTH_USER,    /* LOGIN: waiting for the user name */
    ST_AUTH_PASS,    /* LOGIN: waiting for the password */
    ST_DATA,         /* reading the message */
    ST_REJECTED,     /* 554 sent: 503 to all but QUIT */
};

/* Output not yet taken by the client beyond which we stop reading its
 * commands: a client that pipelines without reading costs bounded memory. */
#define OUTPUT_MAX (64 * 1024)
/* Bad commands one session may send before we hang up (RFC 5321 §4.3.2
 * allows closing after errors; it bounds what garbage costs). */
#define ERRORS_MAX 20
#define REJECT_LINGER_MS 10000

/* The transaction: from MAIL to the end of DATA or RSET. */
struct tx {
    bool active;
    char id[UTIL_ID_LEN];        /* the queue id: Received:, the 250, the file */
    struct smtp_mail_from mail;
    size_t nrcpt;                /* recipients the backend took */
    struct smtp_data data;
    struct deliver_tx *dtx;      /* the backend's side, until end or abort */
};

struct session {
    TAILQ_ENTRY(session) link;
    struct session_env *env;
    struct config *cfg;
    struct bufferevent *bev;
    evutil_socket_t fd;
    enum listen_mode mode;
    enum state state;
    struct addr peer, client;
    char ip[ADDR_STRLEN];
    char sid[UTIL_ID_LEN];
    uint16_t port;
    uint64_t epoch;
    bool counted, allowed, esmtp, tls, authed, busy, closing, dead, discard_line, tls_closed;
    bool calling;                /* inside a backend call: its callback must not re-enter process() */
    bool held;                   /* the backend asked us to stop reading the message */
    bool linger;                 /* we hang up on a client that may still be sending */
    bool peer_gone;
    bool proxy_local;            /* the proxy's own health check: no client to name */
    struct rdns *rdns;           /* the lookup, while in flight */
    char *rdns_name;             /* its confirmed name; NULL: unknown */
    unsigned errors;
    char helo[256];
    char user[SASL_USER_MAX];
    struct event *timer;         /* failure_delay, then the closing poll */
    int64_t close_by;
    struct tx tx;
};

static void process(struct session *s);
static void session_free(struct session *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ---- replies and the end of a session -------------------------------- */

static void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct session *s, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

static void tx_reset(struct session *s)
{
    if (s->tx.dtx != NULL)
        s->env->deliver->ops->abort(s->tx.dtx);
    memset(&s->tx, 0, sizeof s->tx);
    s->held = false;
}

/* The start of a backend's callback: false when the session died while
 * it waited (it is freed now). */
static bool wake(struct session *s)
{
    s->busy = false;
    if (!s->dead)
        return true;
    session_free(s);
    return false;
}

/* The end of it: read on, unless the answer came inside the call that
 * asked for it (process() is then still running and goes on by itself). */
static void carry_on(struct session *s)
{
    if (!s->calling)
        process(s);
}

static void linger_fd(struct session_env *env, evutil_socket_t fd);

static void session_free(struct session *s)
{
    struct session_env *env = s->env;
    /* Hanging up on a client that is still sending would answer its next
     * bytes with a RST, which can destroy our last reply (the 421) before
     * it reads it: stop writing, drain what it sends, then close. */
    evutil_socket_t keep = -1;
    if (s->linger && !s->peer_gone && s->bev != NULL) {
        evutil_socket_t fd = bufferevent_getfd(s->bev);
        keep = fd >= 0 ? dup(fd) : -1;
    }
    if (s->counted)
        guard_disconnect(env->guard, s->cfg, &s->client);
    if (s->tx.dtx != NULL)
        env->deliver->ops->abort(s->tx.dtx);
    if (s->rdns != NULL)
        rdns_cancel(s->rdns);    /* its callback will not find us */
    free(s->rdns_name);
    log_event(LOG_DEBUG, "close", "ip", s->ip, "session", s->sid, NULL);
    TAILQ_REMOVE(&env->sessions, s, link);
    if (s->bev != NULL)
        bufferevent_free(s->bev);
    else if (s->fd >= 0)
        close(s->fd);
    if (s->timer != NULL)
        event_free(s->timer);
    config_unref(s->cfg);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
    if (keep >= 0)
        linger_fd(env, keep);    /* still counted in clients until closed */
    else
        atomic_fetch_sub(env->clients, 1);
}

/* Bytes not yet handed to the kernel. Under TLS the filter passes its
 * output on to the socket bufferevent beneath it, which drains later. */
static size_t output_pending(struct session *s)
{
    size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
    struct bufferevent *under = bufferevent_get_underlying(s->bev);
    if (under != NULL)
        n += evbuffer_get_length(bufferevent_get_output(under));
    return n;
}

static void finish(struct session *s);

static void finish_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    if (output_pending(s) == 0 || util_mono_ms() >= s->close_by)
        session_free(s);
    else
        finish(s);
}

/* Frees the session once its last reply has left, or at once on error. */
static void finish(struct session *s)
{
    if (s->busy) {
        s->dead = true;    /* the pool job frees it when it returns */
        return;
    }
    /* TLS ends with a close_notify (clients such as openssl s_client call
     * a bare TCP close a truncation attack), once our last reply is out. */
    if (s->tls && !s->tls_closed && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        s->tls_closed = true;
        if (ssl != NULL && SSL_is_init_finished(ssl))
            SSL_shutdown(ssl);
    }
    if (output_pending(s) == 0) {
        session_free(s);
        return;
    }
    if (s->close_by == 0)
        s->close_by = util_mono_ms() + 5000;
    /* A plain socket calls on_write when drained; a TLS filter may not
     * see its socket drain, so look again shortly. */
    if (bufferevent_get_underlying(s->bev) != NULL && !evtimer_pending(s->timer, NULL)) {
        struct timeval tv = {0, 20000};
        event_assign(s->timer, s->env->base, -1, 0, finish_later, s);
        evtimer_add(s->timer, &tv);
    }
}

static void close_after_reply(struct session *s)
{
    s->closing = true;
    bufferevent_disable(s->bev, EV_READ);
}

/* The same for a close the client did not ask for (421s). */
static void hang_up(struct session *s)
{
    s->linger = true;
    close_after_reply(s);
}

/* ---- guard ----------------------------------------------------------- */

static void offend(struct session *s, enum guard_offense what)
{
    struct session_env *env = s->env;
    struct guard_block made;
    if (guard_offend(env->guard, s->cfg, &s->client, what, util_now_ms(), &made))
        env->hooks->block_made(env->ctx, &made, s->sid);
    env->hooks->count(env->ctx, s->cfg, &s->client,
                      what == GUARD_OFFENSE_AUTH ? GUARD_AUTH_FAILURES : GUARD_UNAUTH_ATTEMPTS);
}

/* SPEC §3: once the client's prefix is blocked, its sessions end at their
 * next command. The epoch makes this a load and a compare unless some
 * block changed since this session last looked. */
static bool blocked_now(struct session *s)
{
    if (s->allowed)
        return false;
    uint64_t e = guard_epoch(s->env->guard);
    if (e == s->epoch)
        return false;
    s->epoch = e;
    return guard_blocked(s->env->guard, &s->client, util_now_ms());
}

/* ---- the pieces of a dialogue ---------------------------------------- */

/* TLS, or a network trusted to carry passwords in the clear. */
static bool auth_secured(const struct session *s)
{
    return s->tls || cidr_list_match(&s->cfg->plain_auth_from, &s->client);
}

static bool auth_allowed(const struct session *s)
{
    return !s->cfg->require_tls_for_auth || auth_secured(s);
}

/* The mechanisms both the configuration and the backend offer. */
static unsigned auth_mechanisms(const struct session *s)
{
    struct auth *a = s->env->hooks->auth(s->env->ctx);
    unsigned m = a->ops->mechanisms(a);
    auth_unref(a);
    return m & ((s->cfg->mech_plain ? AUTH_MECH_PLAIN : 0) |
                (s->cfg->mech_login ? AUTH_MECH_LOGIN : 0));
}

static bool tls_offered(const struct session *s)
{
    /* The session's own configuration says whether TLS is set up (a reload
     * that cannot load the certificate is refused as a whole). */
    return s->mode == LISTEN_STARTTLS && !s->tls && s->cfg->tls_cert[0] != '\0';
}

static void cmd_helo(struct session *s, const char *arg, bool esmtp)
{
    if (!smtp_valid_helo(arg)) {
        reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
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

static void cmd_starttls(struct session *s, const char *arg)
{
    if (*arg != '\0') {
        reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (s->tls) {
        reply(s, "503 5.5.1 Already in TLS");
        return;
    }
    SSL_CTX *ctx = tls_offered(s) ? s->env->hooks->tls(s->env->ctx) : NULL;
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    if (ctx != NULL)
        SSL_CTX_free(ctx);      /* the SSL holds its own reference */
    if (ssl == NULL) {
        reply(s, "454 4.7.0 TLS not available");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* RFC 3207 §4.2 (and CVE-2011-0411): anything the client sent after
     * STARTTLS in the clear is dropped, never read as if it came over TLS. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    struct bufferevent *f = bufferevent_openssl_filter_new(
        s->env->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (f == NULL) {
        SSL_free(ssl);
        close_after_reply(s);
        return;
    }
    s->bev = f;
    s->tls = true;
    s->esmtp = false;
    s->helo[0] = '\0';
    tx_reset(s);
    struct timeval tv = {s->cfg->timeout_command_ms / 1000, (s->cfg->timeout_command_ms % 1000) * 1000};
    bufferevent_set_timeouts(f, &tv, &tv);
    bufferevent_setcb(f, on_read, on_write, on_event, s);
    bufferevent_enable(f, EV_READ | EV_WRITE);
}

/* -- AUTH -- */

static void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    if (!wake(s))
        return;
    reply(s, "535 5.7.8 Authentication credentials invalid");
    process(s);
}

static void auth_done(void *arg, enum auth_result r)
{
    struct session *s = arg;
    if (!wake(s))
        return;
    s->state = ST_CMD;
    if (r == AUTH_OK) {
        s->authed = true;
        atomic_fetch_add(&s->env->stats->auth_ok, 1);
        log_event(LOG_INFO, "auth", "ip", s->ip, "session", s->sid, "result", "ok",
                  "user", s->user, NULL);
        reply(s, "235 2.7.0 Authentication successful");
        carry_on(s);
        return;
    }
    if (r == AUTH_TEMPFAIL) {
        s->user[0] = '\0';
        reply(s, "454 4.7.0 Temporary authentication failure");
        carry_on(s);
        return;
    }
    atomic_fetch_add(&s->env->stats->auth_fail, 1);
    log_event(LOG_INFO, "auth", "ip", s->ip, "session", s->sid, "result", "fail",
              "user", s->user, NULL);
    s->user[0] = '\0';
    offend(s, GUARD_OFFENSE_AUTH);
    /* The tarpit: every 535 waits, whether the user exists or not. */
    s->busy = true;
    int64_t ms = s->cfg->failure_delay_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* Asks the auth backend; the answer comes to auth_done. s->user holds the
 * name meanwhile (and after, if it was right). */
static void auth_check(struct session *s, const char *user, const char *pass)
{
    struct session_env *env = s->env;
    struct auth *a = env->hooks->auth(env->ctx);
    struct addr local = {0};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_from_sockaddr((struct sockaddr *)&ss, &local);
    struct auth_context ctx = {&s->client, &local, auth_secured(s), s->sid};
    util_strlcpy(s->user, user, sizeof s->user);
    s->busy = true;
    s->calling = true;
    a->ops->verify(a, s->cfg, env->pool, env->mb, user, pass, &ctx, auth_done, s);
    s->calling = false;
    auth_unref(a);
}

static void auth_plain(struct session *s, const char *b64)
{
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    s->state = ST_CMD;
    if (!sasl_plain_decode(b64, strlen(b64), user, pass)) {
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    auth_check(s, user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
}

static void cmd_auth(struct session *s, const char *arg)
{
    if (s->authed) {
        reply(s, "503 5.5.1 Already authenticated");
        return;
    }
    if (!s->esmtp) {
        reply(s, "503 5.5.1 Send EHLO first");
        return;
    }
    if (s->tx.active) {
        reply(s, "503 5.5.1 AUTH not allowed during a mail transaction");
        return;
    }
    char mech[32];
    size_t n = strcspn(arg, " ");
    if (n == 0 || n >= sizeof mech) {
        reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return;
    }
    memcpy(mech, arg, n);
    mech[n] = '\0';
    const char *ir = arg[n] == ' ' ? arg + n + 1 : NULL;
    unsigned offered = auth_mechanisms(s);
    bool plain = strcasecmp(mech, "PLAIN") == 0 && (offered & AUTH_MECH_PLAIN);
    bool login = strcasecmp(mech, "LOGIN") == 0 && (offered & AUTH_MECH_LOGIN);
    if (!plain && !login) {
        reply(s, "504 5.5.4 Unrecognized authentication mechanism");
        return;
    }
    if (!auth_allowed(s)) {
        reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    if (ir != NULL && strcmp(ir, "=") == 0)
        ir = "";      /* RFC 4954 §4: "=" is an empty initial response */
    if (plain) {
        if (ir == NULL) {
            s->state = ST_AUTH_PLAIN;
            reply(s, "334 ");
        } else {
            auth_plain(s, ir);
        }
        return;
    }
    if (ir == NULL) {
        s->state = ST_AUTH_USER;
        reply(s, "334 VXNlcm5hbWU6");   /* "Username:" */
        return;
    }
    if (!sasl_login_decode(ir, strlen(ir), s->user, sizeof s->user)) {
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    s->state = ST_AUTH_PASS;
    reply(s, "334 UGFzc3dvcmQ6");       /* "Password:" */
}

static void auth_response(struct session *s, const char *line)
{
    if (sasl_is_cancel(line)) {
        s->state = ST_CMD;
        s->user[0] = '\0';
        reply(s, "501 5.0.0 Authentication cancelled");
        return;
    }
    if (s->state == ST_AUTH_PLAIN) {
        auth_plain(s, line);
        return;
    }
    if (s->state == ST_AUTH_USER) {
        if (!sasl_login_decode(line, strlen(line), s->user, sizeof s->user)) {
            s->state = ST_CMD;
            reply(s, "501 5.5.2 Cannot decode response");
            return;
        }
        s->state = ST_AUTH_PASS;
        reply(s, "334 UGFzc3dvcmQ6");
        return;
    }
    char pass[SASL_PASS_MAX];
    s->state = ST_CMD;
    if (!sasl_login_decode(line, strlen(line), pass, sizeof pass)) {
        s->user[0] = '\0';
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    char user[SASL_USER_MAX];
    util_strlcpy(user, s->user, sizeof user);
    s->user[0] = '\0';
    auth_check(s, user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
}

/* -- the transaction -- */

static const char *protocol(const struct session *s)
{
    /* RFC 3848 */
    if (!s->esmtp)
        return "SMTP";
    return s->tls ? (s->authed ? "ESMTPSA" : "ESMTPS") : (s->authed ? "ESMTPA" : "ESMTP");
}

/* The backend drained what made it hold the message: read on. */
static void data_resume(void *arg)
{
    struct session *s = arg;
    s->held = false;
    carry_on(s);
}

static void cmd_mail(struct session *s, const char *arg)
{
    if (s->helo[0] == '\0') {
        reply(s, "503 5.5.1 Send HELO/EHLO first");
        return;
    }
    if (s->tx.active) {
        reply(s, "503 5.5.1 Nested MAIL command");
        return;
    }
    if (!s->authed) {
        atomic_fetch_add(&s->env->stats->unauth_mail, 1);
        reply(s, "530 5.7.0 Authentication required");
        offend(s, GUARD_OFFENSE_UNAUTH);
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
        reply(s, "552 5.3.4 Message size exceeds fixed maximum message size");
        return;
    }
    util_new_id(t->id);
    struct deliver_envelope e = {
        .queue_id = t->id, .session = s->sid, .sender = t->mail.path, .client = &s->client,
        .client_port = s->port, .client_name = s->rdns_name, .helo = s->helo, .user = s->user, .proto = protocol(s),
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
    if (!s->tx.active) {
        reply(s, "503 5.5.1 Need MAIL command");
        return;
    }
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

/* reverse_dns: the client's name is looked up when the dialogue starts
 * (not for a proxy's own health check), and the Received: header then says
 * the name or "unknown". */
static bool wants_name(const struct session *s)
{
    return s->cfg->reverse_dns && !s->proxy_local;
}

/* Our Received: header (SPEC §3), the first lines the backend gets. */
static size_t received(struct session *s, char *out, size_t outlen)
{
    char date[64], tlsinfo[160] = "";
    util_rfc5322_date(util_now_ms(), date, sizeof date);
    if (s->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
        if (ssl != NULL)
            tls_describe(ssl, tlsinfo, sizeof tlsinfo);
    }
    /* RFC 5321 §4.4 TCP-info, Postfix style: the name only when confirmed
     * forward, "unknown" when looked up (or still looking: the message
     * never waits for DNS). */
    const char *name = !wants_name(s) ? NULL : s->rdns_name != NULL ? s->rdns_name : "unknown";
    int n = snprintf(out, outlen, "Received: from %s (%s%s[%s])\n\tby %s (Portcullis) with %s id %s"
                     "%s%s%s" "%s%s%s" ";\n\t%s\n",
                     s->helo, name != NULL ? name : "", name != NULL ? " " : "", s->ip,
                     s->cfg->hostname, protocol(s), s->tx.id,
                     tlsinfo[0] ? "\n\t(using " : "", tlsinfo, tlsinfo[0] ? ")" : "",
                     s->authed ? "\n\t(authenticated user " : "", s->authed ? s->user : "",
                     s->authed ? ")" : "", date);
    return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
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
    if (*arg != '\0') {
        reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (!s->tx.active) {
        reply(s, "503 5.5.1 Need MAIL command");
        return;
    }
    if (s->tx.nrcpt == 0) {
        reply(s, "503 5.5.1 Need RCPT command");
        return;
    }
    char head[2048];
    size_t n = received(s, head, sizeof head);
    if (n == 0) {
        tx_reset(s);
        reply(s, "451 4.3.0 Local error in processing, try again later");
        return;
    }
    smtp_data_init(&s->tx.data, (uint64_t)s->cfg->max_message_size, data_emit, s);
    data_emit(s, head, n);
    s->state = ST_DATA;
    struct timeval tv = {s->cfg->timeout_data_ms / 1000, (s->cfg->timeout_data_ms % 1000) * 1000};
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void data_done(void *arg, const struct deliver_reply *r)
{
    struct session *s = arg;
    struct tx *t = &s->tx;
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
    s->state = ST_CMD;
    struct timeval tv = {s->cfg->timeout_command_ms / 1000, (s->cfg->timeout_command_ms % 1000) * 1000};
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    const char *refused = NULL;
    switch (s->tx.data.error) {
    case SMTP_DATA_TOO_BIG:
        refused = "552 5.3.4 Message size exceeds fixed maximum message size";
        break;
    case SMTP_DATA_LINE_TOO_LONG:
        refused = "550 5.6.0 Message line too long (1000 octets at most)";
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
    s->held = false;
    s->busy = true;
    s->calling = true;
    s->env->deliver->ops->end(dtx, data_done, s);
    s->calling = false;
}

/* Feeds what has arrived of the message; false when it needs more, or
 * when the backend holds us back. */
static bool feed_data(struct session *s)
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
/* -- the rest -- */

static void cmd_simple(struct session *s, enum smtp_verb v, const char *arg)
{
    switch (v) {
    case SMTP_RSET:
        tx_reset(s);
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_NOOP:
        reply(s, "250 2.0.0 Ok");
        break;
    case SMTP_VRFY:
        reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case SMTP_HELP:
        reply(s, "214 2.0.0 See RFC 5321; this is Portcullis, a submission server");
        break;
    case SMTP_QUIT:
        reply(s, "221 2.0.0 %s closing connection", s->cfg->hostname);
        close_after_reply(s);
        break;
    default:
        (void)arg;
        break;
    }
}

static void bad_command(struct session *s, const char *text)
{
    reply(s, "%s", text);
    if (++s->errors >= ERRORS_MAX) {
        reply(s, "421 4.7.0 %s Too many errors, closing connection", s->cfg->hostname);
        hang_up(s);
    }
}

/* A blocked client's whole dialogue: 503 to everything, 221 to QUIT. */
static const char *reject_answer(const char *line)
{
    if (strncasecmp(line, "QUIT", 4) == 0 && (line[4] == '\0' || line[4] == ' '))
        return "221 2.0.0 Bye";
    return "503 5.5.1 Bad sequence of commands";
}

static void handle_line(struct session *s, const char *line)
{
    if (s->state == ST_REJECTED) {
        const char *a = reject_answer(line);
        reply(s, "%s", a);
        if (a[0] == '2' || ++s->errors >= ERRORS_MAX)
            close_after_reply(s);
        return;
    }
    if (blocked_now(s)) {
        log_event(LOG_INFO, "reject", "ip", s->ip, "session", s->sid, "reason", "blocked_session",
                  "reply", "421", NULL);
        reply(s, "421 4.7.0 %s %s", s->cfg->hostname, s->cfg->reject_text);
        hang_up(s);
        return;
    }
    if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER || s->state == ST_AUTH_PASS) {
        auth_response(s, line);
        return;
    }
    if (atomic_load(s->env->stopping) && !s->tx.active) {
        reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
        hang_up(s);
        return;
    }
    struct smtp_cmd cmd;
    smtp_parse_command(line, &cmd);
    switch (cmd.verb) {
    case SMTP_EHLO:     cmd_helo(s, cmd.arg, true); break;
    case SMTP_HELO:     cmd_helo(s, cmd.arg, false); break;
    case SMTP_STARTTLS: cmd_starttls(s, cmd.arg); break;
    case SMTP_AUTH:     cmd_auth(s, cmd.arg); break;
    case SMTP_MAIL:     cmd_mail(s, cmd.arg); break;
    case SMTP_RCPT:     cmd_rcpt(s, cmd.arg); break;
    case SMTP_DATA:     cmd_data(s, cmd.arg); break;
    case SMTP_RSET: case SMTP_NOOP: case SMTP_VRFY: case SMTP_HELP: case SMTP_QUIT:
        cmd_simple(s, cmd.verb, cmd.arg);
        break;
    case SMTP_UNKNOWN:
        bad_command(s, "500 5.5.2 Command unrecognized");
        break;
    }
}

/* ---- reading --------------------------------------------------------- */

static size_t line_limit(struct session *s, struct evbuffer *in)
{
    if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER || s->state == ST_AUTH_PASS)
        return SMTP_AUTH_LINE_MAX;
    unsigned char *p = evbuffer_pullup(in, 5);
    return p != NULL && strncasecmp((const char *)p, "AUTH ", 5) == 0 ? SMTP_AUTH_LINE_MAX
                                                                       : SMTP_LINE_MAX;
}

/* 1: a line is in buf; 0: need more input; -1: a line was refused (and
 * answered), go on. */
static int read_line(struct session *s, char *buf, size_t buflen)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t eol;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF);
    size_t limit = line_limit(s, in);
    if (p.pos < 0) {
        size_t len = evbuffer_get_length(in);
        /* `limit` counts the CRLF: limit-1 octets may still be a line
         * whose LF is on its way. */
        if (len >= limit) {
            /* Drop what we have and the rest of this line when it comes. */
            evbuffer_drain(in, len);
            if (!s->discard_line)
                bad_command(s, "500 5.5.2 Line too long");
            s->discard_line = true;
        }
        return 0;
    }
    size_t n = (size_t)p.pos;
    if (s->discard_line || n + 2 > limit || n >= buflen) {
        evbuffer_drain(in, n + eol);
        if (!s->discard_line)
            bad_command(s, "500 5.5.2 Line too long");
        s->discard_line = false;
        /* The 500 ends an AUTH exchange too: the next line is a command. */
        if (s->state == ST_AUTH_PLAIN || s->state == ST_AUTH_USER || s->state == ST_AUTH_PASS) {
            s->state = ST_CMD;
            s->user[0] = '\0';
        }
        return -1;
    }
    evbuffer_remove(in, buf, n);
    evbuffer_drain(in, eol);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        bad_command(s, "500 5.5.2 NUL character in command");
        return -1;
    }
    return 1;
}

static void start_dialogue(struct session *s);

/* The PROXY header: the real client's address comes first. */
static bool read_proxy(struct session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->bev);
    size_t len = evbuffer_get_length(in);
    if (len > PROXY_MAX_HEADER)
        len = PROXY_MAX_HEADER;
    const uint8_t *p = evbuffer_pullup(in, (ssize_t)len);
    struct proxy_result r;
    enum proxy_status st = proxy_parse(p, len, &r);
    if (st == PROXY_NEED_MORE)
        return false;
    if (st == PROXY_INVALID) {
        atomic_fetch_add(&s->env->stats->proxy_errors, 1);
        log_event(LOG_WARN, "proxy_error", "peer", s->ip, "session", s->sid, NULL);
        close_after_reply(s);
        return false;
    }
    evbuffer_drain(in, r.len);
    if (r.local) {
        /* The proxy speaking for itself (health check): never counted. */
        s->allowed = true;
        s->proxy_local = true;
    } else {
        s->client = r.src;
        addr_format(&s->client, false, s->ip);
    }
    start_dialogue(s);
    return true;
}

static void process(struct session *s)
{
    char line[SMTP_AUTH_LINE_MAX + 1];
    while (!s->busy && !s->closing) {
        if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_MAX)
            break;    /* on_write resumes us once the client reads */
        if (s->state == ST_PROXY) {
            if (!read_proxy(s))
                break;
            continue;
        }
        if (s->state == ST_DATA) {
            if (!feed_data(s))
                break;
            continue;
        }
        int r = read_line(s, line, sizeof line);
        if (r == 0)
            break;
        if (r > 0)
            handle_line(s, line);
    }
    if (s->closing)
        finish(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct session *s = arg;
    if (s->closing)
        finish(s);
    else
        process(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct session *s = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;   /* TLS handshake done */
    if ((what & BEV_EVENT_TIMEOUT) && !s->closing && s->state != ST_PROXY) {
        reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
        log_event(LOG_INFO, "timeout", "ip", s->ip, "session", s->sid, NULL);
        hang_up(s);
        bufferevent_set_timeouts(s->bev, NULL, NULL);
        struct timeval tv = {5, 0};
        bufferevent_set_timeouts(s->bev, NULL, &tv);
        finish(s);
        return;
    }
    /* EOF, error, or a timeout while closing: nothing more to say. */
    s->closing = true;
    s->peer_gone = true;
    if (s->busy) {
        s->dead = true;
        return;
    }
    session_free(s);
}

/* ---- accepting --------------------------------------------------------- */

/* A blocked client before any session exists: the 554, then a tiny state
 * that answers 503 to everything but QUIT for 10 s (RFC 5321 §3.1). No
 * session object, no buffer, no log line of its own. */
struct rejected {
    TAILQ_ENTRY(rejected) link;  /* on w->rejected or w->lingering, oldest first */
    struct session_env *env;
    int fd;
    int64_t deadline;
    uint16_t col;          /* column in the current line */
    uint8_t quit;          /* how much of "QUIT" the line matched */
    uint8_t errors;
    bool draining;         /* we said our last word: only read until EOF */
};

#define LINGER_MS 2000

/*
 * These connections wait in a worker's own epoll set (w->repoll), which
 * libevent watches as one descriptor. Per connection that costs one
 * epoll_ctl(ADD); close() takes the descriptor out of the set by itself,
 * where a libevent event per connection would also cost an
 * epoll_ctl(DEL) and a timer. Their deadlines need no timer each: every
 * entry of a list has the same lifetime, so each list is in deadline order
 * and a tick reaps from its head.
 */
static void rejected_free(struct rejected *r)
{
    TAILQ_REMOVE(r->draining ? &r->env->lingering : &r->env->rejected, r, link);
    close(r->fd);
    atomic_fetch_sub(r->env->clients, 1);
    free(r);
}

static void rejected_drain(struct rejected *r)
{
    TAILQ_REMOVE(&r->env->rejected, r, link);
    shutdown(r->fd, SHUT_WR);
    r->draining = true;
    r->deadline = util_mono_ms() + LINGER_MS;
    TAILQ_INSERT_TAIL(&r->env->lingering, r, link);
}

static void rejected_read(struct rejected *r)
{
    char buf[512];
    ssize_t n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        rejected_free(r);
        return;
    }
    if (r->draining)
        return;
    static const char q[] = "QUIT";
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            bool quit = r->quit == 4 && r->col <= 6;
            const char *a = quit ? "221 2.0.0 Bye\r\n" : "503 5.5.1 Bad sequence of commands\r\n";
            /* A QUIT that ends what the client sent: the 221 is corked
             * (MSG_MORE) so that close() sends it and the FIN in one
             * segment. With bytes behind the QUIT (or maybe behind: a full
             * buffer), close() would answer them with a RST that discards
             * the 221, so it leaves at once and the rest is drained. */
            bool last = quit && i + 1 == n && (size_t)n < sizeof buf;
            if (send(r->fd, a, strlen(a), MSG_NOSIGNAL | MSG_DONTWAIT | (last ? MSG_MORE : 0)) < 0 ||
                last) {
                rejected_free(r);
                return;
            }
            if (quit || ++r->errors >= ERRORS_MAX) {
                rejected_drain(r);
                return;
            }
            r->col = 0;
            r->quit = 0;
            continue;
        }
        if (r->col < 4 && r->quit == r->col && toupper((unsigned char)ch) == q[r->col])
            r->quit++;
        if (r->col < UINT16_MAX)
            r->col++;
    }
}

void session_rejected_ready(struct session_env *w)
{
    struct epoll_event ev[64];
    int n = epoll_wait(w->repoll, ev, 64, 0);
    for (int i = 0; i < n; i++)
        rejected_read(ev[i].data.ptr);
}

void session_rejected_reap(struct session_env *w)
{
    int64_t now = util_mono_ms();
    struct rejected *r;
    while ((r = TAILQ_FIRST(&w->rejected)) != NULL && r->deadline <= now)
        rejected_free(r);
    while ((r = TAILQ_FIRST(&w->lingering)) != NULL && r->deadline <= now)
        rejected_free(r);
}

static struct rejected *rejected_new(struct session_env *w, evutil_socket_t fd, bool draining)
{
    struct rejected *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->env = w;
    r->fd = fd;
    r->draining = draining;
    r->deadline = util_mono_ms() + (draining ? LINGER_MS : REJECT_LINGER_MS);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = r};
    if (epoll_ctl(w->repoll, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(r);
        return NULL;
    }
    TAILQ_INSERT_TAIL(draining ? &w->lingering : &w->rejected, r, link);
    return r;
}

static void linger_fd(struct session_env *w, evutil_socket_t fd)
{
    shutdown(fd, SHUT_WR);
    if (rejected_new(w, fd, true) == NULL) {
        close(fd);
        atomic_fetch_sub(w->clients, 1);
    }
}

static void session_reject_fd(struct session_env *w, evutil_socket_t fd, const char *line, size_t len)
{
    /* The greeting fits any socket buffer; a client that cannot take it
     * loses nothing worth keeping. Delayed ACKs from the start: the kernel
     * would otherwise ACK the client's QUIT in a segment of its own, just
     * before the 221 that can carry that ACK. */
    int off = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &off, sizeof off);
    if (send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 || rejected_new(w, fd, false) == NULL) {
        close(fd);
        atomic_fetch_sub(w->clients, 1);
    }
}

/* The once-a-minute line for a blocked prefix's 554s (guard_reject_note
 * decides when; n is 0 in between). */
static void log_rejects(uint32_t n, const struct addr *prefix)
{
    if (n == 0)
        return;
    char p[ADDR_STRLEN], cnt[16];
    addr_format(prefix, true, p);
    snprintf(cnt, sizeof cnt, "%u", n);
    log_event(LOG_INFO, "reject", "ip", p, "count", cnt, "reason", "blocked", NULL);
}

/* ---- reverse DNS ---------------------------------------------------------- */

static void on_rdns_answer(void *arg, const char *name, const char *why, const char *ptr)
{
    struct session *s = arg;
    s->rdns = NULL;
    if (name != NULL)
        s->rdns_name = strdup(name);   /* out of memory: "unknown" */
    log_event(LOG_INFO, "rdns", "ip", s->ip, "session", s->sid, "name", name ? name : "unknown",
              "why", why, "ptr", name == NULL ? ptr : NULL, NULL);
}

/* Runs beside the dialogue: the greeting does not wait for it. */
static void look_up_name(struct session *s)
{
    if (s->env->dns != NULL)
        s->rdns = rdns_start(s->env->dns, s->env->base, &s->client, on_rdns_answer, s);
    if (s->rdns == NULL)
        log_event(LOG_INFO, "rdns", "ip", s->ip, "session", s->sid, "name", "unknown",
                  "why", "error", NULL);
}

/* The guard's word on this client, then the greeting. */
static void start_dialogue(struct session *s)
{
    struct session_env *env = s->env;
    const struct config *c = s->cfg;
    int64_t now = util_now_ms();
    enum guard_verdict v = GUARD_ACCEPT_ALLOWED;
    if (!s->allowed) {
        struct guard_block made;
        bool did_block;
        v = guard_connect(env->guard, c, &s->client, now, &made, &did_block);
        if (did_block)
            env->hooks->block_made(env->ctx, &made, s->sid);
    }
    s->allowed = v == GUARD_ACCEPT_ALLOWED;
    s->counted = v == GUARD_ACCEPT;
    s->epoch = guard_epoch(env->guard);
    if (v == GUARD_REJECT_BLOCKED || v == GUARD_REJECT_CONCURRENCY) {
        atomic_fetch_add(v == GUARD_REJECT_BLOCKED ? &env->stats->rejected_blocked
                                                   : &env->stats->rejected_concurrency, 1);
        if (v == GUARD_REJECT_BLOCKED) {
            struct addr prefix;
            uint32_t n = guard_reject_note(env->guard, &s->client, now, &prefix);
            log_rejects(n, &prefix);
        } else {
            log_event(LOG_INFO, "reject", "ip", s->ip, "session", s->sid, "reason",
                      "concurrency", NULL);
        }
        s->state = ST_REJECTED;
        s->allowed = true;     /* no 421 on top of the 554 */
        reply(s, "%.*s", (int)c->reject_line_len - 2, c->reject_line);   /* without its CRLF */
        struct timeval tv = {REJECT_LINGER_MS / 1000, 0};
        bufferevent_set_timeouts(s->bev, &tv, &tv);
        return;
    }
    atomic_fetch_add(&env->stats->accepted, 1);
    if (s->counted)
        env->hooks->count(env->ctx, c, &s->client, GUARD_CONN_RATE);
    log_event(LOG_INFO, "connect", "ip", s->ip, "session", s->sid,
              "tls", s->mode == LISTEN_TLS ? "yes" : NULL, NULL);
    if (s->mode == LISTEN_TLS) {
        SSL_CTX *ctx = env->hooks->tls(env->ctx);
        SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        if (ctx)
            SSL_CTX_free(ctx);
        struct bufferevent *f = ssl ? bufferevent_openssl_filter_new(
            s->env->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
        if (f == NULL) {
            if (ssl)
                SSL_free(ssl);
            close_after_reply(s);
            return;
        }
        s->bev = f;
        s->tls = true;
        bufferevent_setcb(f, on_read, on_write, on_event, s);
        bufferevent_enable(f, EV_READ | EV_WRITE);
    }
    s->state = ST_CMD;
    struct timeval tv = {c->timeout_command_ms / 1000, (c->timeout_command_ms % 1000) * 1000};
    bufferevent_set_timeouts(s->bev, &tv, &tv);
    if (wants_name(s))
        look_up_name(s);
    reply(s, "220 %s ESMTP Portcullis", c->hostname);
}

void session_accept(struct session_env *w, struct config *c, evutil_socket_t fd,
                    const struct sockaddr *sa, enum listen_mode mode)
{
    struct addr peer;
    if (!addr_from_sockaddr(sa, &peer)) {
        config_unref(c);
        close(fd);
        atomic_fetch_sub(w->clients, 1);
        return;
    }
    int64_t now = util_now_ms();
    /* The fast path for a blocked address: no session at all. */
    uint32_t n;
    struct addr prefix;
    if (!c->proxy_protocol && !cidr_list_match(&c->allow, &peer) &&
        guard_check_reject(w->guard, &peer, now, &n, &prefix)) {
        atomic_fetch_add(&w->stats->rejected_blocked, 1);
        log_rejects(n, &prefix);
        session_reject_fd(w, fd, c->reject_line, c->reject_line_len);
        config_unref(c);
        return;
    }
    if (c->proxy_protocol && !cidr_list_match(&c->proxy_from, &peer)) {
        atomic_fetch_add(&w->stats->proxy_errors, 1);
        config_unref(c);
        close(fd);
        atomic_fetch_sub(w->clients, 1);
        return;
    }
    struct session *s = calloc(1, sizeof *s);
    struct bufferevent *bev = s ? bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    struct event *timer = bev ? evtimer_new(w->base, auth_fail_reply, s) : NULL;
    if (timer == NULL) {
        if (bev)
            bufferevent_free(bev);
        else
            close(fd);
        free(s);
        config_unref(c);
        atomic_fetch_sub(w->clients, 1);
        return;
    }
    s->env = w;
    s->cfg = c;
    s->bev = bev;
    s->fd = fd;
    s->mode = mode;
    s->timer = timer;
    s->peer = s->client = peer;
    s->port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                             : ((const struct sockaddr_in *)sa)->sin_port);
    addr_format(&peer, false, s->ip);
    util_new_id(s->sid);
    TAILQ_INSERT_TAIL(&w->sessions, s, link);
    atomic_fetch_add(&w->stats->connections, 1);
    /* Reading stops at this much unprocessed input: TCP pushes back. */
    bufferevent_setwatermark(bev, EV_READ, 0, SMTP_AUTH_LINE_MAX * 2);
    bufferevent_setcb(bev, on_read, on_write, on_event, s);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (c->proxy_protocol) {
        s->state = ST_PROXY;
        struct timeval tv = {10, 0};
        bufferevent_set_timeouts(bev, &tv, &tv);
        return;
    }
    start_dialogue(s);
}

void session_close_idle(struct session_env *w)
{
    struct session *s, *next;
    for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->busy || s->tx.active || s->closing)
            continue;
        if (s->state == ST_CMD)
            reply(s, "421 4.3.2 %s Service shutting down", s->cfg->hostname);
        close_after_reply(s);
        finish(s);
    }
}

void session_drop_all(struct session_env *w)
{
    struct session *s;
    while ((s = TAILQ_FIRST(&w->sessions)) != NULL)
        session_free(s);
    struct rejected *r;
    while ((r = TAILQ_FIRST(&w->rejected)) != NULL)
        rejected_free(r);
    while ((r = TAILQ_FIRST(&w->lingering)) != NULL)
        rejected_free(r);
}
