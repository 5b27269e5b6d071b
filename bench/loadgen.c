/* smtp-loadgen: an SMTP load generator for the Portcullis bench.
 *
 * epoll, non-blocking sockets, one event loop per thread (-t). Every run is
 * bounded in time (-d) and in count (-n), and only loopback targets are
 * accepted (127.0.0.0/8, ::1).
 *
 * Modes (one "op" each is what the rate counts):
 *   greet     connect, read the greeting, QUIT, read the reply, close.
 *             op = connection; codes = greeting codes. A server that closes
 *             right after its greeting (before answering QUIT) counts as ok.
 *   session   EHLO, [STARTTLS, EHLO], AUTH PLAIN, then --messages K times
 *             MAIL, RCPT, DATA of -s bytes; QUIT. op = message (latency
 *             to the reply after the final dot, from the connect for a
 *             connection's first message, else from its MAIL); codes =
 *             replies after the final dot (or the first unexpected reply).
 *   authfail  EHLO, AUTH PLAIN with a wrong password, QUIT. op = connection;
 *             codes = AUTH replies (or the greeting if it was not 220).
 *   auth      the same with the right password: the cost of a successful
 *             AUTH alone (no message). op = connection; codes = AUTH
 *             replies, so a 535 shows up as a code, not as speed.
 *   idle      open -c connections (greeting read; with --starttls also
 *             EHLO + STARTTLS + handshake) and hold them for -d seconds;
 *             reports how many are still open at the end. Prints a line
 *             "HOLDING open=N" on stderr once the ramp is done, so a driver
 *             can measure the server's memory while the connections are held.
 *
 * The last line on stdout is machine-readable:
 *   RESULT mode=greet rate=12345.6 p50_ms=1.2 p99_ms=3.4 ok=.. err=.. codes=220:10,554:99 ...
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_GREET, M_SESSION, M_AUTHFAIL, M_IDLE, M_AUTH };
static const char *const mode_names[] = {"greet", "session", "authfail", "idle", "auth"};
#define N_MODES (sizeof mode_names / sizeof mode_names[0])

/* ---- options ---------------------------------------------------------- */

static struct {
    enum mode mode;
    struct sockaddr_storage target;
    socklen_t targetlen;
    char host[64];
    int port;
    int threads;
    long conc;
    double secs;
    long long maxops;
    const char *user, *pass, *from, *to, *helo;
    long size;
    long messages;
    bool starttls;
    bool tls;            /* greet: implicit TLS (a /tls listener): handshake first */
    int sources;
    struct in_addr source_base;
    bool have_source_base;
    double timeout;      /* per op, seconds */
    double grace;        /* after the deadline, for ops in flight */
    double ramp_timeout; /* idle: the longest the ramp may take */
    long inflight;       /* idle: connects in flight per thread */
    bool quiet;
} O = {
    .mode = M_GREET, .port = 0, .threads = 1, .conc = 64, .secs = 10, .maxops = 100000000LL,
    .user = "bench@example.test", .pass = "bench", .to = "rcpt@example.test",
    .helo = "loadgen.bench.test", .size = 10240, .messages = 1, .timeout = 30,
    .grace = 5, .ramp_timeout = 120, .inflight = 200,
};

/* ---- time ------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram (log-linear, < 1.6 % error, microseconds) ------- */

#define HBUCKETS 2560

static int hist_index(uint64_t us)
{
    if (us < 128)
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 6;
    int mant = (int)(us >> shift);            /* 64..127 */
    int idx = 128 + (shift - 1) * 64 + (mant - 64);
    return idx < HBUCKETS ? idx : HBUCKETS - 1;
}

static double hist_value(int idx)
{
    if (idx < 128)
        return idx;
    int shift = (idx - 128) / 64 + 1;
    int mant = (idx - 128) % 64 + 64;
    return (double)((uint64_t)mant << shift) + (double)(1ULL << shift) / 2.0;
}

/* ---- shared run state --------------------------------------------------- */

static atomic_llong g_tickets;      /* ops started (greet/authfail/idle: conns; session: messages) */
static atomic_int g_stop;           /* main -> threads: no new ops */
static atomic_int g_abort;          /* main -> threads: close everything now */
static atomic_int g_ramp_stop;      /* idle: stop opening */
static atomic_int g_ramp_done;      /* idle: threads whose ramp is over */
static atomic_int g_threads_done;
static atomic_uint g_source_rr;
static uint64_t g_start, g_deadline;
static SSL_CTX *g_ssl;
static char *g_body;                /* DATA payload incl. the final CRLF.CRLF */
static size_t g_bodylen;
static char g_auth_ok[700], g_auth_bad[700];
static size_t g_auth_ok_len, g_auth_bad_len;

static bool take_ticket(void)
{
    return atomic_fetch_add(&g_tickets, 1) < O.maxops;
}

/* ---- connections ---------------------------------------------------------- */

