#include "deliver/relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "base/log.h"
#include "base/util.h"
#include "proto/relay_reply.h"
#include "proto/smtp_parse.h"

/* Idle connections kept per worker, and how long one may wait: well under
 * Postfix's smtpd_timeout (300 s), so we close before it does. */
#define IDLE_MAX 4
#define IDLE_MS 30000
/* The body is queued up to HIGH octets, then the session pauses until the
 * next hop has read it down to LOW: memory per session stays bounded. */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW (64 * 1024)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000

enum cstate {
    C_CONNECTING, C_GREETING, C_EHLO, C_STARTTLS, C_HANDSHAKE, C_EHLO_TLS,
    C_READY,        /* between commands: the transaction decides the next */
    C_XFORWARD, C_MAIL, C_RCPT, C_DATA, C_BODY, C_DOT,
    C_RSET,         /* back from a transaction, on the idle list, RSET not answered yet */
    C_IDLE,
};

struct conn {
    TAILQ_ENTRY(conn) link;        /* the idle list */
    struct relay *r;
    struct relay_tx *tx;
    struct bufferevent *bev;
    enum cstate state;
    struct relay_reply reply;
    unsigned ext, xforward;
    bool at_bol;                   /* the body: at the start of a line */
    bool parked;                   /* on the relay's idle list */
    bool dirty;                    /* XFORWARD or MAIL sent, transaction not over */
    /* The replies due, in order: more than one only when XFORWARD, MAIL
     * and the first RCPT go out together (PIPELINING, RFC 2920). */
    enum cstate due[4];
    int ndue;
    int xf_sent;                   /* XFORWARD commands of this transaction sent */
};
TAILQ_HEAD(conn_list, conn);

struct relay {
    struct event_base *base;
    struct relay_conf conf;
    bool lmtp, unix_socket;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[ADDR_STRLEN];        /* for the certificate check */
    SSL_CTX *ssl;
    struct conn_list idle;
    int nidle;
    int64_t retry_at, backoff_ms;  /* reconnect backoff after a failure */
};

enum op { OP_NONE, OP_RCPT, OP_DATA, OP_END };

struct relay_tx {
    struct relay *r;
    struct conn *c;
    char *id, *from, *addr, *name, *helo;
    struct relay_mail mail;
    struct relay_client client;
    relay_answer_cb cb;
    relay_writable_cb wcb;
    void *arg;
    struct event *answer_ev;       /* delivers `ans` from the loop */
    struct relay_answer ans;
    enum op op;
    char rcpt[SMTP_PATH_MAX + 1];
    bool mail_done, data_open, retried, want_write;
    int accepted;                  /* recipients the next hop took */
    struct relay_answer failed;    /* once set (code != 0): every later step gets it */
};

/* One log line per outage, whichever worker sees it first. */
static atomic_bool relay_down;

static void conn_free(struct conn *c);
static void conn_fail(struct conn *c, const char *why);
static void advance(struct conn *c);
static void start_conn(struct relay_tx *t);

/* ---- answers ---------------------------------------------------------- */

static void set_answer(struct relay_answer *a, enum relay_step step, int code, const char *enh,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void set_answer(struct relay_answer *a, enum relay_step step, int code, const char *enh,
                       const char *fmt, ...)
{
    memset(a, 0, sizeof *a);
    a->step = step;
    a->code = code;
    util_strlcpy(a->enh, enh, sizeof a->enh);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->text, sizeof a->text, fmt, ap);
    va_end(ap);
}

static enum relay_step op_step(enum op op)
{
    return op == OP_RCPT ? RELAY_STEP_RCPT : op == OP_DATA ? RELAY_STEP_DATA : RELAY_STEP_END;
}

static void answer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct relay_tx *t = arg;
    struct relay_answer a = t->ans;
    t->cb(t->arg, &a);
}

/* Answers the step in progress, from the loop, never from inside the call. */
static void answer(struct relay_tx *t, const struct relay_answer *a)
{
    t->ans = *a;
    t->ans.step = op_step(t->op);
    t->op = OP_NONE;
    event_active(t->answer_ev, 0, 0);
}

