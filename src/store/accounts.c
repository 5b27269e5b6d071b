#include "store/accounts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/log.h"
#include "base/util.h"
#include "store/accounts_int.h"

/* Locks made here while Redis was away, written back when it answers. */
#define WRITEBACK_MAX 256

struct accounts {
    struct account_table *t;
    struct repeat *rep;
    struct acc_sqlite *sq;       /* one node */
    struct acc_redis *rd;        /* cluster */
    char node[64];
    pthread_mutex_t mu;          /* the write-back list and key_shared */
    struct account_lock *writeback;
    size_t nwriteback;
    bool key_shared;             /* the repeat key is the cluster's */
    bool away;                   /* Redis did not answer the last call */
    int64_t familiar_step_ms;    /* record a familiar login again only after this */
};

static size_t max_accounts(const struct config *c)
{
    return c->max_accounts > 0 ? (size_t)c->max_accounts : ACCOUNT_MAX_TRACKED;
}

static bool share_key(struct accounts *a);

static void load_lock(void *ctx, const struct account_lock *l)
{
    struct accounts *a = ctx;
    account_install(a->t, l, util_now_ms());
}

static void load_familiar(void *ctx, const char *name, const struct addr *p, int64_t at)
{
    struct accounts *a = ctx;
    account_familiar(a->t, name, p, at);
}

struct accounts *accounts_open(const struct config *c, const char *node, char *err, size_t errlen)
{
    struct accounts *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->t = account_new(max_accounts(c));
    a->rep = repeat_new(REPEAT_MAX_PREFIXES);
    util_strlcpy(a->node, node, sizeof a->node);
    pthread_mutex_init(&a->mu, NULL);
    /* A busy account logs in all day from the same place: once an hour is
     * enough to keep the record fresh (familiar_for is days). */
    a->familiar_step_ms = 3600000;
    if (a->t == NULL || a->rep == NULL) {
        snprintf(err, errlen, "out of memory");
        accounts_close(a);
        return NULL;
    }
    int64_t now = util_now_ms();
    if (c->store == STORE_REDIS) {
        a->rd = acc_redis_open(c, err, errlen);
        if (a->rd == NULL) {
            accounts_close(a);
            return NULL;
        }
        share_key(a);           /* or later, once Redis answers */
        return a;
    }
    a->sq = acc_sqlite_open(c->store_path, err, errlen);
    if (a->sq == NULL || !acc_sqlite_load(a->sq, now, now - c->familiar_for_ms, load_lock,
                                          load_familiar, a)) {
        if (a->sq != NULL)
            snprintf(err, errlen, "%s: cannot load the account locks", c->store_path);
        accounts_close(a);
        return NULL;
    }
    return a;
}

