/* Account locks, counts, familiar sets and failure fingerprints in Redis,
 * shared by every node. Synchronous hiredis on one connection under a
 * mutex, with short timeouts: the callers are pool threads and the control
 * socket, never an event loop. After a failure the connection rests for a
 * second (so that an outage costs one timeout a second, not one per AUTH),
 * and the callers decide locally meanwhile.
 *
 * Keys, under redis_prefix P (NAME: the normalised account):
 *   P akey            the key of the failure fingerprints (64 hex digits)
 *   P rep:PREFIX      sorted set: fingerprints by last failure (at most 8)
 *   P repn:PREFIX     hash: fingerprint -> repeats since its first failure
 *   P acnt:NAME       hash: the account's two-period failure counter
 *   P alocked:NAME    the id of the lock in force; expires with it
 *   P alock:ID        hash: one lock record (the fields of struct account_lock)
 *   P alocks:NAME     sorted set: the account's lock ids by start
 *   P fam:NAME        hash: familiar prefix -> its latest login (at most 32)
 * Every change is one Lua script. Times are the calling node's clock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "base/log.h"
#include "base/util.h"
#include "store/accounts_int.h"
#include "store/store.h"

#define REST_MS 1000
#define ARGS_MAX 32

struct acc_redis {
    pthread_mutex_t mu;
    redisContext *rc;
    int64_t rest_until;          /* mono ms: no attempt before */
    bool down_logged;
    char host[256];
    int port;
    char password[256];
    long db;
    char pfx[128];
    int64_t retention_ms;
};

/* ---- scripts ------------------------------------------------------------ */

/* KEYS: alocked:NAME, fam:NAME; ARGV: P, prefix, now, familiar_for. */
static const char lua_may[] =
    "local id = redis.call('GET', KEYS[1])\n"
    "if not id then return {1} end\n"
    "local last = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')\n"
    "if tonumber(ARGV[3]) - last < tonumber(ARGV[4]) then return {2, last} end\n"
    "return {0, redis.call('HGETALL', ARGV[1] .. 'alock:' .. id)}\n";

/* KEYS: rep:PREFIX, repn:PREFIX; ARGV: fingerprint, now, window, slots. */
static const char lua_repeat[] =
    "local now = tonumber(ARGV[2]); local win = tonumber(ARGV[3])\n"
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - win)) do\n"
    "  redis.call('HDEL', KEYS[2], m); redis.call('ZREM', KEYS[1], m)\n"
    "end\n"
    "local rep = 0\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then\n"
    "  rep = 1; redis.call('HINCRBY', KEYS[2], ARGV[1], 1)\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "local n = redis.call('ZCARD', KEYS[1]); local slots = tonumber(ARGV[4])\n"
    "if n > slots then\n"
    "  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, n - slots - 1)) do\n"
    "    redis.call('HDEL', KEYS[2], m); redis.call('ZREM', KEYS[1], m)\n"
    "  end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], win)\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], win) end\n"
    "return rep\n";

/* KEYS: rep:PREFIX, repn:PREFIX; ARGV: now, window. */
static const char lua_repeats[] =
    "local n = 0\n"
    "local since = '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf')) do\n"
    "  n = n + tonumber(redis.call('HGET', KEYS[2], m) or '0')\n"
    "end\n"
    "return n\n";

/* The two-period estimate of guard.c (and of the blocks' lua_count). */
#define LUA_COUNTER \
    "local function roll(h, now, win)\n" \
    "  local s = tonumber(h[1]); local c = tonumber(h[2]) or 0; local p = tonumber(h[3]) or 0\n" \
    "  if s == nil or now - s >= 2 * win then s = now; c = 0; p = 0\n" \
    "  elseif now - s >= win then p = c; c = 0; s = s + win end\n" \
    "  return s, c, p\n" \
    "end\n" \
    "local function est(s, c, p, now, win) return c + math.floor(p * (win - (now - s)) / win) end\n"

/* KEYS: acnt:NAME, alocked:NAME, alocks:NAME; ARGV: P, now, window, limit,
 * lock ms, new id, node, NAME, retention ms. */
