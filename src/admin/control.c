#include "admin/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include "base/log.h"
#include "base/util.h"

struct control {
    struct admin admin;
    struct evconnlistener *l;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void conn_write(struct bufferevent *bev, void *arg)
{
    (void)arg;
    /* Closing after the reply is flushed: set by conn_read on a fatal error. */
    if (bufferevent_get_enabled(bev) & EV_READ)
        return;
    bufferevent_free(bev);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    const struct admin *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t eol;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);
        if (p.pos < 0) {
            if (evbuffer_get_length(in) > CTLREQ_MAX) {
                evbuffer_drain(in, evbuffer_get_length(in));
                bufferevent_write(bev, CTLREQ_TOO_LONG, strlen(CTLREQ_TOO_LONG));
                bufferevent_disable(bev, EV_READ);
            }
            return;
        }
        size_t n = (size_t)p.pos;
        if (n > CTLREQ_MAX) {
            evbuffer_drain(in, n + eol);
            bufferevent_write(bev, CTLREQ_TOO_LONG, strlen(CTLREQ_TOO_LONG));
            continue;
        }
        char *line = malloc(n + 1);
        if (line == NULL)
            return;
        evbuffer_remove(in, line, n);
        evbuffer_drain(in, eol);
        line[n] = '\0';
        char *out = admin_line(a, line, n);
        free(line);
        if (out != NULL) {
            bufferevent_write(bev, out, strlen(out));
            bufferevent_write(bev, "\n", 1);
            free(out);
        }
    }
}

static void on_conn(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                    int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    struct control *c = arg;
    struct ucred cred;
    socklen_t len = sizeof cred;
    /* The socket is 0600 already; the uid check also holds if someone
     * loosens the mode or the folder. */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        log_event(LOG_WARN, "control_refused", "uid", cred.uid ? "other" : "unknown", NULL);
        close(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(c->l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return;
    }
    struct timeval tv = {30, 0};
    bufferevent_set_timeouts(bev, &tv, &tv);
    bufferevent_setcb(bev, conn_read, conn_write, conn_event, &c->admin);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct control *control_start(const struct admin *a, const char *path, char *err, size_t errlen)
{
    struct control *c = calloc(1, sizeof *c);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (c == NULL || util_strlcpy(sun.sun_path, path, sizeof sun.sun_path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "[control] socket: path too long: %s", path);
        free(c);
        return NULL;
    }
    util_strlcpy(c->path, path, sizeof c->path);
    c->admin = *a;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /* A socket left by a daemon that died is in the way; a live one would
     * answer, and then we must not steal its path. */
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
        snprintf(err, errlen, "[control] socket: %s: another daemon is running there", path);
        close(fd);
        free(c);
        return NULL;
    }
    unlink(path);
    close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "[control] socket: %s: %s", path, strerror(errno));
        close(fd);
        free(c);
        return NULL;
    }
    c->l = evconnlistener_new(a->srv->main_base, on_conn, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (c->l == NULL) {
        snprintf(err, errlen, "[control] socket: %s: cannot listen", path);
        close(fd);
        free(c);
        return NULL;
    }
    return c;
}

void control_stop(struct control *c)
{
    if (c == NULL)
        return;
    evconnlistener_free(c->l);
    unlink(c->path);
    free(c);
}
