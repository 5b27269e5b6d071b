#include "guard/guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "guard/index.h"
#include "guard/table.h"

/*
 * Counting: one two-period rate counter per offense kind and prefix
 * (base/rate.h says how it estimates and how far it can be off); three of
 * them, 48 bytes, sit in each counting entry (table.h).
 */

/* ---- rates (base/rate.c counts; these say which window and limit) --- */

static int64_t rate_window(const struct config *c, int k)
{
    return k == RATE_AUTH ? c->auth_fail_window_ms
         : k == RATE_UNAUTH ? c->unauth_window_ms : c->conn_rate_window_ms;
}

/* Counts saturate at RATE_MAX: a higher limit is that. */
static long rate_limit(const struct config *c, int k)
{
    long l = k == RATE_AUTH ? c->auth_fail_limit
           : k == RATE_UNAUTH ? c->unauth_limit : c->conn_rate_limit;
    return l > (long)RATE_MAX ? (long)RATE_MAX : l;
}

/* The counters of an entry are indexed by the three counted reasons, in
 * their order: one name for each offence kind, no table between them. */
_Static_assert(RATE_AUTH == GUARD_AUTH_FAILURES - GUARD_AUTH_FAILURES &&
               RATE_UNAUTH == GUARD_UNAUTH_ATTEMPTS - GUARD_AUTH_FAILURES &&
               RATE_CONN == GUARD_CONN_RATE - GUARD_AUTH_FAILURES, "rate kinds follow the reasons");

static int rate_kind(enum guard_reason why)
{
    return (int)why - GUARD_AUTH_FAILURES;
}

int64_t guard_window_ms(const struct config *c, enum guard_reason why)
{
    return rate_window(c, rate_kind(why));
}

long guard_limit(const struct config *c, enum guard_reason why)
{
    return rate_limit(c, rate_kind(why));
}

/* ---- names ---------------------------------------------------------- */

static const char *const reason_names[] = {"none", "auth_failures", "unauth_attempts",
                                           "conn_rate", "manual", "escalated"};
static const char *const state_names[] = {"blocked", "permanent", "lifted", "expired"};

const char *guard_reason_name(enum guard_reason r)
{
    return (size_t)r < ARRAY_LEN(reason_names) ? reason_names[r] : "none";
}

bool guard_reason_parse(const char *s, enum guard_reason *out)
{
    for (size_t i = 1; i < ARRAY_LEN(reason_names); i++)
        if (strcmp(s, reason_names[i]) == 0)
            return *out = (enum guard_reason)i, true;
    return false;
}

const char *block_state_name(enum block_state s)
{
    return (size_t)s < ARRAY_LEN(state_names) ? state_names[s] : "blocked";
}

bool block_state_parse(const char *s, enum block_state *out)
{
    for (size_t i = 0; i < ARRAY_LEN(state_names); i++)
        if (strcmp(s, state_names[i]) == 0)
            return *out = (enum block_state)i, true;
    return false;
}

/* ---- the guard -------------------------------------------------------- */

struct guard *guard_new(void)
{
    struct guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->ix = gindex_new();
    if (g->ix == NULL || !escmap_init(&g->esc) || !table_init(&g->t))
        abort();
    expheap_init(&g->heap);
    return g;
}

void guard_free(struct guard *g)
{
    if (g == NULL)
        return;
    table_fini(&g->t);
    gindex_free(g->ix);
    escmap_fini(&g->esc);
    expheap_fini(&g->heap);
    free(g);
}

static bool automatic(enum guard_reason r)
{
    return r != GUARD_NONE && r != GUARD_MANUAL;
}

static bool entry_blocked(const struct entry *e, int64_t now)
{
    return e->b != NULL && e->b->block_id != 0 && e->b->block_until > now;
}

/* How much an entry is worth keeping (table.c): never a block, an open
 * connection or 554s still to be logged; a prefix with blocks on its
 * ladder after all plain ones; otherwise its recent events, a failure
 * weighing four connections. */
