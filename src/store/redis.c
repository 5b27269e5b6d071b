/* The shared store: Redis (or Valkey), for many nodes behind one balancer.
 *
 * One thread owns two asynchronous hiredis connections on its own event
 * base: one for commands, one subscribed to the events channel. Workers
 * never wait on Redis: writes and counts are posted to this thread; the
 * control socket's reads wait for their reply here (a connection answers in
 * order, so a read sees every write posted before it).
 *
 * Keys, under redis_prefix P:
 *   P block:ID      hash: one block record (the fields of struct guard_block)
 *   P active        set of the ids in force
 *   P bytime        sorted set of every id, scored by started_at (history)
 *   P cnt:R:PREFIX  hash: a two-period counter of reason R (as guard.c)
 *   P events        channel: "B ID" (block), "L ID" (lifted), "E ID" (expired)
 * Every change is one Lua script, so the record, the sets and the message
 * never disagree.
 *
 * While Redis is unreachable the node counts and decides locally, keeps
 * enforcing what it knows, queues its own writes, and retries with backoff;
 * on reconnect it replays the queue, writes back blocks Redis lost, loads
 * the blocks made meanwhile, and resubscribes. */
#include "store/redis_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/adapters/libevent.h>
#include "base/log.h"
#include "base/util.h"

static void connect_now(struct redis_store *r);

/* The link that points at block `id` in the known list (*slot is NULL when
 * it is not there). */
static struct known **known_slot(struct redis_store *r, uint64_t id)
{
    struct known **pp = &r->known;
    while (*pp != NULL && (*pp)->b.id != id)
        pp = &(*pp)->next;
    return pp;
}

static void known_drop(struct redis_store *r, uint64_t id)
{
    struct known **pp = known_slot(r, id);
    struct known *k = *pp;
    if (k != NULL) {
        *pp = k->next;
        free(k);
    }
}

static void known_set(struct redis_store *r, const struct guard_block *b)
{
    if (!in_force(b, util_now_ms())) {
        known_drop(r, b->id);
        return;
    }
    struct known *k = *known_slot(r, b->id);
    if (k == NULL) {
        if ((k = calloc(1, sizeof *k)) == NULL)
            return;
        k->next = r->known;
        r->known = k;
    }
    k->b = *b;
}

/* ---- commands ---------------------------------------------------------- */

void key(const struct redis_store *r, char *out, size_t len, const char *what)
{
    snprintf(out, len, "%s%s", r->pfx, what);
}

int eval(struct redis_store *r, redisAsyncContext *ac, redisCallbackFn *cb, void *priv,
         const char *script, int nkeys, const char **keys, int nargs, const char **args)
{
    const char *argv[EVAL_ARGS_MAX];
    size_t lens[EVAL_ARGS_MAX];
    int n = 0;
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[n++] = "EVAL";
    argv[n++] = script;
    argv[n++] = nk;
    for (int i = 0; i < nkeys && n < EVAL_ARGS_MAX; i++)
        argv[n++] = keys[i];
    for (int i = 0; i < nargs && n < EVAL_ARGS_MAX; i++)
        argv[n++] = args[i];
    for (int i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    (void)r;
    return redisAsyncCommandArgv(ac, cb, priv, n, argv, lens);
}

static void check_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        log_event(LOG_ERROR, "store_error", "backend", "redis", "error", rep->str, NULL);
}

static int send_put(struct redis_store *r, const struct guard_block *b, const char *script,
                    redisCallbackFn *cb, void *priv)
{
    char kb[200], ka[160], kt[160], kp[256], id[17];
    store_id_format(b->id, id);
    char what[ADDR_STRLEN + 16];
    snprintf(what, sizeof what, "block:%s", id);
    key(r, kb, sizeof kb, what);
    key(r, ka, sizeof ka, "active");
    key(r, kt, sizeof kt, "bytime");
    struct fields f;
    fields_of(&f, b);
    snprintf(what, sizeof what, "byprefix:%s", f.prefix);
    key(r, kp, sizeof kp, what);
    const char *keys[4] = {kb, ka, kt, kp};
    const char *args[64];
    char started[32];
    snprintf(started, sizeof started, "%lld", (long long)b->started_at);
    int n = 0;
    args[n++] = id;
    args[n++] = started;
    args[n++] = block_state_name(b->state);
    args[n++] = r->chan;
    for (size_t i = 0; i < f.n; i++)
        args[n++] = f.argv[i];
    return eval(r, r->ac, cb, priv, script, 4, keys, n, args);
}