/* The transaction can go no further: this step and every later one get `a`. */
static void tx_fail(struct relay_tx *t, const struct relay_answer *a)
{
    t->failed = *a;
    if (t->op != OP_NONE)
        answer(t, a);
}

/* ---- the wire ----------------------------------------------------------- */

static void send_line(struct conn *c, enum cstate next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void send_line(struct conn *c, enum cstate next, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
    if (c->ndue < (int)ARRAY_LEN(c->due))
        c->due[c->ndue++] = next;
    c->state = c->due[0];
}

static void set_timeouts(struct conn *c, int64_t read_ms)
{
    int64_t w = c->r->conf.timeout_ms;
    struct timeval rt = {read_ms / 1000, (read_ms % 1000) * 1000};
    struct timeval wt = {w / 1000, (w % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, read_ms > 0 ? &rt : NULL, &wt);
}

/* XFORWARD (relay_xforward_lines): one command, or two when the HELO name
 * makes one too long. xf_sent counts those sent in this transaction;
 * false when there is nothing (more) to send. */
static bool send_xforward(struct conn *c)
{
    struct relay_tx *t = c->tx;
    struct relay_xforward x = {
        .addr = t->client.addr, .port = t->client.port,
        .proto = t->client.esmtp ? "ESMTP" : "SMTP", .ident = t->id,
        .name = t->client.name != NULL ? t->client.name : "[UNAVAILABLE]",
        .helo = t->client.helo,
    };
    char line[2][RELAY_XFORWARD_MAX];
    int n = relay_xforward_lines(c->xforward, &x, line[0], line[1]);
    if (c->xf_sent >= n)
        return false;
    c->dirty = true;
    send_line(c, C_XFORWARD, "%s", line[c->xf_sent++]);
    return true;
}

static void send_mail(struct conn *c)
{
    const struct relay_mail *m = &c->tx->mail;
    char params[96] = "";
    size_t n = 0;
    if ((c->ext & RELAY_EXT_SIZE) && m->size > 0)
        n += (size_t)snprintf(params + n, sizeof params - n, " SIZE=%llu",
                              (unsigned long long)m->size);
    if ((c->ext & RELAY_EXT_8BITMIME) && m->eightbit)
        n += (size_t)snprintf(params + n, sizeof params - n, " BODY=8BITMIME");
    if ((c->ext & RELAY_EXT_SMTPUTF8) && m->smtputf8)
        snprintf(params + n, sizeof params - n, " SMTPUTF8");
    c->dirty = true;
    send_line(c, C_MAIL, "MAIL FROM:<%s>%s", m->from, params);
}

/* Sends what the transaction waits for next, if the connection is free. */
static void advance(struct conn *c)
{
    struct relay_tx *t = c->tx;
    if (t == NULL || c->state != C_READY)
        return;
    if (t->failed.code != 0) {
        set_timeouts(c, 0);      /* nothing more to ask: RSET when it is freed */
        return;
    }
    set_timeouts(c, c->r->conf.timeout_ms);
    if (!t->mail_done) {
        /* With PIPELINING the first RCPT goes with MAIL and XFORWARD: one
         * round trip instead of up to four. */
        bool pipe = (c->ext & RELAY_EXT_PIPELINING) && t->op == OP_RCPT;
        if (c->r->conf.forward && (c->ext & RELAY_EXT_XFORWARD))
            while (send_xforward(c))
                if (!pipe)
                    return;
        send_mail(c);
        if (pipe)
            send_line(c, C_RCPT, "RCPT TO:<%s>", t->rcpt);
        return;
    }
    switch (t->op) {
    case OP_RCPT:
        send_line(c, C_RCPT, "RCPT TO:<%s>", t->rcpt);
        break;
    case OP_DATA:
        send_line(c, C_DATA, "DATA");
        break;
    case OP_END:
        break;      /* only from C_BODY */
    case OP_NONE:
        set_timeouts(c, 0);
        break;
    }
}

/* ---- replies ------------------------------------------------------------ */

/* A refusal passed back with its code and enhanced code (SPEC §7). */
static void pass_back(struct relay_answer *a, enum relay_step step, const struct relay_reply *rp,
                      const char *what)
{
    const char *enh = rp->enh[0] ? rp->enh : rp->code >= 500 ? "5.0.0" : "4.0.0";
    set_answer(a, step, rp->code, enh, "%s: %s", what, rp->text);
}

/* The tx's step after a complete reply in state `st`. */
static void tx_reply(struct conn *c, enum cstate st, const struct relay_reply *rp)
{
    struct relay_tx *t = c->tx;
    struct relay_answer a;
    int cls = rp->code / 100;
    switch (st) {
    case C_XFORWARD:
        if (cls != 2) {
            /* Not authorized for XFORWARD: say so once in the log, send on without it. */
            log_event(LOG_WARN, "relay_xforward_refused", "reply", rp->text, NULL);
            c->xforward = 0;
            c->xf_sent = 2;     /* nothing more of it in this transaction */
        }
        c->state = C_READY;
        break;
    case C_MAIL:
        c->state = C_READY;
        if (cls == 2) {
            t->mail_done = true;
        } else {
            pass_back(&a, op_step(t->op), rp, "Sender refused by the next hop");
            tx_fail(t, &a);
        }
        break;
    case C_RCPT:
        c->state = C_READY;
        if (t->op != OP_RCPT)
            break;      /* pipelined after a MAIL that failed: answered already */
        if (cls == 2) {
            t->accepted++;
            set_answer(&a, RELAY_STEP_RCPT, 250, "2.1.5", "Ok");
        } else {
            pass_back(&a, RELAY_STEP_RCPT, rp, "Recipient refused by the next hop");
        }
        answer(t, &a);
        break;
    case C_DATA:
        if (rp->code == 354) {
            c->state = C_BODY;
            c->at_bol = true;
            t->data_open = true;
            set_timeouts(c, 0);      /* no reply is due while the body flows */
            set_answer(&a, RELAY_STEP_DATA, 354, "", "End data with <CR><LF>.<CR><LF>");
            answer(t, &a);
            return;
        }
        c->state = C_READY;
        if (cls == 4)
            set_answer(&a, RELAY_STEP_DATA, 451, "4.3.0", "Next hop: %s", rp->text);
        else
            pass_back(&a, RELAY_STEP_DATA, rp, "Next hop refused the message");
        tx_fail(t, &a);
        break;
    case C_DOT:
        c->state = C_READY;
        c->dirty = false;       /* the reply to the dot ends the transaction */
        if (cls == 2) {
            set_answer(&a, RELAY_STEP_END, 250, "2.0.0", "Ok: queued as %s", t->id);
            relay_queue_id(rp->text, a.their_id, sizeof a.their_id);
        } else if (cls == 4) {
            set_answer(&a, RELAY_STEP_END, 451, "4.3.0", "Next hop: %s", rp->text);
        } else {
            set_answer(&a, RELAY_STEP_END, 554, rp->enh[0] ? rp->enh : "5.0.0",
                       "Next hop refused the message: %s", rp->text);
        }
        t->failed = a;   /* the transaction is over either way */
        t->failed.code = a.code == 250 ? 503 : a.code;
        answer(t, &a);
        break;
    default:
        break;
    }
    if (c->ndue > 0)
        c->state = c->due[0];   /* more replies of a pipelined group to come */
    else
        advance(c);
}

/* A complete reply during the connection's set-up. False when the
 * connection was given up (and freed). */
static bool setup_reply(struct conn *c, const struct relay_reply *rp)
{
    struct relay *r = c->r;
    const char *greet = r->lmtp ? "LHLO" : "EHLO";
    switch (c->state) {
    case C_GREETING:
        if (rp->code != 220)
            return conn_fail(c, "greeting refused"), false;
        send_line(c, C_EHLO, "%s %s", greet, r->conf.hostname);
        return true;
    case C_EHLO:
    case C_EHLO_TLS:
        if (rp->code / 100 != 2)
            return conn_fail(c, r->lmtp ? "LHLO refused" : "EHLO refused"), false;
        c->ext = rp->ext;
        c->xforward = rp->xforward;
        if (c->state == C_EHLO && r->conf.tls != RELAY_TLS_NONE &&
            (rp->ext & RELAY_EXT_STARTTLS)) {
            send_line(c, C_STARTTLS, "STARTTLS");
            return true;
        }
        if (c->state == C_EHLO && r->conf.tls >= RELAY_TLS_ENCRYPT)
            return conn_fail(c, "TLS is required but the next hop does not offer STARTTLS"), false;
        if (atomic_exchange(&relay_down, false))
            log_event(LOG_INFO, "relay_up", "relay", r->conf.relay, NULL);
        r->backoff_ms = 0;
        r->retry_at = 0;
        c->state = C_READY;
        advance(c);
        return true;
    default:
        return true;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);

static void start_tls(struct conn *c)
{
    struct relay *r = c->r;
    SSL *ssl = SSL_new(r->ssl);
    if (ssl == NULL)
        return conn_fail(c, "cannot create a TLS session");
    if (r->conf.tls == RELAY_TLS_VERIFY && !r->unix_socket) {
        /* The configured next hop is an address: its certificate must name it. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set1_ip_asc(vp, r->host);
    }
    struct bufferevent *f = bufferevent_openssl_filter_new(
        r->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (f == NULL) {
        SSL_free(ssl);
        return conn_fail(c, "cannot start TLS");
    }
    c->bev = f;
    c->state = C_HANDSHAKE;
    bufferevent_setcb(f, on_read, on_write, on_event, c);
    bufferevent_setwatermark(f, EV_WRITE, OUT_LOW, 0);
    set_timeouts(c, r->conf.timeout_ms);
    bufferevent_enable(f, EV_READ | EV_WRITE);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > RELAY_REPLY_LINE_MAX)
                return conn_fail(c, "reply line too long");
            return;
        }
        enum cstate st = c->state;
        if (st == C_IDLE || st == C_READY || st == C_BODY || st == C_CONNECTING ||
            st == C_HANDSHAKE) {
            /* Nothing was asked: a 421 before closing, or garbage. */
            free(line);
            return conn_fail(c, "unexpected reply");
        }
        enum relay_feed v = relay_reply_feed(&c->reply, line, len);
        free(line);
        if (v == RELAY_BAD)
            return conn_fail(c, "malformed reply");
        if (v == RELAY_MORE)
            continue;
        struct relay_reply rp = c->reply;
        relay_reply_init(&c->reply);
        /* This reply answers due[0]; the state after it is the next due, or
         * what the handlers below set. */
        if (c->ndue == 0)
            return conn_fail(c, "unexpected reply");
        memmove(c->due, c->due + 1, sizeof c->due - sizeof c->due[0]);
        c->ndue--;
        if (st == C_STARTTLS) {
            if (rp.code != 220)
                return conn_fail(c, "STARTTLS refused");
            if (evbuffer_get_length(in) > 0)
                return conn_fail(c, "data after STARTTLS");   /* RFC 3207 §6 */
            start_tls(c);
            return;
        }
        if (st == C_RSET) {
            if (rp.code / 100 != 2)
                return conn_fail(c, "RSET refused");
            if (c->tx != NULL) {
                /* Taken by a transaction while the RSET was on its way. */
                c->dirty = false;
                c->state = C_READY;
                advance(c);
                continue;
            }
            c->state = C_IDLE;     /* already on the idle list */
            c->dirty = false;
            set_timeouts(c, IDLE_MS);
            continue;
        }
        if (st <= C_EHLO_TLS) {
            if (!setup_reply(c, &rp))
                return;
        } else {
            tx_reply(c, st, &rp);
        }
        /* More lines now, with nothing asked, are a desynchronised peer:
         * the loop's first check gives it up. */
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    struct relay_tx *t = c->tx;
    if (t != NULL && t->want_write && c->state == C_BODY) {
        t->want_write = false;
        t->wcb(t->arg);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == C_CONNECTING) {
            c->state = C_GREETING;
            c->due[0] = C_GREETING;     /* the first reply is unasked */
            c->ndue = 1;
            relay_reply_init(&c->reply);
        } else if (c->state == C_HANDSHAKE) {
            send_line(c, C_EHLO_TLS, "%s %s", c->r->lmtp ? "LHLO" : "EHLO", c->r->conf.hostname);
        }
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        return conn_fail(c, c->tx == NULL ? NULL : "timed out");
    if (what & BEV_EVENT_EOF)
        return conn_fail(c, c->tx == NULL ? NULL : "connection closed");
    char why[160] = "connection error";
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    if (e != 0) {
        char buf[120];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(why, sizeof why, "TLS: %s", buf);
    } else if (EVUTIL_SOCKET_ERROR() != 0) {
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    }
    conn_fail(c, c->tx == NULL ? NULL : why);
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    if (c->parked) {
        TAILQ_REMOVE(&c->r->idle, c, link);
        c->r->nidle--;
    }
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    free(c);
}

/* The connection is gone or useless: the transaction on it learns how. */
static void conn_fail(struct conn *c, const char *why)
{
    struct relay *r = c->r;
    struct relay_tx *t = c->tx;
    bool setup = c->state <= C_EHLO_TLS;
    conn_free(c);
    if (why == NULL)
        return;     /* an idle connection closed by the next hop: normal */
    if (t == NULL)
        return;
    t->c = NULL;
    /* A reused connection may have been closed by the next hop just now:
     * try once on a new one, if nothing of the transaction was said yet. */
    if (!setup && !t->mail_done && !t->retried && t->failed.code == 0) {
        t->retried = true;
        start_conn(t);
        return;
    }
    if (!atomic_exchange(&relay_down, true))
        log_event(LOG_WARN, "relay_down", "relay", r->conf.relay, "error", why, NULL);
    struct relay_answer a;
    if (setup || !t->mail_done) {
        int64_t now = util_mono_ms();
        r->backoff_ms = r->backoff_ms == 0 ? BACKOFF_MIN_MS
                        : r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                             : r->backoff_ms * 2;
        r->retry_at = now + r->backoff_ms;
        set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.1", "Next hop not reachable, try again later");
    } else {
        set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.2", "Connection to the next hop lost, try again later");
    }
    tx_fail(t, &a);
}

static void start_conn(struct relay_tx *t)
{
    struct relay *r = t->r;
    struct relay_answer a;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE |
                                                                       BEV_OPT_DEFER_CALLBACKS)) == NULL) {
        free(c);
        set_answer(&a, RELAY_STEP_RCPT, 451, "4.3.0", "Local error in processing");
        return tx_fail(t, &a);
    }
    c->r = r;
    c->tx = t;
    t->c = c;
    c->state = C_CONNECTING;
    c->xf_sent = 0;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    set_timeouts(c, r->conf.timeout_ms);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&r->ss, (int)r->sslen) != 0) {
        /* An immediate refusal: the error event has not fired, fail here. */
        c->state = C_GREETING;
        conn_fail(c, "connect failed");
    }
}