uint32_t guard_entry_worth(const struct entry *e, const struct config *c, int64_t now)
{
    if (e->concurrent > 0 ||
        (e->b != NULL && (e->b->block_id != 0 || e->b->rejects != 0 || e->b->conc_rejects != 0)))
        return UINT32_MAX;
    uint64_t w = 0;
    for (int k = 0; k < NRATES; k++)
        w += (uint64_t)rate_estimate(&e->rate[k], now, rate_window(c, k)) * (k == RATE_CONN ? 1 : 4);
    if (e->b != NULL && e->b->noff > 0)
        w += 1ULL << 28;
    return w >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)w;
}

static const uint32_t WORTH_CONN = 1, WORTH_OFFENSE = 4;

struct blockrec *blockrec_of(struct entry *e)
{
    if (e->b == NULL) {
        e->b = calloc(1, BLOCKREC_SIZE(BLOCKREC_MIN));
        if (e->b != NULL)
            e->b->cap = BLOCKREC_MIN;
    }
    return e->b;
}

void blockrec_trim(struct entry *e)
{
    const struct blockrec *b = e->b;
    if (b != NULL && b->block_id == 0 && b->noff == 0 && b->rejects == 0 &&
        b->conc_rejects == 0 && b->conc_logged == 0) {
        free(e->b);
        e->b = NULL;
    }
}

/* ---- escalation counts ---------------------------------------------- */

/* The wider prefix a block on `k` counts toward, or false (escalation
 * off for the family, or k not narrower). */
static bool esc_wide(const struct config *c, const struct addr *k, struct addr *wide)
{
    int wb = k->family == AF_INET ? c->ipv4_escalate_prefix : c->ipv6_escalate_prefix;
    int cb = k->family == AF_INET ? c->ipv4_prefix : c->ipv6_prefix;
    if (wb <= 0 || wb >= cb || k->bits <= wb)
        return false;
    *wide = *k;
    addr_cut(wide, wb);
    return true;
}

uint32_t guard_escalation_count(struct guard *g, const struct addr *wide)
{
    return escmap_get(&g->esc, wide);
}

/* The block on e no longer counts toward its wider prefix. */
static void esc_uncount(struct guard *g, struct entry *e)
{
    if (e->b == NULL || e->b->esc_bits == 0)
        return;
    struct addr wide = e->key;
    addr_cut(&wide, e->b->esc_bits);
    e->b->esc_bits = 0;
    escmap_add(&g->esc, &wide, -1);
}

/* ---- blocks --------------------------------------------------------- */

static void forget_old_offenses(struct blockrec *b, const struct config *c, int64_t now)
{
    int64_t horizon = now - c->offense_memory_ms;
    uint8_t keep = 0;
    for (uint8_t i = 0; i < b->noff; i++)
        if (b->offenses[i] > horizon)
            b->offenses[keep++] = b->offenses[i];
    b->noff = keep;
}

/* `learned`: a block told by the store, which may be one this entry has
 * counted already (its own, echoed by the cluster, or loaded again after
 * an outage). Two blocks of one prefix cannot start in the same
 * millisecond (the first holds while the second would be counted), so the
 * start time identifies the block. */
static void add_offense(struct entry *e, int64_t at, bool learned)
{
    struct blockrec *b = e->b;
    for (uint8_t i = 0; learned && i < b->noff; i++)
        if (b->offenses[i] == at)
            return;
    if (b->noff == b->cap && b->cap < CONFIG_MAX_PERMANENT_AFTER) {
        uint8_t cap = (uint8_t)(b->cap * 2 > CONFIG_MAX_PERMANENT_AFTER ? CONFIG_MAX_PERMANENT_AFTER
                                                                        : b->cap * 2);
        struct blockrec *nb = realloc(b, BLOCKREC_SIZE(cap));
        if (nb != NULL) {          /* else: the oldest goes, as when full */
            e->b = b = nb;
            b->cap = cap;
        }
    }
    if (b->noff == b->cap) {
        memmove(b->offenses, b->offenses + 1, (size_t)(b->cap - 1) * sizeof b->offenses[0]);
        b->noff--;
    }
    /* Keep the list sorted: installs from the store may come in any order. */
    uint8_t i = b->noff;
    while (i > 0 && b->offenses[i - 1] > at) {
        b->offenses[i] = b->offenses[i - 1];
        i--;
    }
    b->offenses[i] = at;
    b->noff++;
}

