#include "admin/http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include "admin/metrics.h"
#include "admin/selfserve.h"
#include "admin/webassets.h"
#include "base/log.h"
#include "base/util.h"
#include "smtp/tls.h"

/* One connection: its deadline to send a request, and its place in the
 * count of connections at once. */
struct conn {
    struct bufferevent *bev;       /* what evhttp holds; one reference is ours */
    int64_t deadline_ms;           /* util_mono_ms() */
    struct conn *prev, *next;
};

struct listener {
    struct http *h;
    bool public;                   /* the self-service page */
    struct evhttp *eh;
    struct evconnlistener *lev;
    SSL_CTX *tls;                  /* NULL: plain HTTP */
    struct conn *conns;
    int nconns;
    bool paused;
    bool closing;                  /* evhttp_free: the listener is gone */
};

/* The self-service page's rate limit: a bounded table, 8 slots per hash;
 * a new address takes the slot whose minute is oldest. */
struct rate {
    struct addr a;
    int64_t minute;
    int count;
};

struct http {
    struct admin admin;
    struct event_base *base;
    struct event *sweep;
    pthread_t thread;
    bool running;
    struct listener api, pub;
    /* Read by the HTTP thread, replaced by a reload (main thread). */
    pthread_mutex_t tokens_mu;
    struct httpreq_tokens tokens;
    struct rate rate[SELFSERVE_TRACKED];
};

/* ---- replies (HTTP thread) ------------------------------------------- */

static void send_body(struct evhttp_request *req, int code, const char *type, const char *body,
                      size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    struct evbuffer *b = evbuffer_new();
    if (b != NULL)
        evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, NULL, b);
    if (b != NULL)
        evbuffer_free(b);
}

/* {"error": why} with status `code`. */
static void send_error(struct evhttp_request *req, int code, const char *why)
{
    json_t *o = json_object();
    json_t *s = json_string(why);
    json_object_set_new(o, "error", s != NULL ? s : json_string("bad request"));
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (code == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"portcullis\"");
    send_body(req, code, "application/json", out ? out : "{}", out ? strlen(out) : 2);
    free(out);
}

/* 405, saying which method the path takes. */
static void send_not_allowed(struct evhttp_request *req, const char *allow)
{
    char why[64];
    snprintf(why, sizeof why, "use %s", allow);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    send_error(req, 405, why);
}

/* ---- work handed to the main loop ------------------------------------ */

enum job_kind { JOB_API, JOB_METRICS, JOB_SELF };

struct job {
    struct http *h;
    struct evhttp_request *req;
    enum job_kind kind;
    struct ctlreq q;
    const char *wrap;              /* block, unblock: the answer is {wrap: result} */
    enum selfserve_format format;
    /* The answer. */
    int code;
    const char *type;
    struct evbuffer *out;
};

static const struct timeval now_tv = {0, 0};

/* HTTP thread: the answer goes out (or, if the client went away
 * meanwhile, evhttp frees the request). */
static void job_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    struct evkeyvalq *hd = evhttp_request_get_output_headers(j->req);
    evhttp_add_header(hd, "Content-Type", j->type);
    evhttp_add_header(hd, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(hd, "Cache-Control", "no-store");
    evhttp_send_reply(j->req, j->code, NULL, j->out);
    evbuffer_free(j->out);
    free(j);
}

static int fail_code(enum admin_fail f)
{
    return f == ADMIN_BAD_REQUEST ? 400 : f == ADMIN_NOT_FOUND ? 404 : 500;
}

static void job_api(struct job *j)
{
    struct admin_answer ans;
    admin_run(&j->h->admin, &j->q, &ans);
    json_t *doc = ans.result;
    if (doc != NULL && j->wrap != NULL) {
        doc = json_object();
        json_object_set_new(doc, j->wrap, ans.result);
    }
    if (doc == NULL) {
        doc = json_object();
        json_t *s = json_string(ans.err);
        json_object_set_new(doc, "error", s ? s : json_string("failed"));
        j->code = fail_code(ans.fail);
    }
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (s == NULL) {
        j->code = 500;
        evbuffer_add_printf(j->out, "{\"error\":\"out of memory\"}");
        return;
    }
    evbuffer_add(j->out, s, strlen(s));
    free(s);
}