/* ---- the relay and its transactions ----------------------------------- */

void relay_conf_from(struct relay_conf *rc, const struct config *c)
{
    memset(rc, 0, sizeof *rc);
    util_strlcpy(rc->relay, c->relay, sizeof rc->relay);
    util_strlcpy(rc->relay_ca, c->relay_ca, sizeof rc->relay_ca);
    util_strlcpy(rc->hostname, c->hostname, sizeof rc->hostname);
    rc->tls = c->relay_tls;
    rc->forward = c->relay_forward;
    rc->timeout_ms = c->relay_timeout_ms;
}

struct relay *relay_new(struct event_base *base, const struct relay_conf *cfg, char *err,
                        size_t errlen)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL)
        return snprintf(err, errlen, "out of memory"), NULL;
    r->base = base;
    r->conf = *cfg;
    TAILQ_INIT(&r->idle);
    const char *v = cfg->relay;
    if (strncmp(v, "lmtp:unix:", 10) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&r->ss;
        r->lmtp = r->unix_socket = true;
        if (strlen(v + 10) >= sizeof un->sun_path) {
            free(r);
            return snprintf(err, errlen, "[delivery] relay: socket path too long"), NULL;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, v + 10, strlen(v + 10) + 1);
        r->sslen = sizeof *un;
    } else {
        struct addr a;
        uint16_t port;
        r->lmtp = strncmp(v, "lmtp://", 7) == 0;
        if (strlen(v) < 7 || !config_host_port(v + 7, &a, &port)) {
            free(r);
            return snprintf(err, errlen, "[delivery] relay: bad address '%s'", v), NULL;
        }
        r->sslen = addr_to_sockaddr(&a, port, &r->ss);
        addr_format(&a, false, r->host);
    }
    if (cfg->tls != RELAY_TLS_NONE) {
        r->ssl = SSL_CTX_new(TLS_client_method());
        if (r->ssl == NULL) {
            free(r);
            return snprintf(err, errlen, "cannot create a TLS context"), NULL;
        }
        SSL_CTX_set_min_proto_version(r->ssl, TLS1_2_VERSION);
        if (cfg->tls == RELAY_TLS_VERIFY) {
            SSL_CTX_set_verify(r->ssl, SSL_VERIFY_PEER, NULL);
            int ok = cfg->relay_ca[0] != '\0'
                         ? SSL_CTX_load_verify_locations(r->ssl, cfg->relay_ca, NULL)
                         : SSL_CTX_set_default_verify_paths(r->ssl);
            if (ok != 1) {
                SSL_CTX_free(r->ssl);
                free(r);
                ERR_clear_error();
                return snprintf(err, errlen, "[delivery] relay_ca: cannot load '%s'",
                                cfg->relay_ca), NULL;
            }
        }
    }
    return r;
}

