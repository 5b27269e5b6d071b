#include "smtp/reject.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "base/log.h"
#include "base/util.h"

/* reject: the 554 fast path and the linger. A blocked client before any session exists: the 554, then a tiny state
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
            if (quit || ++r->errors >= SESSION_ERRORS_MAX) {
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

void reject_linger(struct session_env *w, evutil_socket_t fd)
{
    shutdown(fd, SHUT_WR);
    if (rejected_new(w, fd, true) == NULL) {
        close(fd);
        atomic_fetch_sub(w->clients, 1);
    }
}

void reject_fd(struct session_env *w, evutil_socket_t fd, const char *line, size_t len)
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
void reject_log(uint32_t n, const struct addr *prefix)
{
    if (n == 0)
        return;
    char p[ADDR_STRLEN], cnt[16];
    addr_format(prefix, true, p);
    snprintf(cnt, sizeof cnt, "%u", n);
    log_event(LOG_INFO, "reject", "ip", p, "count", cnt, "reason", "blocked", NULL);
}


/* A blocked client's whole dialogue: 503 to everything, 221 to QUIT. */
const char *reject_answer(const char *line)
{
    if (strncasecmp(line, "QUIT", 4) == 0 && (line[4] == '\0' || line[4] == ' '))
        return "221 2.0.0 Bye";
    return "503 5.5.1 Bad sequence of commands";
}

void reject_drop_all(struct session_env *w)
{
    struct rejected *r;
    while ((r = TAILQ_FIRST(&w->rejected)) != NULL)
        rejected_free(r);
    while ((r = TAILQ_FIRST(&w->lingering)) != NULL)
        rejected_free(r);
}