enum state {
    ST_FREE, ST_WAIT, ST_CONNECTING, ST_GREET, ST_EHLO, ST_STARTTLS, ST_HANDSHAKE,
    ST_EHLO2, ST_AUTH, ST_MAIL, ST_RCPT, ST_DATA, ST_DOT, ST_QUIT, ST_HOLD,
};

enum err { E_CONNECT, E_RESET, E_TIMEOUT, E_PROTO, E_TLS, E_NERR };
static const char *const err_names[] = {"connect", "reset", "timeout", "proto", "tls"};

struct thread;

struct conn {
    struct thread *th;
    int fd;
    enum state state;
    SSL *ssl;
    uint64_t t_op;        /* when the op being timed began */
    uint64_t t_act;       /* last progress, for the timeout */
    uint64_t retry_at;    /* ST_WAIT: when to try again */
    int code;             /* the decisive reply code of this op, 0 = none yet */
    bool op_open;         /* an op is in flight on this connection */
    bool ehlo_tls;        /* EHLO advertised STARTTLS */
    bool ramping;         /* idle: counted in th->opening */
    long msgs;
    const char *wp;       /* pending output */
    size_t wl;
    char cmd[720];
    size_t inlen;
    char in[1024];
};

struct thread {
    int id;
    pthread_t tid;
    int ep;
    long nconn;
    struct conn *conns;
    long active;           /* conns not FREE/WAIT */
    long waiting;          /* conns in ST_WAIT */
    /* idle */
    long to_open, opening, holding, dropped, ramp_failed;
    bool ramp_over;
    /* results */
    unsigned long long ok, ok_win, errs[E_NERR], unfinished, conns_opened;
    unsigned long long codes[600];
    unsigned long long hist[HBUCKETS];
    uint64_t t_done;
};

static void conn_close(struct conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);   /* also removes it from the epoll set */
        c->fd = -1;
    }
    if (c->state != ST_FREE && c->state != ST_WAIT)
        c->th->active--;
    if (c->ramping) {
        c->ramping = false;
        c->th->opening--;
    }
    c->state = ST_FREE;
    c->wl = 0;
    c->inlen = 0;
    c->op_open = false;
}

static void op_done(struct conn *c, bool ok, enum err why)
{
    struct thread *th = c->th;
    uint64_t t = now_ns();
    if (!c->op_open)
        return;
    c->op_open = false;
    if (c->code >= 100 && c->code < 600)
        th->codes[c->code]++;
    if (ok) {
        th->ok++;
        if (t <= g_deadline)
            th->ok_win++;
        uint64_t us = (t - c->t_op) / 1000;
        th->hist[hist_index(us)]++;
    } else {
        th->errs[why]++;
    }
}

static void conn_fail(struct conn *c, enum err why)
{
    if (c->state == ST_HOLD) {
        c->th->holding--;
        c->th->dropped++;
    } else if (O.mode == M_IDLE && c->op_open) {
        c->th->ramp_failed++;
        op_done(c, false, why);
    } else if (c->op_open) {
        op_done(c, false, why);
    }
    conn_close(c);
}

/* Queues one command; it is written as soon as the socket takes it. */
static void send_cmd(struct conn *c, const char *s, size_t n)
{
    c->wp = s;
    c->wl = n;
}

static void send_text(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof c->cmd)
        n = sizeof c->cmd - 1;
    memcpy(c->cmd, s, n);
    send_cmd(c, c->cmd, n);
}

static bool can_start(struct thread *th)
{
    (void)th;
    return !atomic_load_explicit(&g_stop, memory_order_relaxed);
}

static void start_message(struct conn *c)
{
    if (c->msgs >= O.messages || !can_start(c->th) || !take_ticket()) {
        c->op_open = false;     /* nothing in flight: the QUIT is not timed */
        c->state = ST_QUIT;
        send_text(c, "QUIT\r\n");
        return;
    }
    /* The first message of a connection is timed from the connect (so its
     * latency includes EHLO, STARTTLS and AUTH); the next ones from MAIL. */
    if (c->msgs > 0)
        c->t_op = now_ns();
    c->op_open = true;
    c->code = 0;
    c->state = ST_MAIL;
    int n = snprintf(c->cmd, sizeof c->cmd, "MAIL FROM:<%s>\r\n", O.from);
    send_cmd(c, c->cmd, (size_t)n);
}

static void start_tls(struct conn *c)
{
    c->ssl = SSL_new(g_ssl);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        conn_fail(c, E_TLS);
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;
}

static void send_ehlo(struct conn *c, enum state next)
{
    c->state = next;
    c->ehlo_tls = false;
    int n = snprintf(c->cmd, sizeof c->cmd, "EHLO %s\r\n", O.helo);
    send_cmd(c, c->cmd, (size_t)n);
}

static void hold(struct conn *c)
{
    op_done(c, true, E_PROTO);
    c->state = ST_HOLD;
    c->ramping = false;
    c->th->opening--;
    c->th->holding++;
}

/* Ends an op on an unexpected reply: record it, say QUIT. */
static void bad_reply(struct conn *c, int code)
{
    if (c->op_open) {
        if (!c->code)
            c->code = code;
        op_done(c, false, E_PROTO);
    }
    c->state = ST_QUIT;
    send_text(c, "QUIT\r\n");
}