void relay_free(struct relay *r)
{
    if (r == NULL)
        return;
    struct conn *c;
    while ((c = TAILQ_FIRST(&r->idle)) != NULL)
        conn_free(c);
    if (r->ssl != NULL)
        SSL_CTX_free(r->ssl);
    free(r);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

struct relay_tx *relay_tx_new(struct relay *r, const struct relay_client *c,
                              const struct relay_mail *m, const char *id,
                              relay_answer_cb cb, relay_writable_cb wcb, void *arg)
{
    struct relay_tx *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->r = r;
    t->cb = cb;
    t->wcb = wcb;
    t->arg = arg;
    t->id = dup_or_empty(id);
    t->from = dup_or_empty(m->from);
    t->addr = dup_or_empty(c->addr);
    t->helo = dup_or_empty(c->helo);
    t->name = c->name != NULL ? strdup(c->name) : NULL;
    t->answer_ev = event_new(r->base, -1, 0, answer_fire, t);
    if (t->id == NULL || t->from == NULL || t->addr == NULL || t->helo == NULL ||
        (c->name != NULL && t->name == NULL) || t->answer_ev == NULL) {
        relay_tx_free(t);
        return NULL;
    }
    t->mail = *m;
    t->mail.from = t->from;
    t->client = *c;
    t->client.addr = t->addr;
    t->client.helo = t->helo;
    t->client.name = t->name;
    return t;
}

/* Starts step `op`: on the connection when there is one, else on an idle
 * one or a new one. */
static void tx_step(struct relay_tx *t, enum op op)
{
    t->op = op;
    if (t->failed.code != 0)
        return answer(t, &t->failed);
    if (t->c != NULL)
        return advance(t->c);
    struct relay *r = t->r;
    /* An idle connection, or one whose RSET is still on its way (a client
     * that sends its next message at once should not cost a new one). */
    struct conn *c = TAILQ_FIRST(&r->idle);
    if (c != NULL) {
        TAILQ_REMOVE(&r->idle, c, link);
        r->nidle--;
        c->parked = false;
        c->tx = t;
        t->c = c;
        c->xf_sent = 0;
        if (c->state == C_RSET)
            return;         /* the RSET's answer goes on from here */
        c->state = C_READY;
        return advance(c);
    }
    if (r->retry_at != 0 && util_mono_ms() < r->retry_at) {
        /* Backing off after a failure: not every client hammers a dead next hop. */
        struct relay_answer a;
        set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.1", "Next hop not reachable, try again later");
        return tx_fail(t, &a);
    }
    start_conn(t);
}

void relay_tx_rcpt(struct relay_tx *t, const char *rcpt)
{
    util_strlcpy(t->rcpt, rcpt, sizeof t->rcpt);
    if (t->r->lmtp && t->accepted >= 1 && t->failed.code == 0) {
        /* LMTP: one recipient per transaction (SPEC §7). */
        struct relay_answer a;
        t->op = OP_RCPT;
        set_answer(&a, RELAY_STEP_RCPT, 452, "4.5.3", "Too many recipients");
        return answer(t, &a);
    }
    tx_step(t, OP_RCPT);
}

void relay_tx_data(struct relay_tx *t)
{
    tx_step(t, OP_DATA);
}

bool relay_tx_write(struct relay_tx *t, const char *p, size_t n)
{
    struct conn *c = t->c;
    if (c == NULL || c->state != C_BODY)
        return true;    /* the transaction failed: the end will say so */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    const char *end = p + n;
    while (p < end) {
        if (c->at_bol && *p == '.')
            evbuffer_add(out, ".", 1);
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (lf == NULL) {
            evbuffer_add(out, p, (size_t)(end - p));
            c->at_bol = false;
            break;
        }
        evbuffer_add(out, p, (size_t)(lf - p));
        evbuffer_add(out, "\r\n", 2);
        c->at_bol = true;
        p = lf + 1;
    }
    if (evbuffer_get_length(out) > OUT_HIGH) {
        t->want_write = true;
        return false;
    }
    return true;
}

void relay_tx_end(struct relay_tx *t)
{
    t->op = OP_END;
    struct conn *c = t->c;
    if (t->failed.code != 0 || c == NULL || c->state != C_BODY) {
        struct relay_answer a;
        if (t->failed.code != 0)
            a = t->failed;
        else
            set_answer(&a, RELAY_STEP_END, 451, "4.4.2",
                       "Connection to the next hop lost, try again later");
        /* A failure before DATA finished is never a 250 at the end. */
        if (a.code == 503 || a.code < 400)
            set_answer(&a, RELAY_STEP_END, 451, "4.3.0", "Local error in processing");
        return answer(t, &a);
    }
    send_line(c, C_DOT, "%s.", c->at_bol ? "" : "\r\n");
    set_timeouts(c, t->r->conf.timeout_ms);
}

void relay_tx_free(struct relay_tx *t)
{
    if (t == NULL)
        return;
    struct conn *c = t->c;
    if (c != NULL) {
        c->tx = NULL;
        struct relay *r = t->r;
        /* Only a connection between commands goes back for reuse; one in
         * the middle of a command or the body is closed, so the next hop
         * never takes half a message. */
        if (c->state == C_READY && r->nidle < IDLE_MAX) {
            /* On the idle list from now (so the relay always reaches its
             * connections). A finished transaction needs no RSET; any
             * other is reset first, and usable once the RSET is answered. */
            if (c->dirty) {
                send_line(c, C_RSET, "RSET");
                set_timeouts(c, r->conf.timeout_ms);
            } else {
                c->state = C_IDLE;
                set_timeouts(c, IDLE_MS);
            }
            TAILQ_INSERT_HEAD(&r->idle, c, link);
            r->nidle++;
            c->parked = true;
        } else {
            conn_free(c);
        }
    }
    if (t->answer_ev != NULL)
        event_free(t->answer_ev);
    free(t->id);
    free(t->from);
    free(t->addr);
    free(t->name);
    free(t->helo);
    free(t);
}
