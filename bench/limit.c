/* bench-limit: the reference "physical limit" server for the reject path.
 *
 * One thread per core, each with its own SO_REUSEPORT listener and epoll
 * loop: accept4() non-blocking, write one fixed 554 line, close. Nothing
 * else: no session, no log line, no reading. No SMTP server that answers the
 * client's QUIT can be faster on the same machine, so its rate is the ceiling
 * the bench compares against.
 *
 * With -q it is the reference that keeps RFC 5321 §3.1 as Portcullis does:
 * after the 554 it waits for the client's QUIT and answers 221 before it
 * closes (any other line gets 503; end of file closes). Still no session
 * beyond a descriptor in the epoll set, no log, no timer: the fastest way
 * to do that dialogue properly.
 *
 * Usage: bench-limit [-q] PORT [THREADS] [ADDR]
 *   -q       wait for QUIT, answer 221, then close
 *   PORT     TCP port to listen on
 *   THREADS  event-loop threads (default: number of online cores)
 *   ADDR     loopback address to bind (default 127.0.0.1; only 127.x or ::1)
 * Prints "ready port=PORT threads=N" on stderr once every listener is bound;
 * runs until killed (SIGTERM/SIGINT end it at once). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char LINE[] = "554 limit ESMTP not accepting connections\r\n";
static const char BYE[] = "221 2.0.0 Bye\r\n";
static const char BADSEQ[] = "503 5.5.1 Bad sequence of commands\r\n";
static int g_quit;   /* -q */

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;

static int make_listener(void)
{
    int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0 ||
        listen(fd, 65535) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void answer(int ep, int fd);

static void *loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("bench-limit: epoll_create1");
        exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("bench-limit: epoll_ctl");
        exit(1);
    }
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("bench-limit: epoll_wait");
            exit(1);
        }
        bool listener = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                listener = true;
            else
                answer(ep, evs[i].data.fd);
        }
        if (!listener)
            continue;
        /* Drain the accept queue: each connection gets the line and goes
         * (with -q: stays until its QUIT). */
        for (int burst = 0; burst < 4096; burst++) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    usleep(1000);   /* out of descriptors: let closes catch up */
                break;              /* EAGAIN, or a connection that died queued */
            }
            ssize_t w = write(fd, LINE, sizeof LINE - 1);
            (void)w;                /* a client that left already: nothing to do */
            struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
            if (!g_quit || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0)
                close(fd);
        }
    }
    return NULL;
}

/* -q: a client of the 554 said something. Lines come whole in one segment
 * from the load generator; a line cut in two would only get a 503. */
static void answer(int ep, int fd)
{
    char buf[512];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EAGAIN)
        return;
    bool quit = false, other = false;
    for (ssize_t i = 0; i < r; i++) {
        bool at_line = i == 0 || buf[i - 1] == '\n';
        if (!at_line)
            continue;
        if (r - i >= 4 && strncasecmp(buf + i, "QUIT", 4) == 0)
            quit = true;
        else
            other = true;
    }
    if (r > 0 && !quit) {
        if (other) {
            ssize_t w = write(fd, BADSEQ, sizeof BADSEQ - 1);
            (void)w;
        }
        return;
    }
    if (quit) {
        ssize_t w = write(fd, BYE, sizeof BYE - 1);
        (void)w;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "-q") == 0) {
        g_quit = 1;
        argv++;
        argc--;
    }
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench-limit [-q] PORT [THREADS] [ADDR]\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 1 || port > 65535) {
        fprintf(stderr, "bench-limit: bad port '%s'\n", argv[1]);
        return 2;
    }
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    if (argc >= 3) {
        threads = strtol(argv[2], &end, 10);
        if (*end || threads < 1 || threads > 1024) {
            fprintf(stderr, "bench-limit: bad thread count '%s'\n", argv[2]);
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    const char *host = argc >= 4 ? argv[3] : "127.0.0.1";
    memset(&g_addr, 0, sizeof g_addr);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&g_addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&g_addr;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "bench-limit: %s is not a loopback address\n", host);
            return 2;
        }
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        g_addrlen = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
            fprintf(stderr, "bench-limit: %s is not a loopback address\n", host);
            return 2;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        g_addrlen = sizeof *s6;
    } else {
        fprintf(stderr, "bench-limit: bad address '%s'\n", host);
        return 2;
    }

    /* Many connections can be in flight at once under load. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    if (!tids)
        return 1;
    int *fds = calloc((size_t)threads, sizeof *fds);
    if (!fds)
        return 1;
    for (long i = 0; i < threads; i++) {
        fds[i] = make_listener();
        if (fds[i] < 0) {
            fprintf(stderr, "bench-limit: listen on %s port %ld: %s\n", host, port, strerror(errno));
            return 1;
        }
    }
    for (long i = 0; i < threads; i++) {
        int e = pthread_create(&tids[i], NULL, loop, (void *)(intptr_t)fds[i]);
        if (e) {
            fprintf(stderr, "bench-limit: pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    fprintf(stderr, "ready port=%ld threads=%ld\n", port, threads);
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