static void job_self(struct job *j)
{
    struct admin_answer ans;
    admin_run(&j->h->admin, &j->q, &ans);
    size_t len = 0;
    char *body = ans.result ? selfserve_render(ans.result, j->format, &len, &j->type) : NULL;
    json_decref(ans.result);
    if (body == NULL) {
        j->code = 500;
        j->type = "text/plain; charset=utf-8";
        evbuffer_add_printf(j->out, "The state of your address cannot be told right now.\n");
        return;
    }
    evbuffer_add(j->out, body, len);
    free(body);
}

/* Main thread. */
static void job_run(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    j->code = 200;
    j->type = "application/json";
    if (j->kind == JOB_API)
        job_api(j);
    else if (j->kind == JOB_SELF)
        job_self(j);
    else {
        j->type = METRICS_CONTENT_TYPE;
        metrics_render(j->h->admin.srv, j->out);
    }
    if (event_base_once(j->h->base, -1, EV_TIMEOUT, job_reply, j, &now_tv) != 0) {
        /* The HTTP loop is gone (shutting down): nobody to answer. */
        evbuffer_free(j->out);
        free(j);
    }
}

static struct job *job_new(struct http *h, struct evhttp_request *req, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof *j);
    if (j != NULL && (j->out = evbuffer_new()) == NULL) {
        free(j);
        j = NULL;
    }
    if (j == NULL) {
        send_error(req, 500, "out of memory");
        return NULL;
    }
    j->h = h;
    j->req = req;
    j->kind = kind;
    return j;
}

static void job_post(struct job *j)
{
    if (event_base_once(j->h->admin.srv->main_base, -1, EV_TIMEOUT, job_run, j, &now_tv) != 0) {
        send_error(j->req, 503, "the daemon is stopping");
        evbuffer_free(j->out);
        free(j);
    }
}

/* ---- the admin listener ---------------------------------------------- */

static bool is(const char *path, const char *want)
{
    return strcmp(path, want) == 0;
}

static void serve_asset(struct evhttp_request *req, const char *path)
{
    const struct web_asset *a = web_asset_find(is(path, "/") ? "/index.html" : path);
    if (a == NULL) {
        send_error(req, 404, "no such page");
        return;
    }
    /* Everything the console needs is here: nothing from another host,
     * no inline script, no frames around it. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Frame-Options", "DENY");
    send_body(req, 200, a->type, (const char *)a->data, a->len);
}

/* The name of the request's token into by; false when it has none of ours. */
static bool token_name(struct http *h, struct evhttp_request *req, char by[HTTPREQ_NAME_MAX])
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    pthread_mutex_lock(&h->tokens_mu);
    const char *name = httpreq_tokens_check(&h->tokens, auth);
    if (name != NULL)
        util_strlcpy(by, name, HTTPREQ_NAME_MAX);   /* a reload may replace it after */
    pthread_mutex_unlock(&h->tokens_mu);
    return name != NULL;
}

