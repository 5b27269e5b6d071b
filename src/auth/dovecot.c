#include "auth/dovecot.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "base/log.h"
#include "base/util.h"
#include "proto/dovecot_proto.h"
#include "proto/sasl.h"

/* SPEC §8: no answer within this long is a temporary failure. */
#define ANSWER_MS 10000
/* Requests waiting at once per worker; more get 454 at once. */
#define PENDING_MAX 1024
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

enum dstate { D_DOWN, D_CONNECTING, D_HANDSHAKE, D_READY };

struct dovecot_req {
    TAILQ_ENTRY(dovecot_req) link;
    struct dovecot *d;
    unsigned id;
    bool sent, cancelled, done;
    int login_step;               /* LOGIN via CONT: 0 user, 1 password */
    enum dovecot_result result;
    struct event *timer;          /* the 10 s bound, then the answer's delivery */
    dovecot_cb cb;
    void *arg;
    char user[SASL_USER_MAX];
    char pass[SASL_PASS_MAX];
    char lip[ADDR_STRLEN], rip[ADDR_STRLEN];
    bool secured;
};
TAILQ_HEAD(req_list, dovecot_req);

struct dovecot {
    struct event_base *base;
    char socket[CONFIG_PATH_MAX];   /* as configured: for logs and reloads */
    struct sockaddr_storage ss;
    socklen_t sslen;
    enum dstate state;
    struct bufferevent *bev;
    struct event *retry;          /* reconnect after backoff */
    int64_t backoff_ms;
    unsigned mechs;               /* Dovecot's, once a handshake told them */
    bool mechs_known;
    unsigned next_id;
    struct req_list pending;      /* in order of arrival */
    int npending;
};

/* One log line per outage, whichever worker sees it first. */
static atomic_bool backend_down;
/* Dovecot's mechanisms as the last handshake said, for every worker;
 * 0: not known yet. */
static atomic_uint known_mechs;

static void connect_now(struct dovecot *d);

/* ---- answers ------------------------------------------------------------ */

static void req_release(struct dovecot_req *q)
{
    explicit_bzero(q->pass, sizeof q->pass);
    if (q->timer != NULL)
        event_free(q->timer);
    free(q);
}

/* Takes q off the list and answers it from the loop (never from inside
 * the caller's own call): its timer fires at once, now as the delivery. */
static void finish(struct dovecot_req *q, enum dovecot_result r)
{
    struct dovecot *d = q->d;
    if (q->done)
        return;
    q->done = true;
    q->result = r;
    TAILQ_REMOVE(&d->pending, q, link);
    d->npending--;
    q->d = NULL;
    explicit_bzero(q->pass, sizeof q->pass);
    evtimer_del(q->timer);
    event_active(q->timer, EV_TIMEOUT, 0);
}

static void fail_all(struct dovecot *d)
{
    struct dovecot_req *q;
    while ((q = TAILQ_FIRST(&d->pending)) != NULL)
        finish(q, DOVECOT_AUTH_TEMPFAIL);
}

static struct dovecot_req *find(struct dovecot *d, unsigned id)
{
    struct dovecot_req *q;
    TAILQ_FOREACH(q, &d->pending, link)
        if (q->sent && q->id == id)
            return q;
    return NULL;
}

/* ---- the connection ----------------------------------------------------- */

static void conn_down(struct dovecot *d, const char *why)
{
    if (d->bev != NULL) {
        bufferevent_free(d->bev);
        d->bev = NULL;
    }
    d->state = D_DOWN;
    if (!atomic_exchange(&backend_down, true))
        log_event(LOG_WARN, "auth_backend_down", "socket", d->socket, "error", why,
                  NULL);
    fail_all(d);
    d->backoff_ms = d->backoff_ms == 0 ? BACKOFF_MIN_MS
                    : d->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : d->backoff_ms * 2;
    struct timeval tv = {d->backoff_ms / 1000, (d->backoff_ms % 1000) * 1000};
    evtimer_add(d->retry, &tv);
}

static void send_request(struct dovecot *d, struct dovecot_req *q)
{
    char resp[((SASL_USER_MAX + SASL_PASS_MAX + 2) + 2) / 3 * 4 + 1];
    char line[sizeof resp + 2 * ADDR_STRLEN + 128];
    bool plain = d->mechs & DOVECOT_MECH_PLAIN;
    long n;
    if (plain) {
        /* authzid NUL authcid NUL passwd (RFC 4616), base64 */
        unsigned char raw[SASL_USER_MAX + SASL_PASS_MAX + 2];
        size_t ul = strlen(q->user), pl = strlen(q->pass);
        raw[0] = '\0';
        memcpy(raw + 1, q->user, ul);
        raw[1 + ul] = '\0';
        memcpy(raw + 2 + ul, q->pass, pl);
        long e = sasl_b64_encode(raw, 2 + ul + pl, resp, sizeof resp);
        explicit_bzero(raw, sizeof raw);
        if (e < 0)
            return finish(q, DOVECOT_AUTH_FAIL);
        n = dovecot_auth_request(line, sizeof line, q->id, "PLAIN", q->lip, q->rip, q->secured,
                                 resp);
        explicit_bzero(resp, sizeof resp);
    } else {
        /* LOGIN: the user and password follow as answers to CONT. */
        n = dovecot_auth_request(line, sizeof line, q->id, "LOGIN", q->lip, q->rip, q->secured,
                                 NULL);
    }
    if (n < 0)
        return finish(q, DOVECOT_AUTH_FAIL);
    q->sent = true;
    bufferevent_write(d->bev, line, (size_t)n);
    explicit_bzero(line, sizeof line);
}

