/* bench-spray: connections from many distinct addresses, as an attacker
 * behind (or posing as) a proxy sends them: each connection carries a PROXY
 * v2 header naming a fresh source address, then QUIT, and reads until the
 * server closes. Keeps -c connections in flight on one epoll loop.
 *
 * Addresses: the i-th is 10.x.y.z (i < 2^24) or, with -6,
 * 2001:db8:HHHH:LLLL::1 (one /64 each), for i in [-b, -b + -n).
 *
 * Usage: bench-spray -P PORT -n COUNT [-b FIRST] [-c CONCURRENCY] [-6] [-t SECONDS]
 * Last line: RESULT spray n=.. seconds=.. conns_per_s=.. ok=.. rejected=.. errors=.. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const uint8_t V2_SIG[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

struct conn {
    int fd;
    uint64_t idx;    /* which address */
    bool sent;
    char head[4];    /* the first bytes of the reply */
    size_t got;
};

static int g_port, g_conc = 64, g_v6;
static uint64_t g_next, g_end;
static uint64_t n_ok, n_rej, n_err, n_done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t header(uint64_t i, uint8_t *out)
{
    memcpy(out, V2_SIG, 12);
    out[12] = 0x21;                     /* version 2, PROXY */
    size_t n;
    if (!g_v6) {
        out[13] = 0x11;                 /* TCP over IPv4 */
        out[14] = 0, out[15] = 12;
        uint8_t *p = out + 16;
        p[0] = 10, p[1] = (uint8_t)(i >> 16), p[2] = (uint8_t)(i >> 8), p[3] = (uint8_t)i;
        p[4] = 192, p[5] = 0, p[6] = 2, p[7] = 25;
        p[8] = 0x9c, p[9] = 0x40, p[10] = 0x02, p[11] = 0x4b;
        n = 16 + 12;
    } else {
        out[13] = 0x21;                 /* TCP over IPv6 */
        out[14] = 0, out[15] = 36;
        uint8_t *p = out + 16;
        memset(p, 0, 36);
        p[0] = 0x20, p[1] = 0x01, p[2] = 0x0d, p[3] = 0xb8;
        for (int k = 0; k < 4; k++)
            p[4 + k] = (uint8_t)(i >> (24 - 8 * k));
        p[15] = 1;
        p[16] = 0x20, p[17] = 0x01, p[18] = 0x0d, p[19] = 0xb8, p[31] = 0x25;
        p[32] = 0x9c, p[33] = 0x40, p[34] = 0x02, p[35] = 0x4b;
        n = 16 + 36;
    }
    memcpy(out + n, "QUIT\r\n", 6);
    return n + 6;
}

static bool start(int ep, struct conn *c)
{
    if (g_next >= g_end)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    c->idx = g_next;
    c->sent = false;
    c->got = 0;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        n_err++;
        return false;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return true;
}

static void finish(int ep, struct conn *c, bool error)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    n_done++;
    if (error || c->got < 3)
        n_err++;
    else if (memcmp(c->head, "220", 3) == 0)
        n_ok++;
    else if (memcmp(c->head, "554", 3) == 0)
        n_rej++;
    else
        n_err++;
}

int main(int argc, char **argv)
{
    uint64_t n = 0, first = 0;
    double limit = 0;
    int opt;
    while ((opt = getopt(argc, argv, "P:n:b:c:6t:h")) != -1) {
        switch (opt) {
        case 'P': g_port = atoi(optarg); break;
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'b': first = strtoull(optarg, NULL, 10); break;
        case 'c': g_conc = atoi(optarg); break;
        case '6': g_v6 = 1; break;
        case 't': limit = atof(optarg); break;
        default:
            fprintf(stderr, "usage: bench-spray -P PORT -n COUNT [-b FIRST] [-c CONC] [-6] [-t SECONDS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (g_port <= 0 || g_port > 65535 || n == 0 || g_conc < 1 || g_conc > 10000 ||
        (!g_v6 && first + n > (1u << 24))) {
        fprintf(stderr, "bench-spray: need -P PORT, -n >= 1, 1 <= -c <= 10000 (IPv4: first + n <= 2^24)\n");
        return 2;
    }
    g_next = first;
    g_end = first + n;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)g_conc, sizeof *cs);
    if (ep < 0 || cs == NULL)
        return 1;
    double t0 = now_s();
    int active = 0;
    for (int i = 0; i < g_conc; i++)
        if (start(ep, &cs[i]))
            active++, g_next++;
    struct epoll_event evs[256];
    while (active > 0) {
        if (limit > 0 && now_s() - t0 > limit)
            break;
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int j = 0; j < k; j++) {
            struct conn *c = evs[j].data.ptr;
            if (c->fd < 0)
                continue;
            bool done = false, err = false;
            if (!c->sent && (evs[j].events & EPOLLOUT)) {
                uint8_t buf[128];
                size_t len = header(c->idx, buf);
                /* a few dozen bytes into an empty socket buffer: one write */
                if (write(c->fd, buf, len) != (ssize_t)len) {
                    done = err = true;
                } else {
                    c->sent = true;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!done && (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                char buf[4096];
                ssize_t r = read(c->fd, buf, sizeof buf);
                if (r > 0) {
                    for (ssize_t q = 0; q < r && c->got < sizeof c->head; q++)
                        c->head[c->got++] = buf[q];
                } else if (r == 0) {
                    done = true;
                } else if (errno != EAGAIN) {
                    done = err = true;
                }
            }
            if (done) {
                finish(ep, c, err);
                active--;
                if (start(ep, c))
                    active++, g_next++;
            }
        }
    }
    double secs = now_s() - t0;
    printf("RESULT spray n=%llu seconds=%.2f conns_per_s=%.0f ok=%llu rejected=%llu errors=%llu\n",
           (unsigned long long)n_done, secs, (double)n_done / secs, (unsigned long long)n_ok,
           (unsigned long long)n_rej, (unsigned long long)n_err);
    return n_err > n_done / 100 ? 1 : 0;
}