static void reset_rates(struct entry *e)
{
    memset(e->rate, 0, sizeof e->rate);
}

/* Puts a block on e (replacing any): in the record, the accept-time index,
 * the expiry heap and, for an automatic one, the count of its wider
 * prefix (c NULL: a manual block, which does not count). */
static void set_block(struct guard *g, const struct config *c, struct entry *e,
                      enum guard_reason why, uint64_t id, int64_t started, int64_t until)
{
    struct blockrec *b = e->b;   /* the caller made it */
    esc_uncount(g, e);
    b->block_id = id;
    b->reason = (uint8_t)why;
    b->block_started = started;
    b->block_until = until;
    struct addr wide;
    if (c != NULL && automatic(why) && why != GUARD_ESCALATED && esc_wide(c, &e->key, &wide)) {
        b->esc_bits = wide.bits;
        escmap_add(&g->esc, &wide, +1);
    }
    /* Only out of memory fails here: the block is then recorded (status,
     * list, expiry) but not enforced at accept; nothing better to do
     * without memory. */
    gindex_put(g->ix, &e->key, until);
    if (until != INT64_MAX)
        expheap_push(&g->heap, until, id, &e->key);
    atomic_fetch_add(&g->epoch, 1);
}

/* The counters were reset when the block began and nothing is counted
 * while it holds, so what they hold now came after it: keep it. */
static void clear_block(struct guard *g, struct entry *e)
{
    if (e->b == NULL || e->b->block_id == 0)
        return;
    esc_uncount(g, e);
    e->b->block_id = 0;
    e->b->block_until = 0;
    e->b->block_started = 0;
    e->b->reason = GUARD_NONE;
    /* Its 554s not yet logged wait here for guard_reject_take() (at
     * expiry and unblock) or guard_reject_flush(). */
    uint32_t pending;
    gindex_del(g->ix, &e->key, &pending);
    e->b->rejects += pending;
    blockrec_trim(e);
}

static uint64_t new_id(void)
{
    uint64_t id;
    do
        util_random(&id, sizeof id);
    while (id == 0);
    return id;
}

static enum guard_reason rate_reason(int kind)
{
    return (enum guard_reason)(GUARD_AUTH_FAILURES + kind);
}

static bool impose_as(struct guard *g, const struct config *c, struct entry *e,
                      enum guard_reason reason, int64_t first, uint32_t events, int64_t now,
                      struct guard_block *made)
{
    struct blockrec *b = blockrec_of(e);
    if (b == NULL)
        return false;
    memset(made, 0, sizeof *made);
    made->first_event_at = first;
    made->last_event_at = now;
    made->events = events;

    forget_old_offenses(b, c, now);
    int64_t dur = config_ban_ms(c, b->noff + 1);
    add_offense(e, now, false);
    int64_t until = dur < 0 ? INT64_MAX : now + dur;
    uint64_t id = new_id();
    set_block(g, c, e, reason, id, now, until);
    /* A block resets the counters: after it lifts, counting starts afresh. */
    reset_rates(e);

    made->id = id;
    made->prefix = e->key;
    made->reason = reason;
    made->state = dur < 0 ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    made->started_at = now;
    made->expires_at = dur < 0 ? 0 : until;
    return true;
}

/* The rate `kind` reached its limit: block, unless the cluster decides. */
static bool impose(struct guard *g, const struct config *c, struct entry *e, int kind,
                   int64_t now, struct guard_block *made)
{
    if (atomic_load_explicit(&g->shared, memory_order_relaxed))
        return false;
    const struct rate *r = &e->rate[kind];
    return impose_as(g, c, e, rate_reason(kind), (int64_t)r->first,
                     rate_estimate(r, now, rate_window(c, kind)), now, made);
}

void guard_set_local_decisions(struct guard *g, bool local)
{
    atomic_store(&g->shared, !local);
}

bool guard_impose(struct guard *g, const struct config *c, const struct addr *key,
                  enum guard_reason why, int64_t first_event, uint32_t events, int64_t now,
                  struct guard_block *made)
{
    uint64_t h;
    struct shard *s = table_shard(&g->t, key, &h);
    bool done = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, key, c, 0, now, true);
    if (e != NULL && !entry_blocked(e, now))
        done = impose_as(g, c, e, why, first_event, events, now, made);
    pthread_mutex_unlock(&s->mu);
    return done;
}

