/* relay_conn: the connections to the next hop: connect, greeting,
 * EHLO/LHLO, STARTTLS, the commands of a transaction (pipelined where the
 * next hop allows), their replies mapped per SPEC §7, failures, the outage
 * log line and the backoff. */
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
#include "base/log.h"
#include "base/util.h"
#include "deliver/relay_priv.h"

/* One log line per outage, whichever worker sees it first. */
static atomic_bool relay_down;

static void conn_fail(struct conn *c, const char *why);

bool relay_up(void)
{
    return !atomic_load(&relay_down);
}

/* ---- the wire ----------------------------------------------------------- */

void rconn_send(struct conn *c, enum cstate next, const char *fmt, ...)
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

void rconn_timeouts(struct conn *c, int64_t read_ms)
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
    rconn_send(c, C_XFORWARD, "%s", line[c->xf_sent++]);
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
    rconn_send(c, C_MAIL, "MAIL FROM:<%s>%s", m->from, params);
}

void rconn_advance(struct conn *c)
{
    struct relay_tx *t = c->tx;
    if (t == NULL || c->state != C_READY)
        return;
    if (t->failed.code != 0) {
        rconn_timeouts(c, 0);      /* nothing more to ask: RSET when it is freed */
        return;
    }
    rconn_timeouts(c, c->r->conf.timeout_ms);
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
            rconn_send(c, C_RCPT, "RCPT TO:<%s>", t->rcpt);
        return;
    }
    switch (t->op) {
    case OP_RCPT:
        rconn_send(c, C_RCPT, "RCPT TO:<%s>", t->rcpt);
        break;
    case OP_DATA:
        rconn_send(c, C_DATA, "DATA");
        break;
    case OP_END:
        break;      /* only from C_BODY */
    case OP_NONE:
        rconn_timeouts(c, 0);
        break;
    }
}

/* ---- replies ------------------------------------------------------------ */

/* A refusal passed back with its code and enhanced code (SPEC §7). */
static void pass_back(struct relay_answer *a, enum relay_step step, const struct relay_reply *rp,
                      const char *what)
{
    const char *enh = rp->enh[0] ? rp->enh : rp->code >= 500 ? "5.0.0" : "4.0.0";
    relay_set_answer(a, step, rp->code, enh, "%s: %s", what, rp->text);
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
            pass_back(&a, relay_op_step(t->op), rp, "Sender refused by the next hop");
            relay_tx_fail(t, &a);
        }
        break;
    case C_RCPT:
        c->state = C_READY;
        if (t->op != OP_RCPT)
            break;      /* pipelined after a MAIL that failed: answered already */
        if (cls == 2) {
            t->accepted++;
            relay_set_answer(&a, RELAY_STEP_RCPT, 250, "2.1.5", "Ok");
        } else {
            pass_back(&a, RELAY_STEP_RCPT, rp, "Recipient refused by the next hop");
        }
        relay_answer_now(t, &a);
        break;
    case C_DATA:
        if (rp->code == 354) {
            c->state = C_BODY;
            c->at_bol = true;
            t->data_open = true;
            rconn_timeouts(c, 0);      /* no reply is due while the body flows */
            relay_set_answer(&a, RELAY_STEP_DATA, 354, "", "End data with <CR><LF>.<CR><LF>");
            relay_answer_now(t, &a);
            return;
        }
        c->state = C_READY;
        if (cls == 4)
            relay_set_answer(&a, RELAY_STEP_DATA, 451, "4.3.0", "Next hop: %s", rp->text);
        else
            pass_back(&a, RELAY_STEP_DATA, rp, "Next hop refused the message");
        relay_tx_fail(t, &a);
        break;
    case C_DOT:
        c->state = C_READY;
        c->dirty = false;       /* the reply to the dot ends the transaction */
        if (cls == 2) {
            relay_set_answer(&a, RELAY_STEP_END, 250, "2.0.0", "Ok: queued as %s", t->id);
            relay_queue_id(rp->text, a.their_id, sizeof a.their_id);
        } else if (cls == 4) {
            relay_set_answer(&a, RELAY_STEP_END, 451, "4.3.0", "Next hop: %s", rp->text);
        } else {
            relay_set_answer(&a, RELAY_STEP_END, 554, rp->enh[0] ? rp->enh : "5.0.0",
                       "Next hop refused the message: %s", rp->text);
        }
        t->failed = a;   /* the transaction is over either way */
        t->failed.code = a.code == 250 ? 503 : a.code;
        relay_answer_now(t, &a);
        break;
    default:
        break;
    }
    if (c->ndue > 0)
        c->state = c->due[0];   /* more replies of a pipelined group to come */
    else
        rconn_advance(c);
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
        rconn_send(c, C_EHLO, "%s %s", greet, r->conf.hostname);
        return true;
    case C_EHLO:
    case C_EHLO_TLS:
        if (rp->code / 100 != 2)
            return conn_fail(c, r->lmtp ? "LHLO refused" : "EHLO refused"), false;
        c->ext = rp->ext;
        c->xforward = rp->xforward;
        if (c->state == C_EHLO && r->conf.tls != RELAY_TLS_NONE &&
            (rp->ext & RELAY_EXT_STARTTLS)) {
            rconn_send(c, C_STARTTLS, "STARTTLS");
            return true;
        }
        if (c->state == C_EHLO && r->conf.tls >= RELAY_TLS_ENCRYPT)
            return conn_fail(c, "TLS is required but the next hop does not offer STARTTLS"), false;
        if (atomic_exchange(&relay_down, false))
            log_event(LOG_INFO, "relay_up", "relay", r->conf.relay, NULL);
        r->backoff_ms = 0;
        r->retry_at = 0;
        c->state = C_READY;
        rconn_advance(c);
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
    rconn_timeouts(c, r->conf.timeout_ms);
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
                rconn_advance(c);
                continue;
            }
            c->state = C_IDLE;     /* already on the idle list */
            c->dirty = false;
            rconn_timeouts(c, IDLE_MS);
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
            rconn_send(c, C_EHLO_TLS, "%s %s", c->r->lmtp ? "LHLO" : "EHLO", c->r->conf.hostname);
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

void rconn_free(struct conn *c)
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
    rconn_free(c);
    if (why == NULL)
        return;     /* an idle connection closed by the next hop: normal */
    if (t == NULL)
        return;
    t->c = NULL;
    /* A reused connection may have been closed by the next hop just now:
     * try once on a new one, if nothing of the transaction was said yet. */
    if (!setup && !t->mail_done && !t->retried && t->failed.code == 0) {
        t->retried = true;
        rconn_start(t);
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
        relay_set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.1", "Next hop not reachable, try again later");
    } else {
        relay_set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.2", "Connection to the next hop lost, try again later");
    }
    relay_tx_fail(t, &a);
}

void rconn_start(struct relay_tx *t)
{
    struct relay *r = t->r;
    struct relay_answer a;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE |
                                                                       BEV_OPT_DEFER_CALLBACKS)) == NULL) {
        free(c);
        relay_set_answer(&a, RELAY_STEP_RCPT, 451, "4.3.0", "Local error in processing");
        return relay_tx_fail(t, &a);
    }
    c->r = r;
    c->tx = t;
    t->c = c;
    c->state = C_CONNECTING;
    c->xf_sent = 0;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
    rconn_timeouts(c, r->conf.timeout_ms);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&r->ss, (int)r->sslen) != 0) {
        /* An immediate refusal: the error event has not fired, fail here. */
        c->state = C_GREETING;
        conn_fail(c, "connect failed");
    }
}
