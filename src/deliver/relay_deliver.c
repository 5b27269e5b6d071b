/* relay_deliver: the relay row of deliver.h (SPEC §7). Each worker has its
 * own `struct relay` (relay.c) on its own event base, found by the
 * worker's mailbox; a transaction here is a relay_tx plus what the ops
 * table asks that relay.c does not do itself: DATA is sent at the first
 * chunk (the session answers 354 on its own), and the chunks that come
 * before the next hop's 354 wait here, bounded. */
#include "deliver/deliver.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "deliver/relay.h"

/* Bytes held before the next hop's 354 beyond which the client waits. */
#define EARLY_HOLD (64 * 1024)
#define MAX_WORKERS 256

struct worker_relay {
    struct pool_mailbox *mb;
    struct relay *relay;
};

/* One relay per worker. The table only grows, under the lock, and a
 * worker only ever uses its own row. */
static struct {
    pthread_mutex_t mu;
    struct worker_relay w[MAX_WORKERS];
    int n;
    struct relay_conf conf;     /* the relay keys at open */
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

enum dstate { D_RCPTS, D_WAIT_354, D_BODY, D_FAILED };

struct deliver_tx {
    struct relay_tx *rt;
    deliver_resume_cb resume;
    void *arg;
    deliver_reply_cb cb;        /* the step in progress: rcpt or end */
    void *cb_arg;
    enum dstate state;
    struct evbuffer *early;     /* chunks before the 354 */
    bool held, ending;
    struct deliver_reply failed;
};

static struct relay *worker_relay(struct pool_mailbox *mb)
{
    struct relay *r = NULL;
    pthread_mutex_lock(&reg.mu);
    for (int i = 0; i < reg.n; i++)
        if (reg.w[i].mb == mb)
            r = reg.w[i].relay;
    if (r == NULL && reg.n < MAX_WORKERS) {
        char err[256];
        r = relay_new(pool_mailbox_base(mb), &reg.conf, err, sizeof err);
        if (r != NULL)
            reg.w[reg.n++] = (struct worker_relay){mb, r};
    }
    pthread_mutex_unlock(&reg.mu);
    return r;
}

static void to_reply(struct deliver_reply *out, const struct relay_answer *a)
{
    enum deliver_status st = a->code < 400 ? DELIVER_OK
                             : a->code < 500 ? DELIVER_TEMPFAIL
                                             : DELIVER_PERMFAIL;
    deliver_reply_set(out, st, a->code, a->enh, a->text);
    util_strlcpy(out->detail, a->text, sizeof out->detail);
    util_strlcpy(out->id, a->their_id, sizeof out->id);
}

static void finish_end(struct deliver_tx *t, const struct deliver_reply *r)
{
    deliver_reply_cb cb = t->cb;
    void *arg = t->cb_arg;
    struct deliver_reply copy = *r;     /* r may be t->failed */
    relay_tx_free(t->rt);
    if (t->early != NULL)
        evbuffer_free(t->early);
    free(t);
    cb(arg, &copy);
}

/* The body may flow: what waited goes first. */
static void flush_early(struct deliver_tx *t)
{
    size_t n = evbuffer_get_length(t->early);
    bool more = true;
    if (n > 0) {
        unsigned char *p = evbuffer_pullup(t->early, -1);
        more = relay_tx_write(t->rt, (const char *)p, n);
        evbuffer_drain(t->early, n);
    }
    if (t->ending)
        relay_tx_end(t->rt);
    else if (t->held && more) {
        t->held = false;
        t->resume(t->arg);
    }
}

static void on_answer(void *arg, const struct relay_answer *a)
{
    struct deliver_tx *t = arg;
    struct deliver_reply r;
    to_reply(&r, a);
    switch (a->step) {
    case RELAY_STEP_RCPT: {
        deliver_reply_cb cb = t->cb;
        t->cb = NULL;
        cb(t->cb_arg, &r);
        return;
    }
    case RELAY_STEP_DATA:
        if (a->code == 354) {
            t->state = D_BODY;
            flush_early(t);
            return;
        }
        /* Refused: the rest of the message is read and dropped, and the
         * end says why. */
        t->state = D_FAILED;
        t->failed = r;
        evbuffer_drain(t->early, evbuffer_get_length(t->early));
        if (t->ending)
            return finish_end(t, &t->failed);
        if (t->held) {
            t->held = false;
            t->resume(t->arg);
        }
        return;
    case RELAY_STEP_END:
        finish_end(t, &r);
        return;
    }
}

static void on_writable(void *arg)
{
    struct deliver_tx *t = arg;
    if (t->held) {
        t->held = false;
        t->resume(t->arg);
    }
}

static struct deliver *rd_open(const struct config *c, char *err, size_t errlen)
{
    /* Check the relay keys once, here, so a bad relay_ca stops the start. */
    struct relay_conf rc;
    relay_conf_from(&rc, c);
    struct event_base *probe = event_base_new();
    struct relay *r = probe ? relay_new(probe, &rc, err, errlen) : NULL;
    if (r == NULL) {
        if (probe == NULL)
            snprintf(err, errlen, "out of memory");
        if (probe != NULL)
            event_base_free(probe);
        return NULL;
    }
    relay_free(r);
    event_base_free(probe);
    struct deliver *d = calloc(1, sizeof *d);
    if (d == NULL)
        return snprintf(err, errlen, "out of memory"), NULL;
    d->ops = &deliver_relay;
    pthread_mutex_lock(&reg.mu);
    reg.conf = rc;
    pthread_mutex_unlock(&reg.mu);
    return d;
}

static void rd_close(struct deliver *d)
{
    /* The per-worker relays stay: the daemon closes its backend after the
     * workers' event bases are gone, and their idle connections' events
     * cannot be freed without them. The process is exiting; the table
     * still reaches them, so nothing counts as leaked. */
    free(d);
}

static struct deliver_tx *rd_begin(struct deliver *d, const struct config *c, struct pool *pool,
                                   struct pool_mailbox *mb, const struct deliver_envelope *e,
                                   deliver_resume_cb resume, void *arg)
{
    (void)d, (void)c, (void)pool;
    struct relay *r = worker_relay(mb);
    if (r == NULL)
        return NULL;
    struct deliver_tx *t = calloc(1, sizeof *t);
    if (t == NULL || (t->early = evbuffer_new()) == NULL) {
        free(t);
        return NULL;
    }
    char ip[ADDR_STRLEN];
    addr_format(e->client, false, ip);
    struct relay_client rc = {
        .addr = ip, .port = e->client_port, .name = e->client_name, .helo = e->helo,
        .esmtp = strncmp(e->proto, "ESMTP", 5) == 0,
    };
    struct relay_mail m = {
        .from = e->sender, .eightbit = e->body_8bit, .smtputf8 = e->smtputf8,
    };
    t->resume = resume;
    t->arg = arg;
    t->rt = relay_tx_new(r, &rc, &m, e->queue_id, on_answer, on_writable, t);
    if (t->rt == NULL) {
        evbuffer_free(t->early);
        free(t);
        return NULL;
    }
    return t;
}

static void rd_rcpt(struct deliver_tx *t, const char *rcpt, deliver_reply_cb cb, void *arg)
{
    t->cb = cb;
    t->cb_arg = arg;
    relay_tx_rcpt(t->rt, rcpt);
}

static bool rd_write(struct deliver_tx *t, const char *p, size_t n)
{
    switch (t->state) {
    case D_RCPTS:
        t->state = D_WAIT_354;
        relay_tx_data(t->rt);
        /* fall through */
    case D_WAIT_354:
        evbuffer_add(t->early, p, n);
        if (evbuffer_get_length(t->early) > EARLY_HOLD)
            t->held = true;
        return !t->held;
    case D_BODY:
        if (!relay_tx_write(t->rt, p, n))
            t->held = true;
        return !t->held;
    case D_FAILED:
        return true;
    }
    return true;
}

static void rd_end(struct deliver_tx *t, deliver_reply_cb cb, void *arg)
{
    t->cb = cb;
    t->cb_arg = arg;
    t->ending = true;
    t->held = false;
    switch (t->state) {
    case D_RCPTS:
        /* Never reached: the session writes its Received: header first. */
        t->state = D_WAIT_354;
        relay_tx_data(t->rt);
        return;
    case D_WAIT_354:
        return;             /* the 354 brings the end along */
    case D_BODY:
        relay_tx_end(t->rt);
        return;
    case D_FAILED:
        finish_end(t, &t->failed);
        return;
    }
}

static void rd_abort(struct deliver_tx *t)
{
    relay_tx_free(t->rt);
    evbuffer_free(t->early);
    free(t);
}

static bool rd_up(const struct deliver *d)
{
    (void)d;
    return relay_up();
}

const struct deliver_ops deliver_relay = {
    "relay", rd_open, rd_close, rd_begin, rd_rcpt, rd_write, rd_end, rd_abort, rd_up,
};