static void api_request(struct http *h, struct evhttp_request *req, const char *path,
                        const char *query)
{
    char by[HTTPREQ_NAME_MAX];
    if (!token_name(h, req, by)) {
        send_error(req, 401, "a valid bearer token is needed (Authorization: Bearer TOKEN)");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    static const struct {
        const char *path;
        enum ctlreq_cmd cmd;
        bool post;
    } routes[] = {
        {"/api/v1/status", CTLREQ_STATUS, false}, {"/api/v1/history", CTLREQ_HISTORY, false},
        {"/api/v1/blocks", CTLREQ_LIST, false},   {"/api/v1/stats", CTLREQ_STATS, false},
        {"/api/v1/block", CTLREQ_BLOCK, true},    {"/api/v1/unblock", CTLREQ_UNBLOCK, true},
        {"/api/v1/account", CTLREQ_ACCOUNT, false}, {"/api/v1/unlock", CTLREQ_UNLOCK, true},
    };
    size_t i = 0;
    while (i < ARRAY_LEN(routes) && !is(path, routes[i].path))
        i++;
    if (i == ARRAY_LEN(routes)) {
        send_error(req, 404, "no such API path");
        return;
    }
    if (routes[i].post ? m != EVHTTP_REQ_POST : m != EVHTTP_REQ_GET) {
        send_not_allowed(req, routes[i].post ? "POST" : "GET");
        return;
    }
    struct ctlreq q;
    char err[CTLREQ_ERR_MAX];
    bool ok;
    if (routes[i].post) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        /* Looked at only up to the limit (and one byte more, to say so). */
        unsigned char *body = evbuffer_pullup(in, len > HTTPREQ_BODY_MAX ? HTTPREQ_BODY_MAX + 1 : -1);
        ok = httpreq_body(routes[i].cmd, (const char *)body, len, by, &q, err);
    } else if (routes[i].cmd == CTLREQ_LIST) {
        ok = httpreq_list_query(query, by, &q, err);
    } else if (routes[i].cmd == CTLREQ_STATS) {
        memset(&q, 0, sizeof q);
        q.cmd = CTLREQ_STATS;
        ok = true;
    } else if (routes[i].cmd == CTLREQ_ACCOUNT) {
        ok = httpreq_name_query(routes[i].cmd, query, by, &q, err);
    } else {
        ok = httpreq_ip_query(routes[i].cmd, query, by, &q, err);
    }
    if (!ok) {
        send_error(req, 400, err);
        return;
    }
    struct job *j = job_new(h, req, JOB_API);
    if (j == NULL)
        return;
    j->q = q;
    if (q.cmd == CTLREQ_BLOCK || q.cmd == CTLREQ_UNBLOCK)
        j->wrap = "block";
    else if (q.cmd == CTLREQ_UNLOCK)
        j->wrap = "lock";
    job_post(j);
}

/* A request evhttp could not read (too big, malformed) still gets JSON. */
static bool unreadable(struct evhttp_request *req)
{
    if (evhttp_request_get_uri(req) != NULL && evhttp_request_get_evhttp_uri(req) != NULL)
        return false;
    if (evhttp_request_get_response_code(req) == 413)
        send_error(req, 400, "the body is over 64 KB");
    else
        send_error(req, 400, "not an HTTP request this server can read");
    return true;
}

static void touch(struct listener *l, struct evhttp_request *req);

static void on_api(struct evhttp_request *req, void *arg)
{
    struct listener *l = arg;
    if (unreadable(req))
        return;
    touch(l, req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (strncmp(path, "/api/", 5) == 0) {
        api_request(l->h, req, path, query);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    bool known = is(path, "/metrics") || web_asset_find(is(path, "/") ? "/index.html" : path);
    if (!known) {
        send_error(req, 404, "no such page");
        return;
    }
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        send_not_allowed(req, "GET");
        return;
    }
    if (is(path, "/metrics")) {
        struct job *j = job_new(l->h, req, JOB_METRICS);
        if (j != NULL)
            job_post(j);
        return;
    }
    serve_asset(req, path);
}

/* ---- the self-service listener --------------------------------------- */

/* The caller: the TCP peer, or the last X-Forwarded-For address when the
 * peer is a proxy of proxy_from. */
static bool caller_of(struct http *h, struct evhttp_request *req, struct addr *out)
{
    char *host = NULL;
    ev_uint16_t port;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
    if (host == NULL || !addr_parse(host, false, out))
        return false;
    const char *xff = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Forwarded-For");
    struct config *c = server_config(h->admin.srv);
    bool trusted = cidr_list_match(&c->proxy_from, out);
    config_unref(c);
    if (xff == NULL || !trusted)
        return true;
    const char *last = strrchr(xff, ',');
    last = last ? last + 1 : xff;
    while (*last == ' ' || *last == '\t')
        last++;
    char buf[ADDR_STRLEN];
    size_t n = strcspn(last, " \t");
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, last, n);
    buf[n] = '\0';
    return addr_parse(buf, false, out);
}