void accounts_close(struct accounts *a)
{
    if (a == NULL)
        return;
    acc_sqlite_close(a->sq);
    acc_redis_close(a->rd);
    account_free(a->t);
    repeat_free(a->rep);
    free(a->writeback);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

bool accounts_waits(const struct accounts *a)
{
    return a->rd != NULL;
}

/* ---- cluster bookkeeping ------------------------------------------------ */

struct lock_list {
    struct account_lock *v;
    size_t n, cap;
};

/* A call could not reach Redis: the next one that does resynchronises. */
static void redis_away(struct accounts *a)
{
    pthread_mutex_lock(&a->mu);
    a->away = true;
    pthread_mutex_unlock(&a->mu);
}

/* Every node must fingerprint with the cluster's key (made by whichever
 * node asked first), so that a retry sent to another node is still a
 * repeat. Until Redis answers, this node's own key does. */
static bool share_key(struct accounts *a)
{
    pthread_mutex_lock(&a->mu);
    bool shared = a->key_shared;
    pthread_mutex_unlock(&a->mu);
    uint8_t key[REPEAT_KEY_LEN];
    if (shared || !acc_redis_repeat_key(a->rd, key))
        return shared;
    repeat_set_key(a->rep, key);
    pthread_mutex_lock(&a->mu);
    a->key_shared = true;
    pthread_mutex_unlock(&a->mu);
    return true;
}

static void collect_lock(void *ctx, const struct account_lock *l)
{
    struct lock_list *v = ctx;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct account_lock *p = realloc(v->v, cap * sizeof *p);
        if (p == NULL)
            return;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = *l;
}

/* Redis answered. After an outage, the locks this node made alone go back
 * (whole records), then every other lock it knows (Redis may have lost
 * them); a lock Redis has in force wins over both. */
static void redis_answered(struct accounts *a)
{
    share_key(a);
    pthread_mutex_lock(&a->mu);
    bool away = a->away;
    struct account_lock *wb = away ? a->writeback : NULL;
    size_t n = away ? a->nwriteback : 0;
    if (away) {
        a->writeback = NULL;
        a->nwriteback = 0;
        a->away = false;
    }
    pthread_mutex_unlock(&a->mu);
    if (!away)
        return;
    for (size_t i = 0; i < n; i++)
        acc_redis_put(a->rd, &wb[i]);
    free(wb);
    /* Copied out first: no Redis call under the table's lock. */
    struct lock_list known = {0};
    account_locks(a->t, util_now_ms(), collect_lock, &known);
    for (size_t i = 0; i < known.n; i++)
        acc_redis_put(a->rd, &known.v[i]);
    free(known.v);
}

static void remember_writeback(struct accounts *a, const struct account_lock *l)
{
    pthread_mutex_lock(&a->mu);
    if (a->nwriteback < WRITEBACK_MAX) {
        if (a->writeback == NULL)
            a->writeback = calloc(WRITEBACK_MAX, sizeof *a->writeback);
        if (a->writeback != NULL)
            a->writeback[a->nwriteback++] = *l;
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- the AUTH path --------------------------------------------------------- */

bool accounts_may_try(struct accounts *a, const struct config *c, const char *user,
                      const struct addr *prefix, int64_t now)
{
    if (c->account_fail_window_ms == 0)
        return true;
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(user, name))
        return true;
    if (a->rd != NULL) {
        struct account_lock lock;
        int64_t login;
        int may = acc_redis_may_try(a->rd, c, name, prefix, now, &lock, &login);
        if (may >= 0) {
            redis_answered(a);
            /* Mirror the answer, for the time Redis may be away. */
            uint64_t gone;
            if (may == 0 && lock.id != 0)
                account_install(a->t, &lock, now);
            else if (may == 1)
                account_unlock(a->t, name, now, &gone);    /* lifted elsewhere */
            else if (login > 0)
                account_familiar(a->t, name, prefix, login);
            return may != 0;
        }
        redis_away(a);
    }
    return account_may_try(a->t, c, name, prefix, now);
}

uint64_t accounts_fingerprint(struct accounts *a, const char *user, const char *pass)
{
    /* No network here (a worker calls it): the key is fetched where Redis
     * is asked anyway (share_key). */
    return repeat_fingerprint(a->rep, user, pass);
}

void accounts_failed(struct accounts *a, const struct config *c, const char *user, uint64_t fp,
                     bool count_account, const struct addr *prefix, int64_t now,
                     struct accounts_failure *out)
{
    memset(out, 0, sizeof *out);
    if (c->repeat_counts_once) {
        /* The cluster remembers the retries sent to other nodes too, once
         * every node hashes with its key; until then the local answer. */
        pthread_mutex_lock(&a->mu);
        bool shared = a->rd != NULL && a->key_shared;
        pthread_mutex_unlock(&a->mu);
        bool rep = repeat_check(a->rep, prefix, fp, now, c->auth_fail_window_ms);
        int crep = shared ? acc_redis_repeat(a->rd, c, prefix, fp, now) : -1;
        out->repeat = crep >= 0 ? crep == 1 : rep;
        if (out->repeat)
            return;
    }
    if (c->account_fail_window_ms == 0 || !count_account)
        return;
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(user, name))
        return;
    if (a->rd != NULL) {
        int locked = acc_redis_fail(a->rd, c, name, now, a->node, &out->lock);
        if (locked >= 0) {
            redis_answered(a);
            out->locked = locked == 1;
            if (out->locked)
                account_install(a->t, &out->lock, now);
            return;
        }
        /* Away: count and decide here. */
        redis_away(a);
    }
    out->locked = account_fail(a->t, c, name, now, &out->lock);
    if (!out->locked)
        return;
    util_strlcpy(out->lock.node, a->node, sizeof out->lock.node);
    if (a->sq != NULL)
        acc_sqlite_put(a->sq, &out->lock);
    else
        remember_writeback(a, &out->lock);
}

void accounts_succeeded(struct accounts *a, const struct config *c, const char *user,
                        const struct addr *prefix, int64_t now)
{
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(user, name))
        return;
    int64_t before = account_familiar(a->t, name, prefix, now);
    if (before != 0 && now - before < a->familiar_step_ms)
        return;
    if (a->sq != NULL)
        acc_sqlite_familiar(a->sq, name, prefix, now);
    else if (a->rd != NULL && acc_redis_familiar(a->rd, c, name, prefix, now))
        redis_answered(a);
    else if (a->rd != NULL)
        redis_away(a);
}