static void send_waiting(struct dovecot *d)
{
    struct dovecot_req *q, *next;
    for (q = TAILQ_FIRST(&d->pending); q != NULL; q = next) {
        next = TAILQ_NEXT(q, link);
        if (!q->sent)
            send_request(d, q);
    }
}

/* CONT for a LOGIN exchange: the next answer, base64. */
static void answer_cont(struct dovecot *d, struct dovecot_req *q)
{
    const char *v = q->login_step == 0 ? q->user : q->pass;
    char b64[((SASL_PASS_MAX + 2) / 3) * 4 + 1];
    char line[sizeof b64 + 32];
    if (q->login_step > 1 || sasl_b64_encode((const unsigned char *)v, strlen(v), b64, sizeof b64) < 0)
        return finish(q, DOVECOT_AUTH_FAIL);
    q->login_step++;
    int n = snprintf(line, sizeof line, "CONT\t%u\t%s\n", q->id, b64);
    bufferevent_write(d->bev, line, (size_t)n);
    explicit_bzero(b64, sizeof b64);
    explicit_bzero(line, sizeof line);
}

/* One line from Dovecot; false when the connection must be given up. */
static bool on_line(struct dovecot *d, char *line, size_t len)
{
    struct dovecot_line l;
    if (!dovecot_parse_line(line, len, &l))
        return false;
    switch (l.kind) {
    case DOVECOT_VERSION:
        /* Same major version or we cannot talk (the protocol's rule). */
        return l.major == 1;
    case DOVECOT_MECH:
        if (strcmp(l.mech, "PLAIN") == 0)
            d->mechs |= DOVECOT_MECH_PLAIN;
        else if (strcmp(l.mech, "LOGIN") == 0)
            d->mechs |= DOVECOT_MECH_LOGIN;
        return true;
    case DOVECOT_DONE:
        if (d->state != D_HANDSHAKE)
            return true;
        d->state = D_READY;
        d->mechs_known = true;
        atomic_store(&known_mechs, d->mechs | 0x80000000u);
        d->backoff_ms = 0;
        if (atomic_exchange(&backend_down, false))
            log_event(LOG_INFO, "auth_backend_up", "socket", d->socket, NULL);
        if ((d->mechs & (DOVECOT_MECH_PLAIN | DOVECOT_MECH_LOGIN)) == 0)
            log_event(LOG_WARN, "auth_backend_mechanisms", "socket", d->socket,
                      "error", "Dovecot offers neither PLAIN nor LOGIN", NULL);
        send_waiting(d);
        return true;
    case DOVECOT_OK:
    case DOVECOT_FAIL:
    case DOVECOT_CONT: {
        struct dovecot_req *q = find(d, l.id);
        if (q == NULL)
            return true;    /* answered already (timed out) */
        if (l.kind == DOVECOT_CONT)
            answer_cont(d, q);
        else if (l.kind == DOVECOT_OK)
            /* An OK that sends the user elsewhere is no login here. */
            finish(q, l.nologin || l.proxy ? DOVECOT_AUTH_FAIL : DOVECOT_AUTH_OK);
        else
            finish(q, l.temp ? DOVECOT_AUTH_TEMPFAIL : DOVECOT_AUTH_FAIL);
        return true;
    }
    default:
        return true;        /* SPID, CUID, COOKIE and what we do not know */
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct dovecot *d = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > DOVECOT_LINE_MAX)
                conn_down(d, "line too long");
            return;
        }
        bool ok = on_line(d, line, len);
        free(line);
        if (!ok)
            return conn_down(d, "protocol error");
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct dovecot *d = arg;
    if (what & BEV_EVENT_CONNECTED) {
        char hello[64];
        int n = snprintf(hello, sizeof hello, "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
        d->state = D_HANDSHAKE;
        d->mechs = 0;
        bufferevent_write(d->bev, hello, (size_t)n);
        return;
    }
    conn_down(d, what & BEV_EVENT_EOF ? "connection closed"
                 : EVUTIL_SOCKET_ERROR() != 0 ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR())
                                              : "connection error");
}