/* One complete reply (its last line) arrived. Returns false if the
 * connection was closed. */
static bool on_reply(struct conn *c, int code)
{
    c->t_act = now_ns();
    switch (c->state) {
    case ST_GREET:
        if (O.mode == M_GREET) {
            c->code = code;
            c->state = ST_QUIT;
            send_text(c, "QUIT\r\n");
        } else if (code != 220) {
            if (O.mode == M_IDLE) {
                c->code = code;
                if (O.starttls) {      /* cannot go on to TLS: not held */
                    bad_reply(c, code);
                } else {
                    hold(c);
                }
            } else {
                bad_reply(c, code);
            }
        } else if (O.mode == M_IDLE && !O.starttls) {
            c->code = code;
            hold(c);
        } else {
            send_ehlo(c, ST_EHLO);
        }
        break;
    case ST_EHLO:
    case ST_EHLO2:
        if (code != 250) {
            bad_reply(c, code);
        } else if (O.starttls && c->state == ST_EHLO) {
            if (!c->ehlo_tls) {
                bad_reply(c, 0);
            } else {
                c->state = ST_STARTTLS;
                send_text(c, "STARTTLS\r\n");
            }
        } else if (O.mode == M_IDLE) {
            c->code = code;
            hold(c);
        } else {
            c->state = ST_AUTH;
            if (O.mode == M_AUTHFAIL)
                send_cmd(c, g_auth_bad, g_auth_bad_len);
            else
                send_cmd(c, g_auth_ok, g_auth_ok_len);
        }
        break;
    case ST_STARTTLS:
        if (code != 220) {
            bad_reply(c, code);
        } else if (c->inlen) {
            bad_reply(c, 0);      /* data after the 220: not TLS */
        } else {
            start_tls(c);
            return c->fd >= 0;
        }
        break;
    case ST_AUTH:
        if (O.mode == M_AUTHFAIL || O.mode == M_AUTH) {
            c->code = code;
            c->state = ST_QUIT;
            send_text(c, "QUIT\r\n");
        } else if (code != 235) {
            bad_reply(c, code);
        } else {
            start_message(c);
        }
        break;
    case ST_MAIL:
        if (code != 250) {
            bad_reply(c, code);
        } else {
            c->state = ST_RCPT;
            int n = snprintf(c->cmd, sizeof c->cmd, "RCPT TO:<%s>\r\n", O.to);
            send_cmd(c, c->cmd, (size_t)n);
        }
        break;
    case ST_RCPT:
        if (code != 250 && code != 251) {
            bad_reply(c, code);
        } else {
            c->state = ST_DATA;
            send_text(c, "DATA\r\n");
        }
        break;
    case ST_DATA:
        if (code != 354) {
            bad_reply(c, code);
        } else {
            c->state = ST_DOT;
            send_cmd(c, g_body, g_bodylen);
        }
        break;
    case ST_DOT:
        c->code = code;
        if (code != 250) {
            bad_reply(c, code);
        } else {
            op_done(c, true, E_PROTO);
            c->msgs++;
            start_message(c);
        }
        break;
    case ST_QUIT:
        if (O.mode != M_SESSION)
            op_done(c, true, E_PROTO);
        conn_close(c);
        return false;
    case ST_HOLD:
        /* e.g. a 421 at the idle timeout: the server is closing it */
        break;
    default:
        bad_reply(c, code);
        break;
    }
    return true;
}

/* Splits the input into reply lines. Returns false if the conn was closed. */
static bool parse_input(struct conn *c)
{
    for (;;) {
        char *nl = memchr(c->in, '\n', c->inlen);
        if (!nl) {
            if (c->inlen == sizeof c->in) {
                conn_fail(c, E_PROTO);   /* a reply line longer than any sane one */
                return false;
            }
            return true;
        }
        size_t linelen = (size_t)(nl - c->in) + 1;
        int code = 0;
        bool last = true;
        if (linelen >= 4 && c->in[0] >= '1' && c->in[0] <= '5' && c->in[1] >= '0' &&
            c->in[1] <= '9' && c->in[2] >= '0' && c->in[2] <= '9') {
            code = (c->in[0] - '0') * 100 + (c->in[1] - '0') * 10 + (c->in[2] - '0');
            last = c->in[3] != '-';
            if (linelen >= 12 && (c->state == ST_EHLO) &&
                strncasecmp(c->in + 4, "STARTTLS", 8) == 0)
                c->ehlo_tls = true;
        } else {
            memmove(c->in, c->in + linelen, c->inlen - linelen);
            c->inlen -= linelen;
            conn_fail(c, E_PROTO);
            return false;
        }
        memmove(c->in, c->in + linelen, c->inlen - linelen);
        c->inlen -= linelen;
        if (last && !on_reply(c, code))
            return false;
        if (c->state == ST_HANDSHAKE)
            return true;
    }
}