/* ---- the support desk --------------------------------------------------------- */

uint32_t accounts_repeats(struct accounts *a, const struct config *c, const struct addr *prefix,
                          int64_t now)
{
    if (a->rd != NULL) {
        long n = acc_redis_repeats(a->rd, c, prefix, now);
        if (n >= 0)
            return (uint32_t)n;
    }
    return repeat_count(a->rep, prefix, now, c->auth_fail_window_ms);
}

void accounts_status(struct accounts *a, const struct config *c, const char *name, int64_t now,
                     struct account_status *st)
{
    char n[ACCOUNT_NAME_MAX];
    memset(st, 0, sizeof *st);
    if (!account_name_normalise(name, n))
        return;
    if (a->rd != NULL && acc_redis_status(a->rd, c, n, now, st))
        return;
    account_status(a->t, c, n, now, st);
}

bool accounts_history(struct accounts *a, const char *name, int limit, accounts_lock_cb cb,
                      void *ctx)
{
    char n[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(name, n))
        return true;
    return a->rd != NULL ? acc_redis_history(a->rd, n, limit, cb, ctx)
                         : acc_sqlite_history(a->sq, n, limit, cb, ctx);
}

bool accounts_unlock(struct accounts *a, const struct config *c, const char *name, int64_t now,
                     const char *by, const char *why, struct account_lock *lifted,
                     const char **err)
{
    (void)c;
    char n[ACCOUNT_NAME_MAX];
    memset(lifted, 0, sizeof *lifted);
    *err = "not locked";
    if (!account_name_normalise(name, n))
        return false;
    uint64_t id = 0;
    bool here = account_unlock(a->t, n, now, &id);
    if (a->rd != NULL) {
        int r = acc_redis_unlock(a->rd, n, now, by, why, lifted);
        if (r < 0) {
            *err = "the store (Redis) cannot be reached";
            return false;
        }
        return r == 1;
    }
    if (!here)
        return false;
    acc_sqlite_lift(a->sq, id, now, by, why);
    lifted->id = id;
    util_strlcpy(lifted->account, n, sizeof lifted->account);
    lifted->state = LOCK_LIFTED;
    lifted->lifted_at = now;
    util_strlcpy(lifted->lifted_by, by ? by : "", sizeof lifted->lifted_by);
    util_strlcpy(lifted->lift_reason, why ? why : "", sizeof lifted->lift_reason);
    return true;
}

/* ---- upkeep --------------------------------------------------------------------- */

struct expire_ctx {
    struct accounts *a;
    accounts_lock_cb cb;
    void *ctx;
};

static void expired(void *arg, uint64_t id, const char *name, int64_t at)
{
    struct expire_ctx *e = arg;
    /* In a cluster the lock's key runs out in Redis by itself. */
    if (e->a->sq != NULL)
        acc_sqlite_expire(e->a->sq, id, at);
    if (e->cb != NULL) {
        struct account_lock l = {.id = id, .state = LOCK_EXPIRED, .lifted_at = at};
        util_strlcpy(l.account, name, sizeof l.account);
        e->cb(e->ctx, &l);
    }
}

size_t accounts_expire(struct accounts *a, int64_t now, accounts_lock_cb cb, void *ctx)
{
    struct expire_ctx e = {a, cb, ctx};
    return account_expire(a->t, now, expired, &e);
}

void accounts_sweep(struct accounts *a, const struct config *c, int64_t now)
{
    account_sweep(a->t, c, now);
    repeat_sweep(a->rep, now, c->auth_fail_window_ms);
}

void accounts_prune(struct accounts *a, const struct config *c, int64_t now)
{
    if (a->sq != NULL)
        acc_sqlite_prune(a->sq, now - c->history_retention_ms, now - c->familiar_for_ms);
}

void accounts_stats(struct accounts *a, int64_t now, struct accounts_stats *out)
{
    account_stats(a->t, now, &out->accounts);
    repeat_stats(a->rep, &out->repeats);
}