/* Counts one request of `a` this minute; false past the limit. */
static bool rate_ok(struct http *h, const struct addr *a)
{
    int64_t minute = util_mono_ms() / 60000;
    size_t base = (size_t)(addr_hash(a) % (SELFSERVE_TRACKED / 8)) * 8;
    struct rate *pick = &h->rate[base];
    for (size_t i = base; i < base + 8; i++) {
        struct rate *r = &h->rate[i];
        if (r->count > 0 && addr_equal(&r->a, a)) {
            pick = r;
            break;
        }
        if (r->count == 0 || r->minute < pick->minute)
            pick = r;
    }
    if (pick->count == 0 || !addr_equal(&pick->a, a) || pick->minute != minute) {
        pick->a = *a;
        pick->minute = minute;
        pick->count = 0;
    }
    return ++pick->count <= SELFSERVE_PER_MINUTE;
}

static void send_text(struct evhttp_request *req, int code, const char *text)
{
    send_body(req, code, "text/plain; charset=utf-8", text, strlen(text));
}

static void on_public(struct evhttp_request *req, void *arg)
{
    struct listener *l = arg;
    if (evhttp_request_get_evhttp_uri(req) == NULL) {
        send_text(req, 400, "Bad request.\n");
        return;
    }
    touch(l, req);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(u);
    if (path != NULL && path[0] != '\0' && !is(path, "/")) {
        send_text(req, 404, "Only / is served here.\n");
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
        send_text(req, 405, "Only GET is served here.\n");
        return;
    }
    struct addr a;
    if (!caller_of(l->h, req, &a)) {
        send_text(req, 400, "Your address cannot be told (a bad X-Forwarded-For?).\n");
        return;
    }
    if (!rate_ok(l->h, &a)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "60");
        send_text(req, 429, "Too many requests from your address: try again in a minute.\n");
        return;
    }
    struct job *j = job_new(l->h, req, JOB_SELF);
    if (j == NULL)
        return;
    /* Only ever the caller's own address: the query is read for the
     * format alone. */
    j->q.cmd = CTLREQ_STATUS;
    j->q.addr = a;
    addr_format(&a, false, j->q.ip);
    j->format = selfserve_format_of(evhttp_uri_get_query(u));
    job_post(j);
}

/* ---- connections: the count at once and the time to send a request ---
 *
 * evhttp tells nothing when a connection ends, so each connection's
 * bufferevent is made here (conn_new) with a reference of our own: its
 * memory stays valid until the sweep sees that evhttp let go of it (its
 * callbacks cleared, which evhttp does before closing the socket) and
 * drops the reference. The same sweep ends connections past their time. */

#define SWEEP_MS 250

static void conn_unlink(struct listener *l, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->nconns--;
}

static void sweep_listener(struct listener *l, int64_t now)
{
    for (struct conn *c = l->conns, *next; c != NULL; c = next) {
        next = c->next;
        bufferevent_data_cb readcb = NULL;
        bufferevent_getcb(c->bev, &readcb, NULL, NULL, NULL);
        if (readcb == NULL) {
            /* evhttp is done with it (and closed the socket). */
            conn_unlink(l, c);
            bufferevent_decref(c->bev);
            free(c);
        } else if (now >= c->deadline_ms) {
            /* Out of time: evhttp sees the end and frees it its own way. */
            evutil_socket_t fd = bufferevent_getfd(c->bev);
            if (fd >= 0)
                shutdown(fd, SHUT_RDWR);
            c->deadline_ms = INT64_MAX;
        }
    }
    if (l->paused && l->nconns < HTTP_MAX_CONNS && !l->closing) {
        l->paused = false;
        evconnlistener_enable(l->lev);
    }
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http *h = arg;
    int64_t now = util_mono_ms();
    sweep_listener(&h->api, now);
    sweep_listener(&h->pub, now);
}

