/* session: the SMTP dialogue of one connection, on libevent bufferevents:
 * its start (the guard's word, the greeting), reading lines and the
 * message, and its end. What each command does is commands.c (a table of
 * {verb, check, proceed} rows), AUTH session_auth.c, TLS session_tls.c.
 *
 * Shape (after OpenSMTPD): an explicit state changed only by enter_state(),
 * a command table, one reply function. Work that waits (a password check,
 * a recipient's verdict, the end of a delivery) goes to a backend that
 * answers by callback; meanwhile the session is `busy` and reads nothing,
 * so pipelined commands are answered in order. A session closed while it
 * waits is freed when the answer comes (`dead`). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include "base/log.h"
#include "proto/proxy.h"
#include "smtp/rdns.h"
#include "smtp/reject.h"
#include "smtp/session_priv.h"
#include "smtp/tls.h"

/* Output not yet taken by the client beyond which we stop reading its
 * commands: a client that pipelines without reading costs bounded memory. */
#define OUTPUT_MAX (64 * 1024)

static void session_free(struct session *s);

/* ---- replies and the end of a session -------------------------------- */

void reply(struct session *s, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(s->bev);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\r\n", 2);
}

static const char *const state_names[] = {
    [ST_NEW] = "new", [ST_PROXY] = "proxy", [ST_CMD] = "command", [ST_AUTH_PLAIN] = "auth_plain",
    [ST_AUTH_USER] = "auth_user", [ST_AUTH_PASS] = "auth_pass", [ST_DATA] = "data",
    [ST_REJECTED] = "rejected",
};

/* Each state's place in /metrics' sessions by state. */
static const enum stats_state state_stats[] = {
    [ST_NEW] = STATS_NEW, [ST_PROXY] = STATS_PROXY, [ST_CMD] = STATS_COMMAND,
    [ST_AUTH_PLAIN] = STATS_AUTH, [ST_AUTH_USER] = STATS_AUTH, [ST_AUTH_PASS] = STATS_AUTH,
    [ST_DATA] = STATS_DATA, [ST_REJECTED] = STATS_REJECTED,
};
_Static_assert(ARRAY_LEN(state_stats) == ST_REJECTED + 1, "every state has its gauge");

void enter_state(struct session *s, enum state st)
{
    if (st == s->state)
        return;
    if (log_enabled(LOG_DEBUG))
        log_event(LOG_DEBUG, "state", "session", s->sid, "from", state_names[s->state],
                  "to", state_names[st], NULL);
    if (state_stats[st] != state_stats[s->state])
        stats_state_move(s->env->stats, (int)state_stats[s->state], (int)state_stats[st]);
    s->state = st;
}