static const char lua_fail[] =
    LUA_COUNTER
    "if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end\n"
    "local now = tonumber(ARGV[2]); local win = tonumber(ARGV[3])\n"
    "local h = redis.call('HMGET', KEYS[1], 's', 'c', 'p', 'f')\n"
    "local s, c, p = roll(h, now, win)\n"
    "local f = tonumber(h[4]) or now\n"
    "if est(s, c, p, now, win) == 0 then f = now end\n"
    "c = c + 1\n"
    "local e = est(s, c, p, now, win)\n"
    "if e >= tonumber(ARGV[4]) then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  local k = ARGV[1] .. 'alock:' .. ARGV[6]\n"
    "  redis.call('HSET', k, 'id', ARGV[6], 'account', ARGV[8], 'reason', 'account_failures',\n"
    "    'state', 'locked', 'started_at', now, 'expires_at', now + tonumber(ARGV[5]),\n"
    "    'first_event_at', f, 'last_event_at', now, 'events', e, 'node', ARGV[7])\n"
    "  redis.call('PEXPIRE', k, tonumber(ARGV[5]) + tonumber(ARGV[9]))\n"
    "  redis.call('SET', KEYS[2], ARGV[6], 'PX', tonumber(ARGV[5]))\n"
    "  redis.call('ZADD', KEYS[3], now, ARGV[6])\n"
    "  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]) + tonumber(ARGV[9]))\n"
    "  return {1, e, f}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 's', s, 'c', c, 'p', p, 'f', f)\n"
    "redis.call('PEXPIRE', KEYS[1], 2 * win)\n"
    "return {0, e, f}\n";

/* A lock made while Redis was away, unless one is in force. KEYS:
 * alocked:NAME, alocks:NAME, alock:ID; ARGV: id, started, ms left,
 * retention ms, field/value pairs. */
static const char lua_put[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[3], unpack(ARGV, 5))\n"
    "redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]))\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[3]))\n"
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: alocked:NAME; ARGV: P, now, by, why. */
static const char lua_unlock[] =
    "local id = redis.call('GET', KEYS[1])\n"
    "if not id then return {0} end\n"
    "redis.call('DEL', KEYS[1])\n"
    "local k = ARGV[1] .. 'alock:' .. id\n"
    "redis.call('HSET', k, 'state', 'lifted', 'lifted_at', ARGV[2], 'lifted_by', ARGV[3],\n"
    "  'lift_reason', ARGV[4])\n"
    "return {1, redis.call('HGETALL', k)}\n";

/* KEYS: fam:NAME; ARGV: prefix, now, max, familiar_for. */
static const char lua_familiar[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[3]) then\n"
    "  local all = redis.call('HGETALL', KEYS[1]); local old, at = nil, nil\n"
    "  for i = 1, #all, 2 do\n"
    "    local t = tonumber(all[i + 1])\n"
    "    if at == nil or t < at then old = all[i]; at = t end\n"
    "  end\n"
    "  redis.call('HDEL', KEYS[1], old)\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))\n"
    "return 1\n";

/* KEYS: acnt:NAME, alocked:NAME, fam:NAME; ARGV: P, now, window, familiar_for. */
static const char lua_status[] =
    LUA_COUNTER
    "local now = tonumber(ARGV[2]); local win = tonumber(ARGV[3])\n"
    "local h = redis.call('HMGET', KEYS[1], 's', 'c', 'p')\n"
    "local e = 0\n"
    "if h[1] and win > 0 then local s, c, p = roll(h, now, win); e = est(s, c, p, now, win) end\n"
    "local fam = 0; local all = redis.call('HGETALL', KEYS[3])\n"
    "for i = 2, #all, 2 do\n"
    "  if now - tonumber(all[i]) < tonumber(ARGV[4]) then fam = fam + 1 end\n"
    "end\n"
    "local id = redis.call('GET', KEYS[2])\n"
    "local rec = {}\n"
    "if id then rec = redis.call('HGETALL', ARGV[1] .. 'alock:' .. id) end\n"
    "return {e, fam, rec}\n";

