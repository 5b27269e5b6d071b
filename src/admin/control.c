#include "admin/control.h"

#include <errno.h>
#include <jansson.h>
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
#include "admin/ctlreq.h"
#include "base/log.h"
#include "base/util.h"

struct control {
    struct server *srv;
    struct evconnlistener *l;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* ---- JSON of the records --------------------------------------------- */

static json_t *time_or_null(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char t[UTIL_RFC3339_LEN];
    util_rfc3339(ms, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    if (s[0] == '\0')
        return json_null();
    json_t *v = json_string(s);
    /* Not UTF-8 (a record written by something else): say so rather than
     * drop the key. */
    return v != NULL ? v : json_string("(not valid UTF-8)");
}

static json_t *block_json(const struct guard_block *b, int64_t now)
{
    char prefix[ADDR_STRLEN], id[17];
    addr_format(&b->prefix, true, prefix);
    store_id_format(b->id, id);
    enum block_state st = b->state;
    /* Ran out but the expiry is not recorded yet: say what is true. */
    if (st == BLOCK_ACTIVE && b->expires_at != 0 && b->expires_at <= now)
        st = BLOCK_EXPIRED;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "address", json_string(prefix));
    json_object_set_new(o, "state", json_string(block_state_name(st)));
    json_object_set_new(o, "reason", json_string(guard_reason_name(b->reason)));
    json_object_set_new(o, "started_at", time_or_null(b->started_at));
    json_object_set_new(o, "expires_at", time_or_null(b->expires_at));
    json_object_set_new(o, "lifted_at", time_or_null(b->lifted_at));
    json_object_set_new(o, "lifted_by", str_or_null(b->lifted_by));
    json_object_set_new(o, "lift_reason", str_or_null(b->lift_reason));
    json_object_set_new(o, "first_event_at", time_or_null(b->first_event_at));
    json_object_set_new(o, "last_event_at", time_or_null(b->last_event_at));
    json_object_set_new(o, "events", json_integer(b->events));
    json_object_set_new(o, "node", str_or_null(b->node));
    json_object_set_new(o, "note", str_or_null(b->note));
    return o;
}

/* A record the store should have; if it lacks it (a write failed, Redis
 * is away), what the guard holds in memory still answers. */
static json_t *block_by_id(struct server *s, uint64_t id, const struct addr *prefix,
                           bool permanent, int64_t now)
{
    struct guard_block b;
    if (s->store->ops->get(s->store, id, &b))
        return block_json(&b, now);
    struct guard_status gs;
    struct config *c = server_config(s);
    guard_status(s->guard, c, prefix, now, &gs);
    config_unref(c);
    memset(&b, 0, sizeof b);
    b.id = id;
    b.prefix = *prefix;
    b.state = permanent ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    if (gs.blocked && gs.block_id == id) {
        b.reason = gs.block_reason;
        b.started_at = gs.block_started;
        b.expires_at = gs.block_until == INT64_MAX ? 0 : gs.block_until;
    }
    util_strlcpy(b.node, "(not in the store)", sizeof b.node);
    return block_json(&b, now);
}

/* ---- requests -------------------------------------------------------- */

/* One request, checked by ctlreq_parse(); what is left to go wrong here
 * needs the server (the store, the guard, a reload). */
struct req {
    struct server *srv;
    struct config *cfg;
    const struct ctlreq *q;
    const char *err;
    char errbuf[CTLREQ_ERR_MAX];
    int64_t now;
};

static struct addr req_prefix(const struct req *r)
{
    return ctlreq_prefix(r->q, r->cfg->ipv4_prefix, r->cfg->ipv6_prefix);
}

static void newest_cb(void *ctx, const struct guard_block *b)
{
    *(struct guard_block *)ctx = *b;
}

static json_t *do_status(struct req *r)
{
    struct addr p = req_prefix(r);
    struct guard_status gs;
    guard_status(r->srv->guard, r->cfg, &p, r->now, &gs);
    struct store *st = r->srv->store;
    uint32_t sum[3];
    /* In a cluster the counts that matter are the sums over all nodes;
     * `concurrent` stays this node's own. */
    if (st->ops->counters != NULL && st->ops->counters(st, r->cfg, &p, sum)) {
        gs.auth_failures = sum[0];
        gs.unauth_attempts = sum[1];
        gs.connections = sum[2];
    }
    char prefix[ADDR_STRLEN];
    addr_format(&p, true, prefix);
    json_t *o = json_object();
    json_object_set_new(o, "address", json_string(r->q->ip));
    json_object_set_new(o, "prefix", json_string(prefix));
    json_object_set_new(o, "state", json_string(!gs.blocked ? "clear"
                                               : gs.state == BLOCK_PERMANENT ? "permanent" : "blocked"));
    json_object_set_new(o, "block", gs.blocked ? block_by_id(r->srv, gs.block_id, &gs.block_prefix,
                                                             gs.state == BLOCK_PERMANENT, r->now)
                                               : json_null());
    struct guard_block last;
    memset(&last, 0, sizeof last);
    r->srv->store->ops->history(r->srv->store, &p, 1, newest_cb, &last);
    json_object_set_new(o, "last_block", last.id ? block_json(&last, r->now) : json_null());
    json_t *c = json_object();
    json_object_set_new(c, "auth_failures", json_integer(gs.auth_failures));
    json_object_set_new(c, "unauth_attempts", json_integer(gs.unauth_attempts));
    json_object_set_new(c, "connections", json_integer(gs.connections));
    json_object_set_new(c, "concurrent", json_integer(gs.concurrent));
    json_object_set_new(o, "counters", c);
    json_object_set_new(o, "offenses", json_integer(gs.offenses));
    return o;
}

struct history_ctx {
    json_t *arr;
    int64_t now;
};

static void history_cb(void *ctx, const struct guard_block *b)
{
    struct history_ctx *h = ctx;
    json_array_append_new(h->arr, block_json(b, h->now));
}

static json_t *do_history(struct req *r)
{
    struct addr p = req_prefix(r);
    char prefix[ADDR_STRLEN];
    addr_format(&p, true, prefix);
    struct history_ctx h = {json_array(), r->now};
    if (!r->srv->store->ops->history(r->srv->store, &p, 0, history_cb, &h)) {
        json_decref(h.arr);
        r->err = "the store could not be read";
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "prefix", json_string(prefix));
    json_object_set_new(o, "blocks", h.arr);
    return o;
}

struct list_item {
    uint64_t id;
    struct addr prefix;
    int64_t until;
};

struct list_ctx {
    struct list_item *v;
    size_t n, cap;
    enum ctlreq_filter filter;
};

static void list_cb(void *ctx, uint64_t id, const struct addr *prefix, int64_t until)
{
    struct list_ctx *l = ctx;
    bool perm = until == INT64_MAX;
    if ((l->filter == CTLREQ_PERMANENT && !perm) || (l->filter == CTLREQ_TEMPORARY && perm))
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct list_item *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct list_item){id, *prefix, until};
}