/* The server closed (EOF or reset). */
static void on_eof(struct conn *c, bool reset)
{
    if (c->state == ST_QUIT && O.mode != M_SESSION && c->code) {
        /* It closed after its reply without waiting for our QUIT (the limit
         * server, postscreen): the op is complete. */
        op_done(c, true, E_PROTO);
        conn_close(c);
        return;
    }
    if (c->state == ST_QUIT && !c->op_open) {   /* session: after its messages */
        conn_close(c);
        return;
    }
    (void)reset;
    conn_fail(c, E_RESET);
}

/* Returns bytes, 0 at EOF, -1 would block, -2 error (errno set). */
static ssize_t io_read(struct conn *c, void *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -1;
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
            return 0;
        ERR_clear_error();
        errno = ECONNRESET;
        return -2;
    }
    ssize_t r = read(c->fd, buf, n);
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -1;
    return -2;
}

static ssize_t io_write(struct conn *c, const void *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_write(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -1;
        ERR_clear_error();
        errno = EPIPE;
        return -2;
    }
    ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -1;
    return -2;
}

/* Runs a connection as far as the socket lets it (edge-triggered epoll). */
static void conn_run(struct conn *c)
{
    while (c->fd >= 0) {
        if (c->state == ST_HANDSHAKE) {
            int r = SSL_do_handshake(c->ssl);
            if (r == 1) {
                c->t_act = now_ns();
                if (O.tls)
                    c->state = ST_GREET;     /* implicit TLS: the greeting comes now */
                else
                    send_ehlo(c, ST_EHLO2);
            } else {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return;
                ERR_clear_error();
                conn_fail(c, E_TLS);
                return;
            }
        }
        while (c->wl) {
            ssize_t w = io_write(c, c->wp, c->wl);
            if (w == -1)
                break;
            if (w < 0) {
                on_eof(c, true);
                return;
            }
            c->wp += w;
            c->wl -= (size_t)w;
            c->t_act = now_ns();
        }
        ssize_t r = io_read(c, c->in + c->inlen, sizeof c->in - c->inlen);
        if (r == 0 || r == -2) {
            on_eof(c, r == -2);
            return;
        }
        if (r < 0 && c->state != ST_HANDSHAKE)
            return;   /* read would block; output is flushed or waits for EPOLLOUT */
        if (r > 0) {
            c->inlen += (size_t)r;
            if (!parse_input(c))
                return;
        }
    }
}

static int connect_one(struct thread *th, struct conn *c)
{
    int fam = O.target.ss_family;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (O.sources > 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        unsigned k = atomic_fetch_add_explicit(&g_source_rr, 1, memory_order_relaxed) % (unsigned)O.sources;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(ntohl(O.source_base.s_addr) + k);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(fd);
            return -1;
        }
    }
    if (O.mode == M_SESSION || O.mode == M_AUTHFAIL || O.mode == M_AUTH) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (connect(fd, (struct sockaddr *)&O.target, O.targetlen) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(th->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* Starts a new connection (and its op) in a free slot. */
static void conn_start(struct thread *th, struct conn *c)
{
    uint64_t t = now_ns();
    if (O.mode != M_SESSION ? !take_ticket() : atomic_load(&g_tickets) >= O.maxops)
        return;
    c->t_op = c->t_act = t;
    c->code = 0;
    c->msgs = 0;
    c->inlen = 0;
    c->wl = 0;
    /* session: the connection's setup (EHLO, AUTH) counts as part of its
     * first message, so a failure there is an error, not silence. */
    c->op_open = true;
    if (connect_one(th, c) < 0) {
        c->op_open = false;
        th->errs[E_CONNECT]++;
        if (O.mode == M_IDLE) {
            th->ramp_failed++;
            c->state = ST_FREE;
        } else {
            c->state = ST_WAIT;             /* back off: ports or fds run out */
            c->retry_at = t + 10 * 1000000ULL;
            th->waiting++;
        }
        return;
    }
    th->conns_opened++;
    th->active++;
    c->state = ST_CONNECTING;
    if (O.mode == M_IDLE) {
        th->opening++;
        c->ramping = true;
    }
}

static void on_event(struct conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == ST_CONNECTING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err) {
                conn_fail(c, E_CONNECT);
                return;
            }
        }
        c->state = ST_GREET;
        c->t_act = now_ns();
        if (O.tls) {
            start_tls(c);     /* full handshakes: no session resumption */
            if (c->fd < 0)
                return;
        }
    }
    conn_run(c);
}

static void check_timeouts(struct thread *th, uint64_t t)
{
    uint64_t limit = (uint64_t)(O.timeout * 1e9);
    for (long i = 0; i < th->nconn; i++) {
        struct conn *c = &th->conns[i];
        if (c->state == ST_FREE || c->state == ST_WAIT || c->state == ST_HOLD)
            continue;
        if (t - c->t_act > limit)
            conn_fail(c, E_TIMEOUT);
    }
}