static void connect_now(struct dovecot *d)
{
    d->bev = bufferevent_socket_new(d->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (d->bev == NULL)
        return conn_down(d, "out of memory");
    d->state = D_CONNECTING;
    bufferevent_setcb(d->bev, on_read, NULL, on_event, d);
    /* The handshake must not hang either: answers are bounded per request,
     * and a silent socket is found out when a request times out. */
    bufferevent_enable(d->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(d->bev, (struct sockaddr *)&d->ss, (int)d->sslen) != 0)
        conn_down(d, "connect failed");
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dovecot *d = arg;
    /* Reconnect only when someone is waiting or the mechanisms are unknown,
     * so an idle worker does not poll a dead Dovecot forever. */
    if (d->state == D_DOWN && (!TAILQ_EMPTY(&d->pending) || !d->mechs_known))
        connect_now(d);
}

/* ---- the interface ------------------------------------------------------ */

struct dovecot *dovecot_new(struct event_base *base, const struct config *cfg, char *err,
                            size_t errlen)
{
    struct dovecot *d = calloc(1, sizeof *d);
    if (d == NULL)
        return snprintf(err, errlen, "out of memory"), NULL;
    d->base = base;
    util_strlcpy(d->socket, cfg->dovecot_socket, sizeof d->socket);
    TAILQ_INIT(&d->pending);
    const char *v = cfg->dovecot_socket;
    if (strchr(v, '/') != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *)&d->ss;
        if (strlen(v) >= sizeof un->sun_path) {
            free(d);
            return snprintf(err, errlen, "[auth] dovecot_socket: path too long"), NULL;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, v, strlen(v) + 1);
        d->sslen = sizeof *un;
    } else {
        struct addr a;
        uint16_t port;
        if (!config_host_port(v, &a, &port)) {
            free(d);
            return snprintf(err, errlen, "[auth] dovecot_socket: bad address '%s'", v), NULL;
        }
        d->sslen = addr_to_sockaddr(&a, port, &d->ss);
    }
    d->retry = evtimer_new(base, on_retry, d);
    if (d->retry == NULL) {
        free(d);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    connect_now(d);
    return d;
}

void dovecot_free(struct dovecot *d)
{
    if (d == NULL)
        return;
    fail_all(d);
    if (d->bev != NULL)
        bufferevent_free(d->bev);
    event_free(d->retry);
    free(d);
}

bool dovecot_up(void)
{
    return !atomic_load(&backend_down);
}

unsigned dovecot_mechs(unsigned ours)
{
    unsigned k = atomic_load(&known_mechs);
    return k != 0 ? ours & k : ours;
}

const char *dovecot_socket(const struct dovecot *d)
{
    return d->socket;
}

/* The request's timer: the 10 s bound while it waits, the delivery of its
 * answer once finished. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct dovecot_req *q = arg;
    if (q->done) {
        if (!q->cancelled)
            q->cb(q->arg, q->result);
        req_release(q);
        return;
    }
    struct dovecot *d = q->d;
    finish(q, DOVECOT_AUTH_TEMPFAIL);
    /* A connection that never finished its handshake is stuck: start over. */
    if (d->state == D_CONNECTING || d->state == D_HANDSHAKE)
        conn_down(d, "no answer");
}

struct dovecot_req *dovecot_verify(struct dovecot *d, const char *user, const char *pass,
                                   const char *lip, const char *rip, bool secured,
                                   dovecot_cb cb, void *arg)
{
    struct dovecot_req *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->d = d;
    q->cb = cb;
    q->arg = arg;
    q->secured = secured;
    q->id = ++d->next_id;
    q->timer = evtimer_new(d->base, on_timer, q);
    if (q->timer == NULL) {
        free(q);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&d->pending, q, link);
    d->npending++;
    /* A user name with TAB or LF could smuggle fields into the line: refused
     * here, before anything is sent. */
    if (!dovecot_value_ok(user) || strlen(user) >= sizeof q->user ||
        strlen(pass) >= sizeof q->pass || user[0] == '\0') {
        finish(q, DOVECOT_AUTH_FAIL);
        return q;
    }
    util_strlcpy(q->user, user, sizeof q->user);
    util_strlcpy(q->pass, pass, sizeof q->pass);
    util_strlcpy(q->lip, lip, sizeof q->lip);
    util_strlcpy(q->rip, rip, sizeof q->rip);
    if (d->npending > PENDING_MAX) {
        finish(q, DOVECOT_AUTH_TEMPFAIL);
        return q;
    }
    struct timeval tv = {ANSWER_MS / 1000, 0};
    evtimer_add(q->timer, &tv);
    if (d->state == D_READY)
        send_request(d, q);
    else if (d->state == D_DOWN && !evtimer_pending(d->retry, NULL))
        connect_now(d);
    /* else: sent when the handshake is done, or 454 when the wait runs out */
    return q;
}

void dovecot_cancel(struct dovecot_req *q)
{
    if (q == NULL)
        return;
    q->cancelled = true;
    if (!q->done) {
        /* Still waiting: forget it now; Dovecot's late answer finds no id. */
        struct dovecot *d = q->d;
        TAILQ_REMOVE(&d->pending, q, link);
        d->npending--;
        req_release(q);
    }
}