static int send_lift(struct redis_store *r, const struct item *it, redisCallbackFn *cb)
{
    char kb[200], ka[160], id[17], what[32], at[32];
    store_id_format(it->b.id, id);
    snprintf(what, sizeof what, "block:%s", id);
    key(r, kb, sizeof kb, what);
    key(r, ka, sizeof ka, "active");
    snprintf(at, sizeof at, "%lld", (long long)it->b.lifted_at);
    const char *keys[2] = {kb, ka};
    const char *args[7] = {id, it->op == OP_LIFT ? "lifted" : "expired", at, it->b.lifted_by,
                           it->b.lift_reason, r->chan, it->op == OP_LIFT ? "L" : "E"};
    return eval(r, r->ac, cb, (void *)it, lua_lift, 2, keys, 7, args);
}

struct count_ctx {
    struct redis_store *r;
    struct addr prefix;
    enum guard_reason why;
};

static void count_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct count_ctx *c = priv;
    redisReply *rep = reply;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
        rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer == 1 &&
        c->r->hooks.limit != NULL)
        c->r->hooks.limit(c->r->hooks.ctx, &c->prefix, c->why, rep->element[2]->integer,
                          (uint32_t)rep->element[1]->integer);
    free(c);
}

/* The shared count of `why` for a prefix. */
void count_key(const struct redis_store *r, enum guard_reason why, const struct addr *prefix,
               char *out, size_t len)
{
    char p[ADDR_STRLEN], what[ADDR_STRLEN + 48];
    addr_format(prefix, true, p);
    snprintf(what, sizeof what, "cnt:%s:%s", guard_reason_name(why), p);
    key(r, out, len, what);
}

static void send_count(struct redis_store *r, const struct item *it)
{
    struct count_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->r = r;
    c->prefix = it->b.prefix;
    c->why = it->why;
    char k[256], win[32], lim[32];
    count_key(r, it->why, &it->b.prefix, k, sizeof k);
    snprintf(win, sizeof win, "%lld", (long long)it->window);
    snprintf(lim, sizeof lim, "%ld", it->limit);
    const char *keys[1] = {k};
    const char *args[2] = {win, lim};
    if (eval(r, r->ac, count_reply, c, lua_count, 1, keys, 2, args) != REDIS_OK)
        free(c);
}

static void pend(struct redis_store *r, struct item *it);

/* A record write stays ours until Redis answers it: if the connection dies
 * first (hiredis then calls back with no reply), it waits for the next one. */
static void write_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct item *it = priv;
    if (reply == NULL) {
        pend(ac->data, it);
        return;
    }
    check_reply(ac, reply, NULL);
    free(it);
}

/* Sends `it` and takes it over. */
static void send_item(struct redis_store *r, struct item *it)
{
    switch (it->op) {
    case OP_PUT:
        if (send_put(r, &it->b, lua_put, write_reply, it) != REDIS_OK)
            pend(r, it);
        return;
    case OP_LIFT:
    case OP_EXPIRE:
        if (send_lift(r, it, write_reply) != REDIS_OK)
            pend(r, it);
        return;
    case OP_PRUNE: {
        char kt[160], ka[160], before[32];
        key(r, kt, sizeof kt, "bytime");
        key(r, ka, sizeof ka, "active");
        snprintf(before, sizeof before, "%lld", (long long)it->b.lifted_at);
        const char *keys[2] = {kt, ka};
        const char *args[2] = {r->pfx, before};
        eval(r, r->ac, check_reply, NULL, lua_prune, 2, keys, 2, args);
        break;
    }
    case OP_COUNT:
        send_count(r, it);
        break;
    }
    free(it);
}