/* KEYS: alocks:NAME; ARGV: P, limit (0: all). */
static const char lua_history[] =
    "local out = {}\n"
    "local lim = tonumber(ARGV[2])\n"
    "for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do\n"
    "  if lim > 0 and #out >= lim then break end\n"
    "  local r = redis.call('HGETALL', ARGV[1] .. 'alock:' .. id)\n"
    "  if #r > 0 then out[#out + 1] = r end\n"
    "end\n"
    "return out\n";

/* ---- the connection ------------------------------------------------------ */

static void lost(struct acc_redis *r, const char *why)
{
    /* `why` may be the context's own text: copied before it goes. */
    char text[128];
    util_strlcpy(text, why, sizeof text);
    if (r->rc != NULL) {
        redisFree(r->rc);
        r->rc = NULL;
    }
    r->rest_until = util_mono_ms() + REST_MS;
    if (!r->down_logged)
        log_event(LOG_WARN, "account_store_down", "backend", "redis", "error", text,
                  "effect", "accounts counted and locked locally", NULL);
    r->down_logged = true;
}

static bool ok_reply(redisReply *rep)
{
    return rep != NULL && rep->type != REDIS_REPLY_ERROR;
}

/* The mutex is held. */
static bool connected(struct acc_redis *r)
{
    if (r->rc != NULL)
        return true;
    if (util_mono_ms() < r->rest_until)
        return false;
    struct timeval tv = {0, 500000};
    r->rc = r->port ? redisConnectWithTimeout(r->host, r->port, tv)
                    : redisConnectUnixWithTimeout(r->host, tv);
    if (r->rc == NULL || r->rc->err) {
        lost(r, r->rc ? r->rc->errstr : "cannot connect");
        return false;
    }
    struct timeval op = {1, 0};
    redisSetTimeout(r->rc, op);
    redisReply *rep;
    if (r->password[0] != '\0') {
        rep = redisCommand(r->rc, "AUTH %s", r->password);
        bool good = ok_reply(rep);
        freeReplyObject(rep);
        if (!good) {
            lost(r, "AUTH refused");
            return false;
        }
    }
    if (r->db != 0) {
        rep = redisCommand(r->rc, "SELECT %ld", r->db);
        bool good = ok_reply(rep);
        freeReplyObject(rep);
        if (!good) {
            lost(r, "SELECT refused");
            return false;
        }
    }
    if (r->down_logged)
        log_event(LOG_INFO, "account_store_up", "backend", "redis", NULL);
    r->down_logged = false;
    return true;
}

struct args {
    int n;
    const char *v[ARGS_MAX];
    size_t len[ARGS_MAX];
    char buf[ARGS_MAX][ACCOUNT_NAME_MAX + 160];
};

static void arg(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct args *a, const char *fmt, ...)
{
    if (a->n == ARGS_MAX)
        abort();
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->buf[a->n], sizeof a->buf[0], fmt, ap);
    va_end(ap);
    a->v[a->n] = a->buf[a->n];
    a->len[a->n] = n < 0 ? 0 : (size_t)n < sizeof a->buf[0] ? (size_t)n : sizeof a->buf[0] - 1;
    a->n++;
}

/* EVAL script nkeys args...: the reply (to free), or NULL with the
 * connection marked lost. Takes and releases the mutex. */
