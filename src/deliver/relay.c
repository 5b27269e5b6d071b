/* relay: the next hop as deliver.h's relay backend sees it (relay.h): a
 * worker's relay with its idle connections, and the transactions on them.
 * The connections themselves are relay_conn.c's. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include "base/util.h"
#include "deliver/relay_priv.h"

/* ---- answers ---------------------------------------------------------- */

void relay_set_answer(struct relay_answer *a, enum relay_step step, int code, const char *enh,
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

enum relay_step relay_op_step(enum op op)
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

void relay_answer_now(struct relay_tx *t, const struct relay_answer *a)
{
    t->ans = *a;
    t->ans.step = relay_op_step(t->op);
    t->op = OP_NONE;
    event_active(t->answer_ev, 0, 0);
}

void relay_tx_fail(struct relay_tx *t, const struct relay_answer *a)
{
    t->failed = *a;
    if (t->op != OP_NONE)
        relay_answer_now(t, a);
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
        rconn_free(c);
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
        return relay_answer_now(t, &t->failed);
    if (t->c != NULL)
        return rconn_advance(t->c);
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
        return rconn_advance(c);
    }
    if (r->retry_at != 0 && util_mono_ms() < r->retry_at) {
        /* Backing off after a failure: not every client hammers a dead next hop. */
        struct relay_answer a;
        relay_set_answer(&a, RELAY_STEP_RCPT, 451, "4.4.1", "Next hop not reachable, try again later");
        return relay_tx_fail(t, &a);
    }
    rconn_start(t);
}

void relay_tx_rcpt(struct relay_tx *t, const char *rcpt)
{
    util_strlcpy(t->rcpt, rcpt, sizeof t->rcpt);
    if (t->r->lmtp && t->accepted >= 1 && t->failed.code == 0) {
        /* LMTP: one recipient per transaction (SPEC §7). */
        struct relay_answer a;
        t->op = OP_RCPT;
        relay_set_answer(&a, RELAY_STEP_RCPT, 452, "4.5.3", "Too many recipients");
        return relay_answer_now(t, &a);
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
            relay_set_answer(&a, RELAY_STEP_END, 451, "4.4.2",
                       "Connection to the next hop lost, try again later");
        /* A failure before DATA finished is never a 250 at the end. */
        if (a.code == 503 || a.code < 400)
            relay_set_answer(&a, RELAY_STEP_END, 451, "4.3.0", "Local error in processing");
        return relay_answer_now(t, &a);
    }
    rconn_send(c, C_DOT, "%s.", c->at_bol ? "" : "\r\n");
    rconn_timeouts(c, t->r->conf.timeout_ms);
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
                rconn_send(c, C_RSET, "RSET");
                rconn_timeouts(c, r->conf.timeout_ms);
            } else {
                c->state = C_IDLE;
                rconn_timeouts(c, IDLE_MS);
            }
            TAILQ_INSERT_HEAD(&r->idle, c, link);
            r->nidle++;
            c->parked = true;
        } else {
            rconn_free(c);
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