/* Runs on the store thread (posted by any thread). */
static void run_item(void *arg)
{
    struct item *it = arg;
    struct redis_store *r = it->r;
    bool up = atomic_load(&r->up) && r->ac != NULL;
    if (it->op == OP_LIFT || it->op == OP_EXPIRE) {
        /* Keep the whole record, lifted: should this write miss Redis,
         * Redis may come back without the record while another node
         * still holds it and writes it back as in force. Replayed whole,
         * the lift wins over that write-back (see pend()). */
        struct known *k = *known_slot(r, it->b.id);
        if (k != NULL) {
            it->has_full = true;
            it->full = k->b;
            it->full.state = it->op == OP_LIFT ? BLOCK_LIFTED : BLOCK_EXPIRED;
            if (it->op == OP_LIFT) {
                it->full.lifted_at = it->b.lifted_at;
                util_strlcpy(it->full.lifted_by, it->b.lifted_by, sizeof it->full.lifted_by);
                util_strlcpy(it->full.lift_reason, it->b.lift_reason, sizeof it->full.lift_reason);
            }
        }
        known_drop(r, it->b.id);
    } else if (it->op == OP_PUT) {
        known_set(r, &it->b);
    }
    if (up)
        send_item(r, it);
    else
        pend(r, it);
}

/* Down (or a write lost with its connection): counts are local meanwhile;
 * own records wait for Redis, lifts as whole records. */
static void pend(struct redis_store *r, struct item *it)
{
    if (it->op == OP_COUNT || it->op == OP_PRUNE || r->npend >= PENDING_MAX) {
        free(it);
        return;
    }
    if ((it->op == OP_LIFT || it->op == OP_EXPIRE) && it->has_full) {
        it->op = OP_PUT;
        it->b = it->full;
        it->has_full = false;
    }
    STAILQ_INSERT_TAIL(&r->pending, it, link);
    r->npend++;
}

static void post(struct redis_store *r, struct item *it)
{
    it->r = r;
    pool_post(r->mb, run_item, it);
}

static struct item *item_new(enum op op)
{
    struct item *it = calloc(1, sizeof *it);
    if (it == NULL)
        abort();
    it->op = op;
    return it;
}

static void rs_write(struct store *s, const struct store_write *w)
{
    struct item *it = item_new((enum op)w->op);
    it->b = w->b;
    post((struct redis_store *)s, it);
}

static void rs_count(struct store *s, const struct addr *prefix, enum guard_reason why,
                     long limit, int64_t window_ms)
{
    struct redis_store *r = (struct redis_store *)s;
    if (!atomic_load(&r->up))
        return;      /* local counting decides meanwhile */
    struct item *it = item_new(OP_COUNT);
    it->b.prefix = *prefix;
    it->why = why;
    it->limit = limit;
    it->window = window_ms;
    post(r, it);
}

/* ---- connection, subscription, resynchronisation ----------------------- */

static void fetch_and_apply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct redis_store *r = priv;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY)
        return;
    int64_t now = util_now_ms();
    for (size_t i = 0; i < rep->elements; i++) {
        struct guard_block b;
        if (!block_of(rep->element[i], &b))
            continue;
        if (in_force(&b, now)) {
            known_set(r, &b);
            if (r->hooks.installed)
                r->hooks.installed(r->hooks.ctx, &b);
        } else {
            known_drop(r, b.id);
            if (b.state == BLOCK_LIFTED || b.state == BLOCK_EXPIRED) {
                if (r->hooks.removed)
                    r->hooks.removed(r->hooks.ctx, b.id, &b.prefix);
            } else if (r->hooks.installed) {
                r->hooks.installed(r->hooks.ctx, &b);   /* ladder memory */
            }
        }
    }
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct redis_store *r = priv;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") != 0 ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *m = rep->element[2]->str;
    uint64_t id;
    if (strlen(m) < 3 || m[1] != ' ' || !store_id_parse(m + 2, &id) || r->ac == NULL)
        return;
    const char *args[2] = {r->pfx, m + 2};
    eval(r, r->ac, fetch_and_apply, r, lua_fetch, 0, NULL, 2, args);
}

static void set_up(struct redis_store *r, bool up)
{
    atomic_store(&r->base.down, !up);
    if (atomic_exchange(&r->up, up) == up)
        return;
    if (r->hooks.shared)
        r->hooks.shared(r->hooks.ctx, up);
}

static void schedule_retry(struct redis_store *r)
{
    if (r->stopping || evtimer_pending(r->retry, NULL))
        return;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 100;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    struct timeval tv = {r->backoff_ms / 1000, (r->backoff_ms % 1000) * 1000};
    evtimer_add(r->retry, &tv);
}