static json_t *do_list(struct req *r)
{
    struct list_ctx l = {NULL, 0, 0, r->q->filter};
    guard_list(r->srv->guard, r->now, list_cb, &l);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++)
        json_array_append_new(arr, block_by_id(r->srv, l.v[i].id, &l.v[i].prefix,
                                               l.v[i].until == INT64_MAX, r->now));
    free(l.v);
    json_t *o = json_object();
    json_object_set_new(o, "blocks", arr);
    return o;
}

static void log_block_change(const char *event, const struct guard_block *b, const char *by,
                             const char *why)
{
    char ip[ADDR_STRLEN], id[17], until[UTIL_RFC3339_LEN];
    addr_format(&b->prefix, true, ip);
    store_id_format(b->id, id);
    if (b->expires_at)
        util_rfc3339(b->expires_at, until);
    log_event(LOG_WARN, event, "ip", ip, "reason", strcmp(event, "block") == 0 ? "manual" : NULL,
              "note", why, "by", by, "block", id,
              "until", strcmp(event, "block") != 0 ? NULL : b->expires_at ? until : "permanent",
              NULL);
}

static json_t *do_block(struct req *r)
{
    struct addr p = req_prefix(r);
    const char *by = r->q->by, *why = r->q->reason;
    struct guard_block made, old;
    bool had_old;
    guard_block_manual(r->srv->guard, &p, r->q->duration_ms, r->now, &made, &old, &had_old);
    if (made.id == 0) {
        r->err = "out of memory";
        return NULL;
    }
    struct store *st = r->srv->store;
    if (had_old)
        store_lift(st, old.id, r->now, by, "replaced by a manual block");
    util_strlcpy(made.node, r->cfg->hostname, sizeof made.node);
    util_strlcpy(made.note, why, sizeof made.note);
    store_put(st, &made);
    log_block_change("block", &made, by, why);
    struct guard_block stored;
    return block_json(st->ops->get(st, made.id, &stored) ? &stored : &made, r->now);
}