static void *thread_main(void *arg)
{
    struct thread *th = arg;
    struct epoll_event evs[256];
    uint64_t next_scan = now_ns() + 250000000ULL;
    long next_idle = 0;
    bool ramp_reported = false;

    for (;;) {
        uint64_t t = now_ns();
        bool stop = atomic_load(&g_stop);
        if (atomic_load(&g_abort))
            break;
        if (O.mode == M_IDLE) {
            if (!th->ramp_over) {
                bool rs = atomic_load(&g_ramp_stop) || stop;
                while (!rs && th->opening < O.inflight && next_idle < th->nconn) {
                    conn_start(th, &th->conns[next_idle++]);
                }
                if (rs || (next_idle >= th->nconn && th->opening == 0))
                    th->ramp_over = true;
            }
            if (th->ramp_over && !ramp_reported) {
                ramp_reported = true;
                atomic_fetch_add(&g_ramp_done, 1);
            }
            if (stop)
                break;
        } else {
            if (!stop) {
                for (long i = 0; i < th->nconn; i++) {
                    struct conn *c = &th->conns[i];
                    if (c->state == ST_FREE || (c->state == ST_WAIT && t >= c->retry_at)) {
                        if (c->state == ST_WAIT)
                            th->waiting--;
                        c->state = ST_FREE;
                        conn_start(th, c);
                        if (c->state == ST_FREE)
                            break;        /* out of tickets */
                    }
                }
            }
            if (th->active == 0 && (stop || atomic_load(&g_tickets) >= O.maxops)) {
                if (!th->t_done)
                    th->t_done = t;
                if (stop || th->waiting == 0)
                    break;
            }
        }
        int timeout = 50;
        if (th->waiting)
            timeout = 5;
        int n = epoll_wait(th->ep, evs, 256, timeout);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        t = now_ns();
        if (t >= next_scan) {
            next_scan = t + 250000000ULL;
            check_timeouts(th, t);
        }
    }
    if (O.mode == M_IDLE) {
        /* Take in what happened last (a server closing) before counting. */
        int n = epoll_wait(th->ep, evs, 256, 0);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    for (long i = 0; i < th->nconn; i++) {
        struct conn *c = &th->conns[i];
        if (c->state == ST_FREE || c->state == ST_WAIT)
            continue;
        if (c->op_open)
            th->unfinished++;
        c->op_open = false;
        conn_close(c);   /* a held one stays counted in th->holding: open at the end */
    }
    if (!th->t_done)
        th->t_done = now_ns();
    atomic_fetch_add(&g_threads_done, 1);
    return NULL;
}

/* ---- setup ------------------------------------------------------------- */

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static size_t make_auth(char *out, size_t outsz, const char *user, const char *pass)
{
    unsigned char raw[420];
    size_t ul = strlen(user), pl = strlen(pass);
    raw[0] = 0;
    memcpy(raw + 1, user, ul);
    raw[1 + ul] = 0;
    memcpy(raw + 2 + ul, pass, pl);
    char enc[600];
    b64(raw, ul + pl + 2, enc);
    int n = snprintf(out, outsz, "AUTH PLAIN %s\r\n", enc);
    return (size_t)n;
}

static void make_body(void)
{
    /* Headers, then 78-character lines of text, the whole about -s bytes. */
    size_t cap = (size_t)O.size + 1024;
    g_body = malloc(cap);
    if (!g_body) {
        perror("malloc");
        exit(1);
    }
    int n = snprintf(g_body, cap,
                     "From: <%s>\r\nTo: <%s>\r\nSubject: smtp-loadgen bench message\r\n"
                     "Message-ID: <loadgen.%ld@bench.test>\r\n"
                     "Date: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\n",
                     O.from, O.to, (long)getpid());
    size_t len = (size_t)n;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
    size_t k = 0;
    while (len + 80 <= (size_t)O.size) {
        for (int i = 0; i < 76; i++)
            g_body[len++] = alphabet[(k++ * 7) % (sizeof alphabet - 1)];
        g_body[len++] = '\r';
        g_body[len++] = '\n';
    }
    while (len + 2 < (size_t)O.size)
        g_body[len++] = 'z';
    memcpy(g_body + len, "\r\n.\r\n", 5);
    g_bodylen = len + 5;
}

static bool parse_target(const char *host, int port)
{
    memset(&O.target, 0, sizeof O.target);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&O.target;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&O.target;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "smtp-loadgen: refusing %s: only loopback targets (127.0.0.0/8, ::1)\n", host);
            return false;
        }
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        O.targetlen = sizeof *s4;
        return true;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
            fprintf(stderr, "smtp-loadgen: refusing %s: only loopback targets (127.0.0.0/8, ::1)\n", host);
            return false;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        O.targetlen = sizeof *s6;
        return true;
    }
    fprintf(stderr, "smtp-loadgen: '%s' is not an IP address literal (no DNS here)\n", host);
    return false;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: smtp-loadgen MODE -P PORT [options]\n"
        "MODE: greet | session | authfail | auth | idle\n"
        "  -H, --host ADDR        target address, loopback only (default 127.0.0.1)\n"
        "  -P, --port PORT        target port (required)\n"
        "  -t, --threads N        event-loop threads (default 1)\n"
        "  -c, --concurrency N    connections at once (default 64)\n"
        "  -d, --duration SECS    run time; idle: hold time after the ramp (default 10)\n"
        "  -n, --max N            at most N ops (default 100000000)\n"
        "  -u, --user USER        AUTH user (default bench@example.test)\n"
        "  -p, --pass PASS        AUTH password (default bench)\n"
        "  -s, --size BYTES       message size for session (default 10240)\n"
        "      --messages K       messages per connection (default 1)\n"
        "      --from ADDR        envelope sender (default: the user)\n"
        "      --to ADDR          recipient (default rcpt@example.test)\n"
        "      --helo NAME        EHLO name (default loadgen.bench.test)\n"
        "      --starttls         session/authfail/auth/idle: STARTTLS before AUTH / holding\n"
        "      --tls              greet: implicit TLS (a /tls listener): a full handshake,\n"
        "                         then the greeting and QUIT inside TLS\n"
        "      --sources N        bind to N source addresses from --source-base\n"
        "      --source-base IP   first source address (default 127.0.0.1)\n"
        "      --timeout SECS     an op without progress this long fails (default 30)\n"
        "      --grace SECS       after -d, time for ops in flight (default 5)\n"
        "      --ramp-timeout S   idle: longest ramp (default 120)\n"
        "      --inflight N       idle: connects in flight per thread (default 200)\n"
        "  -q, --quiet            only the RESULT line\n");
}

