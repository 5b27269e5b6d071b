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
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include "base/log.h"
#include "base/pool.h"
#include "store/store.h"
#include "base/util.h"

#define PENDING_MAX 100000
#define BACKOFF_MAX_MS 5000
#define CALL_TIMEOUT_MS 3000
#define EVAL_ARGS_MAX 160     /* an IPv6 address and its 128 covering prefixes */

/* ---- Lua scripts ------------------------------------------------------- */

/* KEYS: block, active, bytime, byprefix:PREFIX; ARGV: id, started, state,
 * channel, then field/value pairs. */
static const char lua_put[] =
    "redis.call('HSET', KEYS[1], unpack(ARGV, 5))\n"
    "if ARGV[3] == 'blocked' or ARGV[3] == 'permanent' then redis.call('SADD', KEYS[2], ARGV[1])\n"
    "else redis.call('SREM', KEYS[2], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[4], 'B ' .. ARGV[1])\n"
    "return 1\n";

/* Write-back after an outage: only what Redis has no record of at all. */
static const char lua_writeback[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 5))\n"
    "if ARGV[3] == 'blocked' or ARGV[3] == 'permanent' then redis.call('SADD', KEYS[2], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[4], 'B ' .. ARGV[1])\n"
    "return 1\n";

/* The blocks on any of the prefixes ARGV[3..] (an address and every prefix
 * covering it), newest first, at most ARGV[2] (0: all). */
static const char lua_history_of[] =
    "local ids = {}\n"
    "for i = 3, #ARGV do\n"
    "  local z = redis.call('ZREVRANGE', ARGV[1] .. 'byprefix:' .. ARGV[i], 0, -1, 'WITHSCORES')\n"
    "  for j = 1, #z, 2 do ids[#ids + 1] = {z[j], tonumber(z[j + 1])} end\n"
    "end\n"
    "table.sort(ids, function(a, b) return a[2] > b[2] end)\n"
    "local out = {}\n"
    "local lim = tonumber(ARGV[2])\n"
    "for _, v in ipairs(ids) do\n"
    "  if lim > 0 and #out >= lim then break end\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. v[1])\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* The cluster's estimates of three counters (as lua_count computes them).
 * KEYS: the counters; ARGV: their windows. */