/* Either connection lost: drop both, decide locally, retry. */
static void lost(struct redis_store *r, const char *why)
{
    set_up(r, false);
    if (!r->down_logged && !r->stopping) {
        r->down_logged = true;
        log_event(LOG_ERROR, "redis_down", "redis", r->host, "error", why,
                  "effect", "local counting; known blocks stay enforced", NULL);
    }
    redisAsyncContext *ac = r->ac, *sub = r->sub;
    r->ac = r->sub = NULL;
    /* Freeing from inside hiredis' own callbacks is not allowed; the
     * disconnect callback path has already freed the one that died. */
    if (ac != NULL)
        redisAsyncDisconnect(ac);
    if (sub != NULL)
        redisAsyncDisconnect(sub);
    schedule_retry(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_store *r = ac->data;
    char why[128];
    snprintf(why, sizeof why, "%s", status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "lost"));
    if (ac == r->ac)
        r->ac = NULL;
    if (ac == r->sub)
        r->sub = NULL;
    lost(r, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_store *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        if (ac == r->ac)
            r->ac = NULL;
        if (ac == r->sub)
            r->sub = NULL;
        lost(r, ac->errstr[0] ? ac->errstr : "cannot connect");
    }
}

static void synced(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct redis_store *r = priv;
    redisReply *rep = reply;
    if (rep == NULL)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        log_event(LOG_ERROR, "store_error", "backend", "redis", "error", rep->str, NULL);
        return;
    }
    fetch_and_apply(ac, reply, priv);
    r->backoff_ms = 0;
    set_up(r, true);
    /* Nodes that come back together may each publish their write-backs
     * before the others have resubscribed: look again, twice, shortly. */
    r->rechecks = 0;
    struct timeval tv = {0, 500000};
    evtimer_add(r->recheck, &tv);
    log_event(LOG_INFO, r->down_logged ? "redis_up" : "redis_connected", "redis", r->host, NULL);
    r->down_logged = false;
}

static void prepare(redisAsyncContext *ac, struct redis_store *r)
{
    ac->data = r;
    redisLibeventAttach(ac, r->evb);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->password[0] != '\0')
        redisAsyncCommand(ac, check_reply, NULL, "AUTH %s", r->password);
    if (r->db != 0)
        redisAsyncCommand(ac, check_reply, NULL, "SELECT %ld", r->db);
}

static redisAsyncContext *open_ctx(struct redis_store *r)
{
    redisAsyncContext *ac = r->port ? redisAsyncConnect(r->host, r->port)
                                    : redisAsyncConnectUnix(r->host);
    if (ac == NULL)
        return NULL;
    if (ac->err) {
        redisAsyncFree(ac);
        return NULL;
    }
    prepare(ac, r);
    return ac;
}