bool guard_escalate(struct guard *g, const struct config *c, const struct addr *narrow,
                    int64_t now, struct guard_block *made)
{
    struct addr wide;
    if (!esc_wide(c, narrow, &wide))
        return false;
    uint32_t n = guard_escalation_count(g, &wide);
    if (n < (uint64_t)c->escalate_count)
        return false;
    uint64_t h;
    struct shard *s = table_shard(&g->t, &wide, &h);
    bool done = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, &wide, c, 0, now, true);
    if (e != NULL && !entry_blocked(e, now))
        done = impose_as(g, c, e, GUARD_ESCALATED, now, n, now, made);
    pthread_mutex_unlock(&s->mu);
    return done;
}

bool guard_blocked(struct guard *g, const struct addr *client, int64_t now)
{
    return gindex_lookup(g->ix, client, now, false, NULL, NULL);
}

uint64_t guard_epoch(const struct guard *g)
{
    return atomic_load_explicit(&((struct guard *)g)->epoch, memory_order_acquire);
}

enum guard_verdict guard_connect(struct guard *g, const struct config *c,
                                 const struct addr *client, int64_t now,
                                 struct guard_block *made, bool *did_block)
{
    *did_block = false;
    if (cidr_list_match(&c->allow, client))
        return GUARD_ACCEPT_ALLOWED;
    if (guard_blocked(g, client, now))
        return GUARD_REJECT_BLOCKED;

    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = table_shard(&g->t, &k, &h);
    enum guard_verdict v = GUARD_ACCEPT;
    pthread_mutex_lock(&s->mu);
    /* NULL: out of memory, or the table is full of more useful entries:
     * serve, uncounted (guard_disconnect then finds nothing to release). */
    struct entry *e = table_get(&g->t, s, h, &k, c, WORTH_CONN, now, false);
    if (e != NULL) {
        e->seen = (uint32_t)(now / 1000);
        if (rate_add(&e->rate[RATE_CONN], now, c->conn_rate_window_ms) >=
                (uint32_t)rate_limit(c, RATE_CONN) &&
            impose(g, c, e, RATE_CONN, now, made)) {
            *did_block = true;
            v = GUARD_REJECT_BLOCKED;
        } else if (e->concurrent >= (uint32_t)c->concurrency_limit) {
            v = GUARD_REJECT_CONCURRENCY;
        } else {
            e->concurrent++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return v;
}

void guard_disconnect(struct guard *g, const struct config *c, const struct addr *client)
{
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = table_shard(&g->t, &k, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, h, &k);
    if (e != NULL && e->concurrent > 0)
        e->concurrent--;
    pthread_mutex_unlock(&s->mu);
}

bool guard_offend(struct guard *g, const struct config *c, const struct addr *client,
                  enum guard_reason what, int64_t now, struct guard_block *made)
{
    if (cidr_list_match(&c->allow, client))
        return false;
    int kind = rate_kind(what);
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = table_shard(&g->t, &k, &h);
    bool blocked = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, &k, c, WORTH_OFFENSE, now, false);
    if (e != NULL && !entry_blocked(e, now)) {
        e->seen = (uint32_t)(now / 1000);
        if (rate_add(&e->rate[kind], now, rate_window(c, kind)) >= (uint32_t)rate_limit(c, kind))
            blocked = impose(g, c, e, kind, now, made);
    }
    pthread_mutex_unlock(&s->mu);
    return blocked;
}

void guard_block_manual(struct guard *g, const struct addr *prefix, int64_t duration_ms,
                        int64_t now, struct guard_block *made,
                        struct guard_block *replaced, bool *had_old)
{
    uint64_t h;
    struct shard *s = table_shard(&g->t, prefix, &h);
    memset(made, 0, sizeof *made);
    *had_old = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, prefix, NULL, 0, now, true);
    if (e == NULL || blockrec_of(e) == NULL) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (entry_blocked(e, now)) {
        memset(replaced, 0, sizeof *replaced);
        replaced->id = e->b->block_id;
        replaced->prefix = e->key;
        replaced->lifted_at = now;
        replaced->state = BLOCK_LIFTED;
        *had_old = true;
    }
    int64_t until = duration_ms < 0 ? INT64_MAX : now + duration_ms;
    uint64_t id = new_id();
    set_block(g, NULL, e, GUARD_MANUAL, id, now, until);
    pthread_mutex_unlock(&s->mu);