static const char lua_counters[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "for i = 1, #KEYS do\n"
    "  local h = redis.call('HMGET', KEYS[i], 's', 'c', 'p')\n"
    "  local s = tonumber(h[1]); local c = tonumber(h[2]) or 0; local p = tonumber(h[3]) or 0\n"
    "  local win = tonumber(ARGV[i]); local e = 0\n"
    "  if s ~= nil and now - s < 2 * win then\n"
    "    if now - s >= win then p = c; c = 0; s = s + win end\n"
    "    e = c + math.floor(p * (win - (now - s)) / win)\n"
    "  end\n"
    "  out[i] = e\n"
    "end\n"
    "return out\n";

/* KEYS: block, active; ARGV: id, new state, at, by, why, channel, letter. */
static const char lua_lift[] =
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'blocked' and st ~= 'permanent' then return 0 end\n"
    "if ARGV[2] == 'expired' and st ~= 'blocked' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[2])\n"
    "if ARGV[2] == 'lifted' then\n"
    "  redis.call('HSET', KEYS[1], 'lifted_at', ARGV[3], 'lifted_by', ARGV[4], 'lift_reason', ARGV[5])\n"
    "end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. ARGV[1])\n"
    "return 1\n";

/* The same two-period estimate as guard.c, summed over every node. The
 * call that reaches the limit resets the counter and alone gets 1, so one
 * node imposes the block. KEYS: counter; ARGV: window ms, limit. */
static const char lua_count[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local win = tonumber(ARGV[1]); local limit = tonumber(ARGV[2])\n"
    "local h = redis.call('HMGET', KEYS[1], 's', 'c', 'p', 'f')\n"
    "local s = tonumber(h[1]); local c = tonumber(h[2]) or 0; local p = tonumber(h[3]) or 0\n"
    "local f = tonumber(h[4]) or now\n"
    "if s == nil or now - s >= 2 * win then s = now; c = 0; p = 0\n"
    "elseif now - s >= win then p = c; c = 0; s = s + win end\n"
    "local function est() return c + math.floor(p * (win - (now - s)) / win) end\n"
    "if est() == 0 then f = now end\n"
    "c = c + 1\n"
    "local e = est()\n"
    "if e >= limit then redis.call('DEL', KEYS[1]); return {1, e, f} end\n"
    "redis.call('HSET', KEYS[1], 's', s, 'c', c, 'p', p, 'f', f)\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * win)\n"
    "return {0, e, f}\n";

/* Records by id list; KEYS: none; ARGV: prefix, ids... */
static const char lua_fetch[] =
    "local out = {}\n"
    "for i = 2, #ARGV do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. ARGV[i])\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* Every block in force or started since ARGV[2]. KEYS: active, bytime. */
static const char lua_load[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "local seen = {}\n"
    "for _, id in ipairs(ids) do seen[id] = true end\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf')) do\n"
    "  if not seen[id] then ids[#ids + 1] = id; seen[id] = true end\n"
    "end\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* The blocks in force. KEYS: active. */
static const char lua_active[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* History, newest first: every record (filtered by prefix in C). KEYS: bytime. */
static const char lua_history[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'block:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* Prune: ended records older than ARGV[2]. KEYS: bytime, active. */
static const char lua_prune[] =
    "local n = 0\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 1000)) do\n"
    "  local k = ARGV[1] .. 'block:' .. id\n"
    "  local st = redis.call('HGET', k, 'state')\n"
    "  if st ~= 'blocked' and st ~= 'permanent' then\n"
    "    local pf = redis.call('HGET', k, 'prefix')\n"
    "    if pf then redis.call('ZREM', ARGV[1] .. 'byprefix:' .. pf, id) end\n"
    "    redis.call('DEL', k); redis.call('ZREM', KEYS[1], id); n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* ---- the store --------------------------------------------------------- */

enum op { OP_PUT = STORE_PUT, OP_LIFT = STORE_LIFT, OP_EXPIRE = STORE_EXPIRE,
          OP_PRUNE = STORE_PRUNE, OP_COUNT };

struct item {
    struct item *next;
    enum op op;
    struct guard_block b;      /* PUT; id, lifted_* for LIFT/EXPIRE; lifted_at = before for PRUNE */
    bool has_full;             /* LIFT/EXPIRE: the whole record, already lifted/expired */
    struct guard_block full;
    enum guard_reason why;     /* COUNT */
    long limit;
    int64_t window;
};

/* A record this node knows to be in force: written back if Redis loses it. */
struct known {
    struct known *next;
    struct guard_block b;
};

struct redis_store {
    struct store base;
    struct store_hooks hooks;
    char host[256];
    int port;                  /* 0: unix socket in host */
    char password[256];
    long db;
    char pfx[128];
    char chan[160];

    pthread_t thread;
    struct event_base *evb;
    struct pool_mailbox *mb;
    struct event *retry;
    struct event *recheck;     /* reloads the blocks in force after a (re)connect */
    int rechecks;
    redisAsyncContext *ac, *sub;
    atomic_bool up;            /* connected, synchronised and subscribed */
    int backoff_ms;
    bool down_logged;
    bool stopping;

    struct item *pend_head, *pend_tail;   /* own writes while down */
    size_t npend;
    struct known *known;       /* blocks in force this node has seen */
};

static void connect_now(struct redis_store *r);

/* ---- records ----------------------------------------------------------- */

/* argv for the record's fields; `bufs` holds the numbers' text. */
struct fields {
    const char *argv[40];
    size_t n;
    char bufs[10][32];
    char prefix[ADDR_STRLEN], id[17];
};

static void fields_add(struct fields *f, const char *k, const char *v)
{
    f->argv[f->n++] = k;
    f->argv[f->n++] = v;
}

static const char *num(struct fields *f, int i, long long v)
{
    snprintf(f->bufs[i], sizeof f->bufs[i], "%lld", v);
    return f->bufs[i];
}

static void fields_of(struct fields *f, const struct guard_block *b)
{
    f->n = 0;
    store_id_format(b->id, f->id);
    addr_format(&b->prefix, true, f->prefix);
    fields_add(f, "id", f->id);
    fields_add(f, "prefix", f->prefix);
    fields_add(f, "reason", guard_reason_name(b->reason));
    fields_add(f, "state", block_state_name(b->state));
    fields_add(f, "started_at", num(f, 0, b->started_at));
    fields_add(f, "expires_at", num(f, 1, b->expires_at));
    fields_add(f, "lifted_at", num(f, 2, b->lifted_at));
    fields_add(f, "lifted_by", b->lifted_by);
    fields_add(f, "lift_reason", b->lift_reason);
    fields_add(f, "first_event_at", num(f, 3, b->first_event_at));
    fields_add(f, "last_event_at", num(f, 4, b->last_event_at));
    fields_add(f, "events", num(f, 5, b->events));
    fields_add(f, "node", b->node);
    fields_add(f, "note", b->note);
}

static bool block_of(const redisReply *h, struct guard_block *b)
{
    memset(b, 0, sizeof *b);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0)
        return false;
    bool have_id = false, have_prefix = false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *key = k->str, *val = v->str;
        long long n = strtoll(val, NULL, 10);
        if (strcmp(key, "id") == 0)
            have_id = store_id_parse(val, &b->id);
        else if (strcmp(key, "prefix") == 0)
            have_prefix = addr_parse(val, true, &b->prefix);
        else if (strcmp(key, "reason") == 0)
            guard_reason_parse(val, &b->reason);
        else if (strcmp(key, "state") == 0)
            block_state_parse(val, &b->state);
        else if (strcmp(key, "started_at") == 0)
            b->started_at = n;
        else if (strcmp(key, "expires_at") == 0)
            b->expires_at = n;
        else if (strcmp(key, "lifted_at") == 0)
            b->lifted_at = n;
        else if (strcmp(key, "lifted_by") == 0)
            util_strlcpy(b->lifted_by, val, sizeof b->lifted_by);
        else if (strcmp(key, "lift_reason") == 0)
            util_strlcpy(b->lift_reason, val, sizeof b->lift_reason);
        else if (strcmp(key, "first_event_at") == 0)
            b->first_event_at = n;
        else if (strcmp(key, "last_event_at") == 0)
            b->last_event_at = n;
        else if (strcmp(key, "events") == 0)
            b->events = (uint32_t)n;
        else if (strcmp(key, "node") == 0)
            util_strlcpy(b->node, val, sizeof b->node);
        else if (strcmp(key, "note") == 0)
            util_strlcpy(b->note, val, sizeof b->note);
    }
    return have_id && have_prefix && b->reason != GUARD_NONE;
}

static bool in_force(const struct guard_block *b, int64_t now)
{
    return (b->state == BLOCK_ACTIVE || b->state == BLOCK_PERMANENT) &&
           (b->expires_at == 0 || b->expires_at > now);
}

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

static void key(const struct redis_store *r, char *out, size_t len, const char *what)
{
    snprintf(out, len, "%s%s", r->pfx, what);
}

static int eval(struct redis_store *r, redisAsyncContext *ac, redisCallbackFn *cb, void *priv,
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
static void count_key(const struct redis_store *r, enum guard_reason why, const struct addr *prefix,
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
    struct redis_store *r = (struct redis_store *)(void *)it->next;   /* see post() */
    it->next = NULL;
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
    it->next = NULL;
    if (r->pend_tail)
        r->pend_tail->next = it;
    else
        r->pend_head = it;
    r->pend_tail = it;
    r->npend++;
}

static void post(struct redis_store *r, struct item *it)
{
    /* The mailbox carries one pointer: the item, with the store in `next`
     * until run_item takes it. */
    it->next = (struct item *)(void *)r;
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

/* ---- reads that wait (control socket, start-up) ------------------------ */

struct call {
    struct redis_store *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, ok, too_long;
    /* the request: keys and args point into text, which the call owns,
     * since a call that times out outlives the caller that made it */
    const char *script;
    const char *keys[3];
    int nkeys;
    const char *args[EVAL_ARGS_MAX - 8];
    int nargs;
    size_t used;
    char text[8192];
    /* the answer: records, or numbers */
    struct guard_block *v;
    size_t n;
    long long nums[3];
    size_t nnums;
};

static struct call *call_new(const char *script)
{
    struct call *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->script = script;
    return c;
}

static void call_free(struct call *c)
{
    free(c->v);
    free(c);
}

/* A copy of t in the call's own text; "" (and the call refused) if full. */
static const char *call_text(struct call *c, const char *t)
{
    size_t n = strlen(t) + 1;
    if (n > sizeof c->text - c->used) {
        c->too_long = true;
        return "";
    }
    char *at = memcpy(c->text + c->used, t, n);
    c->used += n;
    return at;
}

static void call_key(struct call *c, const char *t)
{
    if (c->nkeys < (int)ARRAY_LEN(c->keys))
        c->keys[c->nkeys++] = call_text(c, t);
    else
        c->too_long = true;
}

static void call_arg(struct call *c, const char *t)
{
    if (c->nargs < (int)ARRAY_LEN(c->args))
        c->args[c->nargs++] = call_text(c, t);
    else
        c->too_long = true;
}

static void call_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct call *c = priv;
    redisReply *rep = reply;
    pthread_mutex_lock(&c->mu);
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        c->v = calloc(rep->elements + 1, sizeof *c->v);
        for (size_t i = 0; c->v != NULL && i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_INTEGER && c->nnums < ARRAY_LEN(c->nums))
                c->nums[c->nnums++] = e->integer;
            else if (block_of(e, &c->v[c->n]))
                c->n++;
        }
        c->ok = c->v != NULL;
    }
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void call_run(void *arg)
{
    struct call *c = arg;
    struct redis_store *r = c->r;
    if (!atomic_load(&r->up) || r->ac == NULL ||
        eval(r, r->ac, call_reply, c, c->script, c->nkeys, c->keys, c->nargs, c->args) != REDIS_OK) {
        pthread_mutex_lock(&c->mu);
        c->done = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* Runs the script on the store thread and waits for its records. On
 * false the call is gone: freed, or left to a reply that may still come
 * (freeing it then would risk a write into freed memory). */
static bool call_wait(struct redis_store *r, struct call *c)
{
    if (c->too_long) {
        call_free(c);
        return false;
    }
    c->r = r;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pool_post(r->mb, call_run, c);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CALL_TIMEOUT_MS / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    bool done = c->done;
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return false;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    bool ok = c->ok;
    if (!ok)
        call_free(c);
    return ok;
}

static bool rs_load(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx)
{
    (void)s;
    (void)since;
    (void)now;
    (void)cb;
    (void)ctx;
    /* The store thread loads everything itself each time it (re)connects
     * and hands it to hooks.installed; nothing to do at start. */
    return true;
}

static bool rs_history(struct store *s, const struct addr *prefix, int limit,
                       store_block_cb cb, void *ctx)
{
    struct redis_store *r = (struct redis_store *)s;
    int width = prefix->family == AF_INET ? 32 : 128;
    struct call *c = prefix->bits < width ? call_new(lua_history) : call_new(lua_history_of);
    if (c == NULL)
        return false;
    if (prefix->bits < width) {
        /* Blocks inside a wider prefix are not indexed by it: read all. */
        char kt[160];
        key(r, kt, sizeof kt, "bytime");
        call_key(c, kt);
        call_arg(c, r->pfx);
    } else {
        /* The address and every prefix covering it, from the index. */
        char lim[16], text[ADDR_STRLEN];
        snprintf(lim, sizeof lim, "%d", limit);
        call_arg(c, r->pfx);
        call_arg(c, lim);
        for (int bits = prefix->bits; bits >= 0; bits--) {
            struct addr a = *prefix;
            addr_cut(&a, bits);
            addr_format(&a, true, text);
            call_arg(c, text);
        }
    }
    if (!call_wait(r, c))
        return false;
    int n = 0;
    for (size_t i = 0; i < c->n && (limit == 0 || n < limit); i++) {
        const struct guard_block *b = &c->v[i];
        if (b->prefix.family == prefix->family &&
            (addr_in(&b->prefix, prefix) || addr_in(prefix, &b->prefix))) {
            cb(ctx, b);
            n++;
        }
    }
    call_free(c);
    return true;
}

static bool rs_counters(struct store *s, const struct config *cfg, const struct addr *prefix,
                        uint32_t out[3])
{
    struct redis_store *r = (struct redis_store *)s;
    static const enum guard_reason kinds[3] = {GUARD_AUTH_FAILURES, GUARD_UNAUTH_ATTEMPTS,
                                               GUARD_CONN_RATE};
    struct call *c = call_new(lua_counters);
    if (c == NULL)
        return false;
    char k[256], win[24];
    for (int i = 0; i < 3; i++) {
        count_key(r, kinds[i], prefix, k, sizeof k);
        call_key(c, k);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(win, sizeof win, "%lld", (long long)guard_window_ms(cfg, kinds[i]));
        call_arg(c, win);
    }
    if (!call_wait(r, c))
        return false;
    bool ok = c->nnums == 3;
    for (int i = 0; ok && i < 3; i++)
        out[i] = (uint32_t)c->nums[i];
    call_free(c);
    return ok;
}

static bool rs_get(struct store *s, uint64_t id, struct guard_block *out)
{
    struct redis_store *r = (struct redis_store *)s;
    char hex[17];
    store_id_format(id, hex);
    struct call *c = call_new(lua_fetch);
    if (c == NULL)
        return false;
    call_arg(c, r->pfx);
    call_arg(c, hex);
    if (!call_wait(r, c))
        return false;
    bool ok = c->n == 1;
    if (ok)
        *out = c->v[0];
    call_free(c);
    return ok;
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
    struct item *queued = r->pend_head;
    r->pend_head = r->pend_tail = NULL;
    r->npend = 0;
    for (struct item *it = queued, *next; it != NULL; it = next) {
        next = it->next;
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
    for (struct item *it = r->pend_head, *next; it != NULL; it = next) {
        next = it->next;
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