/* A request arrived on its connection: the next one gets the full time again. */
static void touch(struct listener *l, struct evhttp_request *req)
{
    struct evhttp_connection *ec = evhttp_request_get_connection(req);
    struct bufferevent *bev = ec ? evhttp_connection_get_bufferevent(ec) : NULL;
    for (struct conn *c = l->conns; c != NULL; c = c->next) {
        if (c->bev == bev) {
            c->deadline_ms = util_mono_ms() + 3 * HTTP_REQUEST_S * 1000;
            return;
        }
    }
}

/* evhttp asks for each new connection's bufferevent. */
static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
    struct listener *l = arg;
    struct conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = NULL;
    if (l->tls != NULL) {
        SSL *ssl = SSL_new(l->tls);
        if (ssl != NULL)
            bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (c == NULL || bev == NULL) {
        /* evhttp makes a bufferevent of its own: served, only not
         * counted (out of memory, rare). */
        free(c);
        if (bev)
            bufferevent_free(bev);
        return NULL;
    }
    bufferevent_incref(bev);
    c->bev = bev;
    /* The whole first request within this time, however slowly it drips. */
    c->deadline_ms = util_mono_ms() + HTTP_REQUEST_S * 1000;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    if (++l->nconns >= HTTP_MAX_CONNS && !l->paused) {
        l->paused = true;
        evconnlistener_disable(l->lev);
    }
    return bev;
}

/* ---- start and stop ---------------------------------------------------- */

bool http_tokens_load(const char *path, struct httpreq_tokens *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "[control] http_token_file: %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    const char *why = !S_ISREG(st.st_mode)             ? "not a regular file"
                      : (st.st_mode & 077) != 0         ? "readable or writable by group or others (chmod 600 it)"
                      : st.st_size > HTTPREQ_FILE_MAX ? "longer than 64 KB"
                                                        : NULL;
    char *text = why ? NULL : malloc((size_t)st.st_size + 1);
    ssize_t n = text ? read(fd, text, (size_t)st.st_size) : -1;
    close(fd);
    if (why == NULL && n != st.st_size)
        why = "cannot be read";
    char perr[256];
    if (why == NULL && !httpreq_tokens_parse(text, (size_t)n, out, perr, sizeof perr))
        why = perr;
    if (text != NULL) {
        OPENSSL_cleanse(text, (size_t)st.st_size);
        free(text);
    }
    if (why != NULL) {
        snprintf(err, errlen, "[control] http_token_file: %s: %s", path, why);
        return false;
    }
    return true;
}

bool http_tokens_reload(struct http *h, const struct config *c, char *err, size_t errlen)
{
    /* No admin listener (it opens only at start): no tokens to serve. */
    if (h == NULL || h->api.eh == NULL || c->control_http[0] == '\0')
        return true;
    struct httpreq_tokens *t = malloc(sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "[control] http_token_file: out of memory");
        return false;
    }
    bool ok = http_tokens_load(c->http_token_file, t, err, errlen);
    if (ok) {
        pthread_mutex_lock(&h->tokens_mu);
        h->tokens = *t;
        pthread_mutex_unlock(&h->tokens_mu);
    }
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
    return ok;
}