static redisReply *eval(struct acc_redis *r, const char *script, int nkeys, const struct args *a)
{
    const char *argv[ARGS_MAX + 3];
    size_t lens[ARGS_MAX + 3];
    char nk[8];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVAL";
    lens[0] = 4;
    argv[1] = script;
    lens[1] = strlen(script);
    argv[2] = nk;
    lens[2] = strlen(nk);
    for (int i = 0; i < a->n; i++) {
        argv[3 + i] = a->v[i];
        lens[3 + i] = a->len[i];
    }
    pthread_mutex_lock(&r->mu);
    redisReply *rep = NULL;
    if (connected(r)) {
        rep = redisCommandArgv(r->rc, a->n + 3, argv, lens);
        if (rep == NULL) {
            lost(r, r->rc->errstr[0] ? r->rc->errstr : "no reply");
        } else if (rep->type == REDIS_REPLY_ERROR) {
            log_event(LOG_ERROR, "store_error", "backend", "redis", "part", "accounts",
                      "error", rep->str, NULL);
            freeReplyObject(rep);
            rep = NULL;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rep;
}

static long long int_of(const redisReply *x)
{
    if (x == NULL)
        return 0;
    if (x->type == REDIS_REPLY_INTEGER)
        return x->integer;
    if (x->type == REDIS_REPLY_STRING)
        return strtoll(x->str, NULL, 10);
    return 0;
}

static void name_key(struct args *a, const struct acc_redis *r, const char *what, const char *name)
{
    arg(a, "%s%s:%s", r->pfx, what, name);
}

static void prefix_key(struct args *a, const struct acc_redis *r, const char *what,
                       const struct addr *p)
{
    char s[ADDR_STRLEN];
    addr_format(p, true, s);
    arg(a, "%s%s:%s", r->pfx, what, s);
}

/* An HGETALL array -> a lock; false when it is not one. */
static bool lock_of(const redisReply *h, struct account_lock *l)
{
    memset(l, 0, sizeof *l);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements < 2)
        return false;
    bool have_id = false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str, *v = h->element[i + 1]->str;
        if (k == NULL || v == NULL)
            continue;
        if (strcmp(k, "id") == 0)
            have_id = store_id_parse(v, &l->id);
        else if (strcmp(k, "account") == 0)
            util_strlcpy(l->account, v, sizeof l->account);
        else if (strcmp(k, "reason") == 0 && !account_reason_parse(v, &l->reason))
            return false;
        else if (strcmp(k, "state") == 0 && !lock_state_parse(v, &l->state))
            return false;
        else if (strcmp(k, "started_at") == 0)
            l->started_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "expires_at") == 0)
            l->expires_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "lifted_at") == 0)
            l->lifted_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "first_event_at") == 0)
            l->first_event_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "last_event_at") == 0)
            l->last_event_at = strtoll(v, NULL, 10);
        else if (strcmp(k, "events") == 0)
            l->events = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k, "lifted_by") == 0)
            util_strlcpy(l->lifted_by, v, sizeof l->lifted_by);
        else if (strcmp(k, "lift_reason") == 0)
            util_strlcpy(l->lift_reason, v, sizeof l->lift_reason);
        else if (strcmp(k, "node") == 0)
            util_strlcpy(l->node, v, sizeof l->node);
        else if (strcmp(k, "note") == 0)
            util_strlcpy(l->note, v, sizeof l->note);
    }
    return have_id && l->reason != 0;
}

/* ---- calls ------------------------------------------------------------------ */

bool acc_redis_repeat_key(struct acc_redis *r, uint8_t key[32])
{
    uint8_t mine[32];
    char hex[65];
    util_random(mine, sizeof mine);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mine[i]);
    /* SET NX then GET, in one script: whoever came first wins. */
    static const char lua[] =
        "redis.call('SET', KEYS[1], ARGV[1], 'NX')\n"
        "return redis.call('GET', KEYS[1])\n";
    struct args a = {0};
    arg(&a, "%sakey", r->pfx);
    arg(&a, "%s", hex);
    redisReply *rep = eval(r, lua, 1, &a);
    bool ok = rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len == 64;
    for (int i = 0; ok && i < 32; i++) {
        unsigned v;
        ok = sscanf(rep->str + 2 * i, "%2x", &v) == 1;
        key[i] = (uint8_t)v;
    }
    freeReplyObject(rep);
    return ok;
}

int acc_redis_may_try(struct acc_redis *r, const struct config *c, const char *name,
                      const struct addr *prefix, int64_t now, struct account_lock *lock,
                      int64_t *last_login)
{
    char p[ADDR_STRLEN];
    addr_format(prefix, true, p);
    struct args a = {0};
    name_key(&a, r, "alocked", name);
    name_key(&a, r, "fam", name);
    arg(&a, "%s", r->pfx);
    arg(&a, "%s", p);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%lld", (long long)c->familiar_for_ms);
    redisReply *rep = eval(r, lua_may, 2, &a);
    if (rep == NULL)
        return -1;
    int may = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1
                  ? (int)int_of(rep->element[0]) : 1;
    if (may == 0 && (rep->elements < 2 || !lock_of(rep->element[1], lock)))
        memset(lock, 0, sizeof *lock);
    *last_login = may == 2 && rep->elements == 2 ? int_of(rep->element[1]) : 0;
    freeReplyObject(rep);
    return may;
}