    made->id = id;
    made->prefix = *prefix;
    made->reason = GUARD_MANUAL;
    made->state = duration_ms < 0 ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    made->started_at = now;
    made->expires_at = duration_ms < 0 ? 0 : until;
}

bool guard_unblock(struct guard *g, const struct addr *prefix, int64_t now, uint64_t *lifted_id)
{
    uint64_t h;
    struct shard *s = table_shard(&g->t, prefix, &h);
    bool done = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, h, prefix);
    if (e != NULL && entry_blocked(e, now)) {
        *lifted_id = e->b->block_id;
        clear_block(g, e);
        done = true;
    }
    pthread_mutex_unlock(&s->mu);
    return done;
}

void guard_install(struct guard *g, const struct config *c, const struct guard_block *b, int64_t now)
{
    bool in_memory = automatic(b->reason) && b->started_at > now - c->offense_memory_ms;
    bool active = (b->state == BLOCK_ACTIVE || b->state == BLOCK_PERMANENT) &&
                  (b->expires_at == 0 || b->expires_at > now);
    if (!in_memory && !active)
        return;
    uint64_t h;
    struct shard *s = table_shard(&g->t, &b->prefix, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, &b->prefix, c, 0, now, true);
    if (e != NULL && blockrec_of(e) != NULL) {
        if (in_memory)
            add_offense(e, b->started_at, true);
        if (active && e->b->block_id != b->id)
            set_block(g, automatic(b->reason) ? c : NULL, e, b->reason, b->id, b->started_at,
                      b->expires_at == 0 ? INT64_MAX : b->expires_at);
    }
    pthread_mutex_unlock(&s->mu);
}

void guard_remove(struct guard *g, const struct addr *prefix, uint64_t id)
{
    uint64_t h;
    struct shard *s = table_shard(&g->t, prefix, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, h, prefix);
    if (e != NULL && e->b != NULL && e->b->block_id == id)
        clear_block(g, e);
    pthread_mutex_unlock(&s->mu);
}

size_t guard_expire(struct guard *g, int64_t now, guard_expired_cb cb, void *ctx)
{
    size_t n = 0;
    struct expiry it;
    while (expheap_pop_due(&g->heap, now, &it)) {
        uint64_t h;
        struct shard *s = table_shard(&g->t, &it.key, &h);
        pthread_mutex_lock(&s->mu);
        struct entry *e = table_find(s, h, &it.key);
        /* A block replaced or lifted since leaves a stale heap item. */
        bool due = e != NULL && e->b != NULL && e->b->block_id == it.id &&
                   e->b->block_until == it.until;
        if (due)
            clear_block(g, e);
        pthread_mutex_unlock(&s->mu);
        if (due) {
            cb(ctx, it.id, &it.key, it.until);
            n++;
        }
    }
    return n;
}

static bool rates_idle(const struct entry *e, const struct config *c, int64_t now)
{
    for (int k = 0; k < NRATES; k++)
        if (rate_estimate(&e->rate[k], now, rate_window(c, k)) != 0)
            return false;
    return true;
}

struct sweep_ctx {
    struct guard *g;
    const struct config *c;
    int64_t now;
    size_t freed;
};

static bool sweep_one(struct entry *e, void *arg)
{
    struct sweep_ctx *sc = arg;
    if (e->b != NULL) {
        forget_old_offenses(e->b, sc->c, sc->now);
        /* A minute without a concurrency 554 line: the next logs at once. */
        if (e->b->conc_rejects == 0 && (uint32_t)(sc->now / 1000) - e->b->conc_logged >= 60)
            e->b->conc_logged = 0;
        blockrec_trim(e);
    }
    bool idle = e->b == NULL && e->concurrent == 0 && rates_idle(e, sc->c, sc->now);
    sc->freed += idle;
    return idle;
}