static long num(const char *s, const char *what, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "smtp-loadgen: bad %s '%s' (%ld..%ld)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static double fnum(const char *s, const char *what, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "smtp-loadgen: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static void raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t need = (rlim_t)want;
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max < need) {
        long nr_open = 1048576;
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (f) {
            if (fscanf(f, "%ld", &nr_open) != 1)
                nr_open = 1048576;
            fclose(f);
        }
        rl.rlim_max = need > (rlim_t)nr_open ? (rlim_t)nr_open : need;   /* root only */
    }
    rl.rlim_cur = need > rl.rlim_max ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fprintf(stderr, "smtp-loadgen: warning: RLIMIT_NOFILE is %llu, %ld wanted\n",
                (unsigned long long)rl.rlim_cur, want);
}

static double pct(const unsigned long long *h, unsigned long long total, double p)
{
    if (!total)
        return 0;
    unsigned long long rank = (unsigned long long)(p * (double)total);
    if (rank >= total)
        rank = total - 1;
    unsigned long long seen = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        seen += h[i];
        if (seen > rank)
            return hist_value(i) / 1000.0;
    }
    return hist_value(HBUCKETS - 1) / 1000.0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'}, {"port", 1, 0, 'P'}, {"threads", 1, 0, 't'},
        {"concurrency", 1, 0, 'c'}, {"duration", 1, 0, 'd'}, {"max", 1, 0, 'n'},
        {"user", 1, 0, 'u'}, {"pass", 1, 0, 'p'}, {"size", 1, 0, 's'},
        {"messages", 1, 0, 1}, {"from", 1, 0, 2}, {"to", 1, 0, 3}, {"helo", 1, 0, 4},
        {"starttls", 0, 0, 5}, {"sources", 1, 0, 6}, {"source-base", 1, 0, 7},
        {"timeout", 1, 0, 8}, {"grace", 1, 0, 9}, {"ramp-timeout", 1, 0, 10},
        {"inflight", 1, 0, 11}, {"tls", 0, 0, 12}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *host = "127.0.0.1";
    int opt;
    while ((opt = getopt_long(argc, argv, "H:P:t:c:d:n:u:p:s:qh", lo, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'P': O.port = (int)num(optarg, "port", 1, 65535); break;
        case 't': O.threads = (int)num(optarg, "thread count", 1, 256); break;
        case 'c': O.conc = num(optarg, "concurrency", 1, 1000000); break;
        case 'd': O.secs = fnum(optarg, "duration", 0.01, 86400); break;
        case 'n': O.maxops = num(optarg, "max", 1, 4000000000L); break;
        case 'u': O.user = optarg; break;
        case 'p': O.pass = optarg; break;
        case 's': O.size = num(optarg, "size", 16, 1L << 30); break;
        case 1: O.messages = num(optarg, "messages", 1, 1000000); break;
        case 2: O.from = optarg; break;
        case 3: O.to = optarg; break;
        case 4: O.helo = optarg; break;
        case 5: O.starttls = true; break;
        case 6: O.sources = (int)num(optarg, "sources", 1, 250); break;
        case 7:
            if (inet_pton(AF_INET, optarg, &O.source_base) != 1 ||
                (ntohl(O.source_base.s_addr) >> 24) != 127) {
                fprintf(stderr, "smtp-loadgen: --source-base must be an IPv4 loopback address\n");
                return 2;
            }
            O.have_source_base = true;
            break;
        case 8: O.timeout = fnum(optarg, "timeout", 0.01, 86400); break;
        case 9: O.grace = fnum(optarg, "grace", 0, 3600); break;
        case 10: O.ramp_timeout = fnum(optarg, "ramp timeout", 0.1, 86400); break;
        case 11: O.inflight = num(optarg, "inflight", 1, 100000); break;
        case 12: O.tls = true; break;
        case 'q': O.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    bool found = false;
    for (size_t i = 0; i < N_MODES; i++)
        if (strcmp(argv[optind], mode_names[i]) == 0) {
            O.mode = (enum mode)i;
            found = true;
        }
    if (!found) {
        fprintf(stderr, "smtp-loadgen: unknown mode '%s'\n", argv[optind]);
        return 2;
    }
    if (!O.port) {
        fprintf(stderr, "smtp-loadgen: -P PORT is required\n");
        return 2;
    }
    if (!parse_target(host, O.port))
        return 2;
    snprintf(O.host, sizeof O.host, "%s", host);
    if (O.have_source_base && !O.sources)
        O.sources = 1;
    if (O.sources) {
        if (O.target.ss_family != AF_INET) {
            fprintf(stderr, "smtp-loadgen: --sources needs an IPv4 target\n");
            return 2;
        }
        if (!O.have_source_base)
            inet_pton(AF_INET, "127.0.0.1", &O.source_base);
        if (((ntohl(O.source_base.s_addr) & 0xff) + (unsigned)O.sources - 1) > 254) {
            fprintf(stderr, "smtp-loadgen: --source-base + --sources leaves 127.x.y.0/24\n");
            return 2;
        }
    }
    if (strlen(O.user) > 200 || strlen(O.pass) > 200) {
        fprintf(stderr, "smtp-loadgen: user and password are limited to 200 bytes\n");
        return 2;
    }
    if (!O.from)
        O.from = O.user;
    if (O.threads > O.conc)
        O.threads = (int)O.conc;
    if (O.starttls && O.mode == M_GREET) {
        fprintf(stderr, "smtp-loadgen: --starttls does not apply to greet\n");
        return 2;
    }
    if (O.tls && O.mode != M_GREET) {
        fprintf(stderr, "smtp-loadgen: --tls applies to greet only\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    raise_nofile(O.conc + 256);
    g_auth_ok_len = make_auth(g_auth_ok, sizeof g_auth_ok, O.user, O.pass);
    char wrong[240];
    snprintf(wrong, sizeof wrong, "%s-wrong", O.pass);
    g_auth_bad_len = make_auth(g_auth_bad, sizeof g_auth_bad, O.user, wrong);
    make_body();
    if (O.starttls || O.tls) {
        g_ssl = SSL_CTX_new(TLS_client_method());
        if (!g_ssl) {
            fprintf(stderr, "smtp-loadgen: SSL_CTX_new failed\n");
            return 1;
        }
        SSL_CTX_set_min_proto_version(g_ssl, TLS1_2_VERSION);
        SSL_CTX_set_verify(g_ssl, SSL_VERIFY_NONE, NULL);   /* self-signed bench certs */
        SSL_CTX_set_mode(g_ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }

    struct thread *ths = calloc((size_t)O.threads, sizeof *ths);
    if (!ths) {
        perror("calloc");
        return 1;
    }
    for (int i = 0; i < O.threads; i++) {
        struct thread *th = &ths[i];
        th->id = i;
        th->nconn = O.conc / O.threads + (i < O.conc % O.threads ? 1 : 0);
        th->conns = calloc((size_t)th->nconn, sizeof *th->conns);
        th->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!th->conns || th->ep < 0) {
            perror("smtp-loadgen: setup");
            return 1;
        }
        for (long k = 0; k < th->nconn; k++) {
            th->conns[k].fd = -1;
            th->conns[k].th = th;
        }
    }

    g_start = now_ns();
    g_deadline = O.mode == M_IDLE ? UINT64_MAX : g_start + (uint64_t)(O.secs * 1e9);
    for (int i = 0; i < O.threads; i++) {
        int e = pthread_create(&ths[i].tid, NULL, thread_main, &ths[i]);
        if (e) {
            fprintf(stderr, "smtp-loadgen: pthread_create: %s\n", strerror(e));
            return 1;
        }
    }

    uint64_t ramp_end = 0, hold_start = 0;
    long holding_at_start = 0;
    if (O.mode == M_IDLE) {
        uint64_t ramp_deadline = g_start + (uint64_t)(O.ramp_timeout * 1e9);
        while (atomic_load(&g_ramp_done) < O.threads && now_ns() < ramp_deadline)
            usleep(10000);
        atomic_store(&g_ramp_stop, 1);
        while (atomic_load(&g_ramp_done) < O.threads)
            usleep(1000);
        ramp_end = now_ns();
        for (int i = 0; i < O.threads; i++)
            holding_at_start += __atomic_load_n(&ths[i].holding, __ATOMIC_RELAXED);
        fprintf(stderr, "HOLDING open=%ld ramp_s=%.2f\n", holding_at_start,
                (double)(ramp_end - g_start) / 1e9);
        fflush(stderr);
        hold_start = now_ns();
        uint64_t hold_end = hold_start + (uint64_t)(O.secs * 1e9);
        while (now_ns() < hold_end)
            usleep(20000);
        atomic_store(&g_stop, 1);
    } else {
        for (;;) {
            uint64_t t = now_ns();
            if (t >= g_deadline || atomic_load(&g_threads_done) == O.threads)
                break;
            uint64_t left = g_deadline - t;
            usleep(left > 10000000ULL ? 10000 : (useconds_t)(left / 1000 + 1));
        }
        atomic_store(&g_stop, 1);
        uint64_t grace_end = now_ns() + (uint64_t)(O.grace * 1e9);
        while (atomic_load(&g_threads_done) < O.threads && now_ns() < grace_end)
            usleep(5000);
        atomic_store(&g_abort, 1);
    }
    for (int i = 0; i < O.threads; i++)
        pthread_join(ths[i].tid, NULL);

    /* ---- merge and report ---- */
    static unsigned long long hist[HBUCKETS], codes[600];
    unsigned long long ok = 0, ok_win = 0, errs[E_NERR] = {0}, unfinished = 0, conns = 0;
    long holding = 0, dropped = 0, ramp_failed = 0;
    uint64_t t_done = 0;
    for (int i = 0; i < O.threads; i++) {
        struct thread *th = &ths[i];
        ok += th->ok;
        ok_win += th->ok_win;
        unfinished += th->unfinished;
        conns += th->conns_opened;
        holding += th->holding;
        dropped += th->dropped;
        ramp_failed += th->ramp_failed;
        for (int k = 0; k < E_NERR; k++)
            errs[k] += th->errs[k];
        for (int k = 0; k < HBUCKETS; k++)
            hist[k] += th->hist[k];
        for (int k = 0; k < 600; k++)
            codes[k] += th->codes[k];
        if (th->t_done > t_done)
            t_done = th->t_done;
    }
    unsigned long long err = 0;
    for (int k = 0; k < E_NERR; k++)
        err += errs[k];
    double rate, window;
    if (O.mode == M_IDLE) {
        window = (double)(ramp_end - g_start) / 1e9;
        rate = window > 0 ? (double)ok / window : 0;
    } else {
        uint64_t end = t_done && t_done < g_deadline ? t_done : g_deadline;
        window = (double)(end - g_start) / 1e9;
        rate = window > 0 ? (double)ok_win / window : 0;
    }
    double p50 = pct(hist, ok, 0.50), p99 = pct(hist, ok, 0.99), pmax = 0;
    for (int i = HBUCKETS - 1; i >= 0; i--)
        if (hist[i]) {
            pmax = hist_value(i) / 1000.0;
            break;
        }
    char codestr[1024] = "-";
    size_t cl = 0;
    for (int k = 100; k < 600; k++)
        if (codes[k] && cl < sizeof codestr - 32)
            cl += (size_t)snprintf(codestr + cl, sizeof codestr - cl, "%s%d:%llu", cl ? "," : "", k, codes[k]);
    char errstr[256];
    size_t el = 0;
    for (int k = 0; k < E_NERR; k++)
        el += (size_t)snprintf(errstr + el, sizeof errstr - el, "%s%s:%llu", k ? "," : "", err_names[k], errs[k]);

    if (!O.quiet) {
        printf("smtp-loadgen %s -> %s:%d  threads=%d concurrency=%ld%s\n", mode_names[O.mode],
               O.host, O.port, O.threads, O.conc, O.starttls ? " starttls" : "");
        if (O.mode == M_IDLE) {
            printf("  ramp: %llu connections opened in %.2f s (%.0f/s), %ld failed\n", ok, window,
                   rate, ramp_failed);
            printf("  held %.1f s: open at start %ld, open at end %ld, dropped by server %ld\n",
                   O.secs, holding_at_start, holding, dropped);
        } else {
            printf("  window %.2f s: %llu ok (%llu within the window), %llu errors, %llu unfinished, %llu connections\n",
                   window, ok, ok_win, err, unfinished, conns);
            printf("  rate %.1f %s/s   latency p50 %.3f ms  p99 %.3f ms  max %.1f ms\n", rate,
                   O.mode == M_SESSION ? "msgs" : "conns", p50, p99, pmax);
        }
        printf("  reply codes: %s\n  errors: %s\n", codestr, errstr);
    }
    printf("RESULT mode=%s rate=%.1f p50_ms=%.3f p99_ms=%.3f ok=%llu err=%llu codes=%s errs=%s "
           "unfinished=%llu conns=%llu secs=%.2f conc=%ld threads=%d",
           mode_names[O.mode], rate, p50, p99, ok, err, codestr, errstr, unfinished, conns, window,
           O.conc, O.threads);
    if (O.mode == M_IDLE)
        printf(" open=%ld open_at_start=%ld dropped=%ld", holding, holding_at_start, dropped);
    printf("\n");
    fflush(stdout);
    return 0;
}