int acc_redis_repeat(struct acc_redis *r, const struct config *c, const struct addr *prefix,
                     uint64_t fp, int64_t now)
{
    struct args a = {0};
    prefix_key(&a, r, "rep", prefix);
    prefix_key(&a, r, "repn", prefix);
    arg(&a, "%016llx", (unsigned long long)fp);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%lld", (long long)c->auth_fail_window_ms);
    arg(&a, "%d", REPEAT_SLOTS);
    redisReply *rep = eval(r, lua_repeat, 2, &a);
    if (rep == NULL)
        return -1;
    int v = int_of(rep) != 0;
    freeReplyObject(rep);
    return v;
}

long acc_redis_repeats(struct acc_redis *r, const struct config *c, const struct addr *prefix,
                       int64_t now)
{
    struct args a = {0};
    prefix_key(&a, r, "rep", prefix);
    prefix_key(&a, r, "repn", prefix);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%lld", (long long)c->auth_fail_window_ms);
    redisReply *rep = eval(r, lua_repeats, 2, &a);
    if (rep == NULL)
        return -1;
    long v = (long)int_of(rep);
    freeReplyObject(rep);
    return v;
}

static uint64_t new_id(void)
{
    uint64_t id;
    do
        util_random(&id, sizeof id);
    while (id == 0);
    return id;
}

int acc_redis_fail(struct acc_redis *r, const struct config *c, const char *name, int64_t now,
                   const char *node, struct account_lock *made)
{
    uint64_t id = new_id();
    char hex[17];
    store_id_format(id, hex);
    struct args a = {0};
    name_key(&a, r, "acnt", name);
    name_key(&a, r, "alocked", name);
    name_key(&a, r, "alocks", name);
    arg(&a, "%s", r->pfx);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%lld", (long long)c->account_fail_window_ms);
    arg(&a, "%ld", c->account_fail_limit);
    arg(&a, "%lld", (long long)c->account_lock_ms);
    arg(&a, "%s", hex);
    arg(&a, "%s", node);
    arg(&a, "%s", name);
    arg(&a, "%lld", (long long)r->retention_ms);
    redisReply *rep = eval(r, lua_fail, 3, &a);
    if (rep == NULL)
        return -1;
    int locked = rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                 int_of(rep->element[0]) == 1;
    if (locked) {
        memset(made, 0, sizeof *made);
        made->id = id;
        util_strlcpy(made->account, name, sizeof made->account);
        made->reason = ACCOUNT_FAILURES;
        made->state = LOCK_ACTIVE;
        made->started_at = now;
        made->expires_at = now + c->account_lock_ms;
        made->events = (uint32_t)int_of(rep->element[1]);
        made->first_event_at = int_of(rep->element[2]);
        made->last_event_at = now;
        util_strlcpy(made->node, node, sizeof made->node);
    }
    freeReplyObject(rep);
    return locked;
}

bool acc_redis_put(struct acc_redis *r, const struct account_lock *l)
{
    int64_t left = l->expires_at - util_now_ms();
    if (left <= 0)
        return true;
    char hex[17];
    store_id_format(l->id, hex);
    struct args a = {0};
    name_key(&a, r, "alocked", l->account);
    name_key(&a, r, "alocks", l->account);
    arg(&a, "%salock:%s", r->pfx, hex);
    arg(&a, "%s", hex);
    arg(&a, "%lld", (long long)l->started_at);
    arg(&a, "%lld", (long long)left);
    arg(&a, "%lld", (long long)r->retention_ms);
    arg(&a, "id");
    arg(&a, "%s", hex);
    arg(&a, "account");
    arg(&a, "%s", l->account);
    arg(&a, "reason");
    arg(&a, "%s", account_reason_name(l->reason));
    arg(&a, "state");
    arg(&a, "locked");
    arg(&a, "started_at");
    arg(&a, "%lld", (long long)l->started_at);
    arg(&a, "expires_at");
    arg(&a, "%lld", (long long)l->expires_at);
    arg(&a, "first_event_at");
    arg(&a, "%lld", (long long)l->first_event_at);
    arg(&a, "last_event_at");
    arg(&a, "%lld", (long long)l->last_event_at);
    arg(&a, "events");
    arg(&a, "%u", l->events);
    arg(&a, "node");
    arg(&a, "%s", l->node);
    redisReply *rep = eval(r, lua_put, 3, &a);
    freeReplyObject(rep);
    return rep != NULL;
}