static void connect_now(struct redis_store *r)
{
    if (r->stopping || r->ac != NULL || r->sub != NULL)
        return;
    r->ac = open_ctx(r);
    r->sub = r->ac ? open_ctx(r) : NULL;
    if (r->ac == NULL || r->sub == NULL) {
        lost(r, "cannot create a connection");
        return;
    }
    /* Subscribe first, so nothing published from here on is missed. */
    redisAsyncCommand(r->sub, on_message, r, "SUBSCRIBE %s", r->chan);
    /* Then, in order on the command connection: our queued writes, the
     * write-back of blocks Redis may have lost, and the load. */
    r->npend = 0;
    struct item *it;
    while ((it = STAILQ_FIRST(&r->pending)) != NULL) {
        STAILQ_REMOVE_HEAD(&r->pending, link);
        send_item(r, it);
    }
    int64_t now = util_now_ms();
    for (struct known *k = r->known; k != NULL; k = k->next)
        if (in_force(&k->b, now))
            send_put(r, &k->b, lua_writeback, check_reply, NULL);
    char ka[160], kt[160], since[32];
    key(r, ka, sizeof ka, "active");
    key(r, kt, sizeof kt, "bytime");
    /* A month of history covers any offense_memory in practice; the
     * guard ignores what is older than its own. */
    snprintf(since, sizeof since, "%lld", (long long)(now - 366LL * 86400000));
    const char *keys[2] = {ka, kt};
    const char *args[2] = {r->pfx, since};
    eval(r, r->ac, synced, r, lua_load, 2, keys, 2, args);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_store *r = arg;
    if (!atomic_load(&r->up) || r->ac == NULL)
        return;
    char ka[160];
    key(r, ka, sizeof ka, "active");
    const char *keys[1] = {ka};
    const char *args[1] = {r->pfx};
    eval(r, r->ac, fetch_and_apply, r, lua_active, 1, keys, 1, args);
    if (++r->rechecks < 2) {
        struct timeval tv = {2, 0};
        evtimer_add(r->recheck, &tv);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

static void *store_main(void *arg)
{
    struct redis_store *r = arg;
    event_base_loop(r->evb, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void stop_run(void *arg)
{
    struct redis_store *r = arg;
    r->stopping = true;
    /* Free now rather than disconnect gracefully: the loop ends here, and a
     * subscribed connection would never finish. Pending callbacks get no
     * reply (writes go back to the queue that rs_close frees); the
     * disconnect callbacks find r->ac and r->sub already cleared. */
    redisAsyncContext *ac = r->ac, *sub = r->sub;
    r->ac = r->sub = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);
    if (sub != NULL)
        redisAsyncFree(sub);
    event_base_loopexit(r->evb, NULL);
}

static void rs_close(struct store *s)
{
    struct redis_store *r = (struct redis_store *)s;
    pool_post(r->mb, stop_run, r);
    pthread_join(r->thread, NULL);
    struct item *it;
    while ((it = STAILQ_FIRST(&r->pending)) != NULL) {
        STAILQ_REMOVE_HEAD(&r->pending, link);
        free(it);
    }
    for (struct known *k = r->known, *next; k != NULL; k = next) {
        next = k->next;
        free(k);
    }
    event_free(r->retry);
    event_free(r->recheck);
    pool_mailbox_free(r->mb);
    event_base_free(r->evb);
    free(r);
}

static const struct store_ops redis_ops = {
    rs_write, rs_load, rs_history, rs_get, rs_close, rs_count, rs_counters,
};

static void first_connect(void *arg)
{
    connect_now(arg);
}

static struct store *redis_open(const struct config *c, const struct store_hooks *h,
                                char *err, size_t errlen)
{
    struct redis_store *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->base.ops = &redis_ops;
    STAILQ_INIT(&r->pending);
    if (h != NULL)
        r->hooks = *h;
    if (strncmp(c->redis, "unix:", 5) == 0) {
        util_strlcpy(r->host, c->redis + 5, sizeof r->host);
    } else {
        const char *colon = strrchr(c->redis, ':');
        size_t hl = colon ? (size_t)(colon - c->redis) : 0;
        if (colon == NULL || hl == 0 || hl >= sizeof r->host) {
            snprintf(err, errlen, "[store] redis: '%s' is not HOST:PORT or unix:/path", c->redis);
            free(r);
            return NULL;
        }
        const char *host = c->redis;
        if (host[0] == '[' && colon[-1] == ']') {   /* [::1]:6379 */
            host++;
            hl -= 2;
        }
        memcpy(r->host, host, hl);
        r->host[hl] = '\0';
        r->port = atoi(colon + 1);
    }
    util_strlcpy(r->password, c->redis_password, sizeof r->password);
    r->db = c->redis_db;
    util_strlcpy(r->pfx, c->redis_prefix, sizeof r->pfx);
    snprintf(r->chan, sizeof r->chan, "%sevents", r->pfx);
    r->evb = event_base_new();
    r->mb = r->evb ? pool_mailbox_new(r->evb) : NULL;
    r->retry = r->evb ? evtimer_new(r->evb, on_retry, r) : NULL;
    r->recheck = r->evb ? evtimer_new(r->evb, on_recheck, r) : NULL;
    if (r->retry == NULL || r->recheck == NULL || r->mb == NULL ||
        pthread_create(&r->thread, NULL, store_main, r) != 0) {
        snprintf(err, errlen, "cannot start the redis store thread");
        if (r->retry)
            event_free(r->retry);
        if (r->recheck)
            event_free(r->recheck);
        pool_mailbox_free(r->mb);
        if (r->evb)
            event_base_free(r->evb);
        free(r);
        return NULL;
    }
    /* Until Redis answers, this node decides alone. */
    pool_post(r->mb, first_connect, r);
    return &r->base;
}

const struct store_backend_row store_redis = {STORE_REDIS, redis_open};