size_t guard_sweep(struct guard *g, const struct config *c, int64_t now)
{
    struct sweep_ctx sc = {g, c, now, 0};
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        /* One shard at a time: a lookup waits at most one shard's walk. */
        struct shard *s = &g->t.shards[i];
        pthread_mutex_lock(&s->mu);
        table_each(&g->t, s, sweep_one, &sc);
        pthread_mutex_unlock(&s->mu);
    }
    return sc.freed;
}

void guard_status(struct guard *g, const struct config *c, const struct addr *key,
                  int64_t now, struct guard_status *out)
{
    memset(out, 0, sizeof *out);
    out->state = BLOCK_EXPIRED;
    uint64_t h;
    struct shard *s;
    struct entry *e;
    /* The widest block in force: an escalated range shows as such from
     * any address inside it. */
    struct addr p;
    if (gindex_lookup(g->ix, key, now, true, &p, NULL)) {
        s = table_shard(&g->t, &p, &h);
        pthread_mutex_lock(&s->mu);
        e = table_find(s, h, &p);
        if (e != NULL && entry_blocked(e, now)) {
            out->blocked = true;
            out->block_prefix = e->key;
            out->block_id = e->b->block_id;
            out->block_reason = (enum guard_reason)e->b->reason;
            out->block_started = e->b->block_started;
            out->block_until = e->b->block_until;
            out->state = e->b->block_until == INT64_MAX ? BLOCK_PERMANENT : BLOCK_ACTIVE;
        }
        pthread_mutex_unlock(&s->mu);
    }

    s = table_shard(&g->t, key, &h);
    pthread_mutex_lock(&s->mu);
    e = table_find(s, h, key);
    if (e != NULL) {
        out->auth_failures = rate_estimate(&e->rate[RATE_AUTH], now, c->auth_fail_window_ms);
        out->unauth_attempts = rate_estimate(&e->rate[RATE_UNAUTH], now, c->unauth_window_ms);
        out->connections = rate_estimate(&e->rate[RATE_CONN], now, c->conn_rate_window_ms);
        out->concurrent = e->concurrent;
        if (e->b != NULL) {
            forget_old_offenses(e->b, c, now);
            out->offenses = e->b->noff;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

struct list_ctx {
    int64_t now;
    guard_list_cb cb;
    void *ctx;
    struct guard_stats *st;
};

static bool list_one(struct entry *e, void *arg)
{
    struct list_ctx *l = arg;
    if (l->st != NULL && e->b != NULL)
        l->st->block_bytes += BLOCKREC_SIZE(e->b->cap);
    if (entry_blocked(e, l->now)) {
        if (l->cb != NULL)
            l->cb(l->ctx, e->b->block_id, &e->key, e->b->block_until);
        if (l->st != NULL) {
            l->st->blocks++;
            l->st->permanent += e->b->block_until == INT64_MAX;
        }
    }
    return false;
}

void guard_list(struct guard *g, int64_t now, guard_list_cb cb, void *ctx)
{
    struct list_ctx l = {now, cb, ctx, NULL};
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        struct shard *s = &g->t.shards[i];
        pthread_mutex_lock(&s->mu);
        table_each(&g->t, s, list_one, &l);
        pthread_mutex_unlock(&s->mu);
    }
}

void guard_stats(struct guard *g, int64_t now, struct guard_stats *out)
{
    memset(out, 0, sizeof *out);
    out->entry_size = sizeof(struct entry);
    struct list_ctx l = {now, NULL, NULL, out};
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        struct shard *s = &g->t.shards[i];
        pthread_mutex_lock(&s->mu);
        out->entries += s->n;
        out->bytes += table_shard_bytes(s);
        table_each(&g->t, s, list_one, &l);
        pthread_mutex_unlock(&s->mu);
    }
    out->evictions = atomic_load(&g->t.evictions);
    out->untracked = atomic_load(&g->t.untracked);
    struct gindex_stats is;
    gindex_stats(g->ix, &is);
    out->index_prefixes = is.live;
    out->index_bytes = is.bytes;
    out->bytes += out->block_bytes + out->index_bytes;
    out->bytes += expheap_bytes(&g->heap);
}

uint64_t guard_evictions(const struct guard *g)
{
    return atomic_load(&((struct guard *)g)->t.evictions);
}