static json_t *do_unblock(struct req *r)
{
    struct addr p = req_prefix(r);
    const char *by = r->q->by, *why = r->q->reason;
    uint64_t id;
    bool lifted = guard_unblock(r->srv->guard, &p, r->now, &id);
    if (!lifted) {
        /* The address may be under a wider block (a manual /24). */
        struct guard_status gs;
        guard_status(r->srv->guard, r->cfg, &p, r->now, &gs);
        if (gs.blocked) {
            p = gs.block_prefix;
            lifted = guard_unblock(r->srv->guard, &p, r->now, &id);
        }
    }
    if (!lifted) {
        r->err = "not blocked";
        return NULL;
    }
    struct store *st = r->srv->store;
    store_lift(st, id, r->now, by, why);
    struct guard_block b = {.id = id, .prefix = p};
    log_block_change("unblock", &b, by, why);
    return block_by_id(r->srv, id, &p, false, r->now);
}

static json_t *do_stats(struct req *r)
{
    struct stats *s = &r->srv->stats;
    struct guard_stats gs;
    guard_stats(r->srv->guard, r->now, &gs);
    json_t *o = json_object();
#define STAT(name) json_object_set_new(o, #name, json_integer((json_int_t)atomic_load(&s->name)))
    STAT(connections);
    STAT(accepted);
    STAT(rejected_blocked);
    STAT(rejected_concurrency);
    STAT(rejected_busy);
    STAT(auth_ok);
    STAT(auth_fail);
    STAT(unauth_mail);
    STAT(messages);
    STAT(delivery_failures);
    STAT(blocks);
    STAT(proxy_errors);
#undef STAT
    json_object_set_new(o, "open_connections", json_integer(atomic_load(&r->srv->clients)));
    json_object_set_new(o, "active_blocks", json_integer((json_int_t)gs.blocks));
    json_object_set_new(o, "permanent_blocks", json_integer((json_int_t)gs.permanent));
    json_object_set_new(o, "tracked_prefixes", json_integer((json_int_t)gs.entries));
    json_object_set_new(o, "guard_bytes", json_integer((json_int_t)gs.bytes));
    json_object_set_new(o, "bytes_per_prefix", json_integer((json_int_t)gs.entry_size));
    json_object_set_new(o, "evictions", json_integer((json_int_t)gs.evictions));
    json_object_set_new(o, "untracked", json_integer((json_int_t)gs.untracked));
    json_object_set_new(o, "index_prefixes", json_integer((json_int_t)gs.index_prefixes));
    json_object_set_new(o, "index_bytes", json_integer((json_int_t)gs.index_bytes));
    json_object_set_new(o, "uptime_s", json_integer((r->now - r->srv->started_at) / 1000));
    return o;
}

static json_t *do_reload(struct req *r)
{
    if (!r->srv->reload(r->srv, r->errbuf, sizeof r->errbuf)) {
        r->err = r->errbuf;
        return NULL;
    }
    return json_object();
}

static json_t *(*const commands[CTLREQ_NCMD])(struct req *r) = {
    [CTLREQ_STATUS] = do_status, [CTLREQ_HISTORY] = do_history, [CTLREQ_LIST] = do_list,
    [CTLREQ_BLOCK] = do_block, [CTLREQ_UNBLOCK] = do_unblock, [CTLREQ_STATS] = do_stats,
    [CTLREQ_RELOAD] = do_reload,
};

static char *handle(struct server *srv, const char *line, size_t len)
{
    struct ctlreq q;
    struct req r = {.srv = srv, .q = &q, .now = util_now_ms()};
    json_t *result = NULL;
    if (ctlreq_parse(line, len, &q, r.errbuf)) {
        r.cfg = server_config(srv);
        result = commands[q.cmd](&r);
        config_unref(r.cfg);
    } else {
        r.err = r.errbuf;
    }
    return ctlreq_reply(result, r.err);
}

/* ---- the socket -------------------------------------------------------- */

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
    struct server *srv = arg;
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
        char *out = handle(srv, line, n);
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
    bufferevent_setcb(bev, conn_read, conn_write, conn_event, c->srv);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct control *control_start(struct server *s, const char *path, char *err, size_t errlen)
{
    struct control *c = calloc(1, sizeof *c);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (c == NULL || util_strlcpy(sun.sun_path, path, sizeof sun.sun_path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "[control] socket: path too long: %s", path);
        free(c);
        return NULL;
    }
    util_strlcpy(c->path, path, sizeof c->path);
    c->srv = s;
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
    c->l = evconnlistener_new(s->main_base, on_conn, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
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