void set_timeouts(struct session *s, int64_t ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* RFC 3848 */
const char *protocol(const struct session *s)
{
    return smtp_with_protocol(s->esmtp, s->tls, s->authed, false);
}

/* reverse_dns: the client's name is looked up when the dialogue starts
 * (not for a proxy's own health check), and the Received: header then says
 * the name or "unknown". */
bool wants_name(const struct session *s)
{
    return s->cfg->reverse_dns && !s->proxy_local;
}

void tx_reset(struct session *s)
{
    if (s->tx.dtx != NULL)
        s->env->deliver->ops->abort(s->tx.dtx);
    memset(&s->tx, 0, sizeof s->tx);
    s->held = false;
}

/* The start of a backend's callback: false when the session died while
 * it waited (it is freed now). */
bool wake(struct session *s)
{
    s->busy = false;
    if (!s->dead)
        return true;
    session_free(s);
    return false;
}

/* The end of it: read on, unless the answer came inside the call that
 * asked for it (process() is then still running and goes on by itself). */
void carry_on(struct session *s)
{
    if (!s->calling)
        process(s);
}

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
    stats_state_move(env->stats, (int)state_stats[s->state], -1);
    /* A TLS layer that failed has put its alert (handshake_failure, say)
     * beneath it, where freeing would drop it: one try to send it, so the
     * client learns why instead of reading an unexpected EOF. */
    struct bufferevent *under = s->bev != NULL ? bufferevent_get_underlying(s->bev) : NULL;
    if (under != NULL && bufferevent_getfd(under) >= 0) {
        struct evbuffer *out = bufferevent_get_output(under);
        size_t n = evbuffer_get_length(out);
        const unsigned char *p = n > 0 && n <= 1024 ? evbuffer_pullup(out, (ssize_t)n) : NULL;
        if (p != NULL)   /* a record or two at most; a full socket loses nothing worth keeping */
            (void)send(bufferevent_getfd(under), p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (s->bev != NULL)
        bufferevent_free(s->bev);
    else if (s->fd >= 0)
        close(s->fd);
    if (s->timer != NULL)
        event_free(s->timer);
    if (s->deadline != NULL)
        event_free(s->deadline);
    config_unref(s->cfg);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
    if (keep >= 0)
        reject_linger(env, keep);    /* still counted in clients until closed */
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

void close_after_reply(struct session *s)
{
    s->closing = true;
    bufferevent_disable(s->bev, EV_READ);
}

/* The same for a close the client did not ask for (421s). */
void hang_up(struct session *s)
{
    s->linger = true;
    close_after_reply(s);
}

/* ---- guard ----------------------------------------------------------- */

void offend(struct session *s, enum guard_reason what)
{
    struct session_env *env = s->env;
    struct guard_block made;
    if (guard_offend(env->guard, s->cfg, &s->client, what, util_now_ms(), &made))
        env->hooks->block_made(env->ctx, &made, s->sid);
    env->hooks->count(env->ctx, s->cfg, &s->client, what);
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

void bad_command(struct session *s, const char *text)
{
    reply(s, "%s", text);
    if (++s->errors >= SESSION_ERRORS_MAX) {
        reply(s, "421 4.7.0 %s Too many errors, closing connection", s->cfg->hostname);
        hang_up(s);
    }
}

static void handle_line(struct session *s, const char *line)
{
    if (s->state == ST_REJECTED) {
        const char *a = reject_answer(line);
        reply(s, "%s", a);
        if (a[0] == '2' || ++s->errors >= SESSION_ERRORS_MAX)
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
    session_command(s, line);
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
            enter_state(s, ST_CMD);
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
    handshake_deadline(s, 0);
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

void process(struct session *s)
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

void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process(arg);
}

void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct session *s = arg;
    if (s->closing)
        finish(s);
    else
        process(s);
}

void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct session *s = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* TLS handshake done: the dialogue's own time limits from now. */
        atomic_fetch_add(&s->env->stats->tls_sessions, 1);
        s->handshaking = false;
        handshake_deadline(s, 0);
        set_timeouts(s, s->state == ST_REJECTED ? REJECT_LINGER_MS : s->cfg->timeout_command_ms);
        return;
    }
    /* A timeout before the dialogue (PROXY header, TLS handshake) or after
     * the 554 has nobody to read a 421: close. */
    if ((what & BEV_EVENT_TIMEOUT) && !s->closing && s->state != ST_PROXY &&
        s->state != ST_REJECTED && !s->handshaking) {
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


static void handshake_expired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    log_event(LOG_INFO, "timeout", "ip", s->ip, "session", s->sid, "phase",
              s->state == ST_PROXY ? "proxy" : "tls_handshake", NULL);
    s->closing = true;
    s->peer_gone = true;     /* nothing was said: no linger */
    if (s->busy) {
        s->dead = true;
        return;
    }
    session_free(s);
}

void handshake_deadline(struct session *s, int64_t ms)
{
    if (ms <= 0) {
        if (s->deadline != NULL)
            evtimer_del(s->deadline);
        return;
    }
    if (s->deadline == NULL && (s->deadline = evtimer_new(s->env->base, handshake_expired, s)) == NULL)
        return;      /* out of memory: the idle timeouts still apply */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->deadline, &tv);
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

/* The 554 and what follows it (SPEC §3) in a session: on an implicit-TLS
 * listener inside TLS, after the handshake, so that the client can read
 * it; without `may_handshake` (reject_tls_allowed said no) such a client
 * is closed without a word. */
static void reject_session(struct session *s, bool may_handshake)
{
    const struct config *c = s->cfg;
    enter_state(s, ST_REJECTED);
    s->allowed = true;     /* no 421 on top of the 554 */
    if (s->mode == LISTEN_TLS) {
        SSL *ssl = may_handshake ? tls_ssl_new(s->env->hooks->tls(s->env->ctx)) : NULL;
        if (ssl == NULL) {
            s->peer_gone = true;
            close_after_reply(s);
            return;
        }
        if (!start_tls(s, ssl))
            return;
    }
    /* Under TLS it waits in the filter until the handshake is done. */
    reply(s, "%.*s", (int)c->reject_line_len - 2, c->reject_line);   /* without its CRLF */
    if (!s->handshaking)
        set_timeouts(s, REJECT_LINGER_MS);
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
        bool blocked = v == GUARD_REJECT_BLOCKED;
        atomic_fetch_add(blocked ? &env->stats->rejected_blocked : &env->stats->rejected_concurrency, 1);
        /* Aggregated per prefix and minute, each reason on its own. */
        struct addr prefix;
        uint32_t n = blocked ? guard_reject_note(env->guard, &s->client, now, &prefix)
                             : guard_concurrency_note(env->guard, c, &s->client, now, &prefix);
        reject_log(n, &prefix, v);
        reject_session(s, s->mode != LISTEN_TLS || reject_tls_allowed(env, &s->client, blocked, now));
        return;
    }
    atomic_fetch_add(&env->stats->accepted, 1);
    if (s->counted)
        env->hooks->count(env->ctx, c, &s->client, GUARD_CONN_RATE);
    /* A balancer's health checks (PROXY LOCAL, every few hundred ms)
     * would drown the log at info. */
    log_event(s->proxy_local ? LOG_DEBUG : LOG_INFO, "connect", "ip", s->ip, "session", s->sid,
              "tls", s->mode == LISTEN_TLS ? "yes" : NULL, "proxy", s->proxy_local ? "local" : NULL,
              NULL);
    if (s->mode == LISTEN_TLS && !start_tls(s, tls_ssl_new(env->hooks->tls(env->ctx))))
        return;
    enter_state(s, ST_CMD);
    set_timeouts(s, c->timeout_command_ms);
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
    bool tls_reject = false;     /* a blocked client that reads its 554 inside TLS */
    if (!c->proxy_protocol && !cidr_list_match(&c->allow, &peer) &&
        guard_check_reject(w->guard, &peer, now, &n, &prefix)) {
        atomic_fetch_add(&w->stats->rejected_blocked, 1);
        reject_log(n, &prefix, GUARD_REJECT_BLOCKED);
        if (mode != LISTEN_TLS) {
            reject_fd(w, fd, c->reject_line, c->reject_line_len);
            config_unref(c);
            return;
        }
        /* The handshake costs a session; past the bounds, just close. */
        if (!reject_tls_allowed(w, &peer, true, now)) {
            config_unref(c);
            close(fd);
            atomic_fetch_sub(w->clients, 1);
            return;
        }
        tls_reject = true;
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
    stats_state_move(w->stats, -1, (int)state_stats[ST_NEW]);
    if (!tls_reject)     /* like the plain fast path's: not a connection served */
        atomic_fetch_add(&w->stats->connections, 1);
    /* Reading stops at this much unprocessed input: TCP pushes back. */
    bufferevent_setwatermark(bev, EV_READ, 0, SMTP_AUTH_LINE_MAX * 2);
    bufferevent_setcb(bev, on_read, on_write, on_event, s);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (tls_reject) {
        reject_session(s, true);
    } else if (c->proxy_protocol) {
        enter_state(s, ST_PROXY);
        handshake_deadline(s, c->timeout_handshake_ms);
        return;
    } else {
        start_dialogue(s);
    }
    if (s->closing)
        finish(s);
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
    reject_drop_all(w);
}