int acc_redis_unlock(struct acc_redis *r, const char *name, int64_t now, const char *by,
                     const char *why, struct account_lock *lifted)
{
    struct args a = {0};
    name_key(&a, r, "alocked", name);
    arg(&a, "%s", r->pfx);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%s", by ? by : "");
    arg(&a, "%s", why ? why : "");
    redisReply *rep = eval(r, lua_unlock, 1, &a);
    if (rep == NULL)
        return -1;
    int done = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && int_of(rep->element[0]) == 1;
    if (done && !lock_of(rep->element[1], lifted))
        memset(lifted, 0, sizeof *lifted);
    freeReplyObject(rep);
    return done;
}

bool acc_redis_familiar(struct acc_redis *r, const struct config *c, const char *name,
                        const struct addr *prefix, int64_t now)
{
    char p[ADDR_STRLEN];
    addr_format(prefix, true, p);
    struct args a = {0};
    name_key(&a, r, "fam", name);
    arg(&a, "%s", p);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%d", ACCOUNT_FAMILIAR_MAX);
    arg(&a, "%lld", (long long)c->familiar_for_ms);
    redisReply *rep = eval(r, lua_familiar, 1, &a);
    freeReplyObject(rep);
    return rep != NULL;
}

bool acc_redis_status(struct acc_redis *r, const struct config *c, const char *name,
                      int64_t now, struct account_status *st)
{
    struct args a = {0};
    name_key(&a, r, "acnt", name);
    name_key(&a, r, "alocked", name);
    name_key(&a, r, "fam", name);
    arg(&a, "%s", r->pfx);
    arg(&a, "%lld", (long long)now);
    arg(&a, "%lld", (long long)c->account_fail_window_ms);
    arg(&a, "%lld", (long long)c->familiar_for_ms);
    redisReply *rep = eval(r, lua_status, 3, &a);
    if (rep == NULL)
        return false;
    bool ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 3;
    if (ok) {
        memset(st, 0, sizeof *st);
        st->failures = (uint32_t)int_of(rep->element[0]);
        st->familiar = (uint32_t)int_of(rep->element[1]);
        struct account_lock l;
        if (lock_of(rep->element[2], &l) && l.state == LOCK_ACTIVE && l.expires_at > now) {
            st->locked = true;
            st->lock_id = l.id;
            st->lock_reason = l.reason;
            st->lock_started = l.started_at;
            st->lock_until = l.expires_at;
        }
    }
    freeReplyObject(rep);
    return ok;
}

bool acc_redis_history(struct acc_redis *r, const char *name, int limit,
                       accounts_lock_cb cb, void *ctx)
{
    struct args a = {0};
    name_key(&a, r, "alocks", name);
    arg(&a, "%s", r->pfx);
    arg(&a, "%d", limit);
    redisReply *rep = eval(r, lua_history, 1, &a);
    if (rep == NULL)
        return false;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        struct account_lock l;
        if (lock_of(rep->element[i], &l))
            cb(ctx, &l);
    }
    freeReplyObject(rep);
    return true;
}

/* ---- open/close ------------------------------------------------------------- */

struct acc_redis *acc_redis_open(const struct config *c, char *err, size_t errlen)
{
    struct acc_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
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
        if (host[0] == '[' && colon[-1] == ']') {
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
    r->retention_ms = c->history_retention_ms;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

void acc_redis_close(struct acc_redis *r)
{
    if (r == NULL)
        return;
    if (r->rc != NULL)
        redisFree(r->rc);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