static bool listener_open(struct http *h, struct listener *l, const struct listen_addr *la,
                          const struct config *c, bool public, char *err, size_t errlen)
{
    const char *key = public ? "public_http" : "http";
    l->h = h;
    l->public = public;
    if (la->mode == LISTEN_TLS && (l->tls = tls_ctx_new(c, err, errlen)) == NULL)
        return false;
    struct sockaddr_storage ss;
    socklen_t sl = addr_to_sockaddr(&la->addr, la->port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errlen, "[control] %s: %s: %s", key, la->text, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    l->lev = evconnlistener_new(h->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (l->lev == NULL)
        close(fd);
    else if ((l->eh = evhttp_new(h->base)) == NULL || evhttp_bind_listener(l->eh, l->lev) == NULL)
        evconnlistener_free(l->lev);   /* evhttp did not take it */
    else
        fd = -1;
    if (fd >= 0) {
        l->lev = NULL;
        snprintf(err, errlen, "[control] %s: %s: cannot listen", key, la->text);
        return false;
    }
    evhttp_set_max_headers_size(l->eh, HTTP_HEADERS_MAX);
    /* Twice the limit is read, so that a body just over it is answered
     * (400) rather than cut off; beyond that evhttp refuses it unread. */
    evhttp_set_max_body_size(l->eh, public ? 0 : 2 * HTTPREQ_BODY_MAX);
    evhttp_set_timeout(l->eh, HTTP_REQUEST_S);
    evhttp_set_allowed_methods(l->eh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                          EVHTTP_REQ_PATCH);
    evhttp_set_bevcb(l->eh, conn_new, l);
    evhttp_set_gencb(l->eh, public ? on_public : on_api, l);
    log_event(LOG_INFO, "listen", "addr", la->text, "serves", public ? "self-service" : "admin-http", NULL);
    return true;
}

bool http_open(const struct admin *a, const struct config *c, struct http **out, char *err,
               size_t errlen)
{
    *out = NULL;
    if (c->control_http[0] == '\0' && c->public_http[0] == '\0')
        return true;
    struct http *h = calloc(1, sizeof *h);
    if (h == NULL || (h->base = event_base_new()) == NULL) {
        free(h);
        snprintf(err, errlen, "[control] http: out of memory");
        return false;
    }
    h->admin = *a;
    pthread_mutex_init(&h->tokens_mu, NULL);
    *out = h;
    h->sweep = event_new(h->base, -1, EV_PERSIST, sweep, h);
    struct timeval tv = {0, SWEEP_MS * 1000};
    if (h->sweep == NULL || event_add(h->sweep, &tv) != 0) {
        snprintf(err, errlen, "[control] http: out of memory");
        return false;
    }
    if (c->control_http[0] != '\0' &&
        (!http_tokens_load(c->http_token_file, &h->tokens, err, errlen) ||
         !listener_open(h, &h->api, &c->http_listen, c, false, err, errlen)))
        return false;
    if (c->public_http[0] != '\0' && !listener_open(h, &h->pub, &c->public_listen, c, true, err, errlen))
        return false;
    return true;
}

static void *http_main(void *arg)
{
    struct http *h = arg;
    event_base_dispatch(h->base);
    return NULL;
}

bool http_run(struct http *h, char *err, size_t errlen)
{
    if (h == NULL)
        return true;
    if (pthread_create(&h->thread, NULL, http_main, h) != 0) {
        snprintf(err, errlen, "[control] http: cannot start its thread");
        return false;
    }
    h->running = true;
    return true;
}

static void listener_close(struct listener *l)
{
    l->closing = true;
    if (l->eh)
        evhttp_free(l->eh);   /* its connections, and the listener it was bound to */
    sweep_listener(l, 0);     /* our references to them */
    if (l->tls)
        SSL_CTX_free(l->tls);
}

void http_stop(struct http *h)
{
    if (h == NULL)
        return;
    if (h->running) {
        event_base_loopbreak(h->base);
        pthread_join(h->thread, NULL);
        /* Answers the main loop finished meanwhile go out (and free their jobs). */
        event_base_loop(h->base, EVLOOP_NONBLOCK);
    }
    listener_close(&h->api);
    listener_close(&h->pub);
    if (h->sweep)
        event_free(h->sweep);
    event_base_free(h->base);
    OPENSSL_cleanse(&h->tokens, sizeof h->tokens);
    pthread_mutex_destroy(&h->tokens_mu);
    free(h);
}
