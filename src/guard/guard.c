#include "guard/guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "base/rate.h"
#include "base/util.h"

/* Counting: one two-period rate counter (base/rate.h) per offense kind;
 * three cost 72 bytes per prefix. */
enum { RATE_AUTH, RATE_UNAUTH, RATE_CONN, NRATES };

struct entry {
    struct entry *next;
    struct addr key;
    uint8_t reason;              /* enum guard_reason of the block in force */
    uint8_t noff;                /* used slots of offenses[] */
    uint32_t concurrent;
    uint32_t rejects;            /* 554s not yet logged */
    uint32_t reject_logged;      /* second of the last reject log line */
    int64_t block_until;         /* 0: none; INT64_MAX: permanent */
    int64_t block_started;
    uint64_t block_id;
    struct rate rate[NRATES];
    int64_t offenses[CONFIG_MAX_PERMANENT_AFTER];  /* starts (ms) of automatic blocks, oldest first */
};

struct shard {
    pthread_mutex_t mu;
    struct entry **b;
    size_t nb, n;
};

struct heap_item {
    int64_t until;
    uint64_t id;
    struct addr key;
};

#define NSHARDS 256

struct guard {
    struct shard shards[NSHARDS];
    /* Prefix lengths that hold or held a block, per family: the block check
     * looks only at these. Set once, never cleared; a stale bit costs one
     * miss. */
    _Atomic uint64_t lens[2][3];
    _Atomic uint64_t epoch;
    atomic_bool shared;          /* another party decides (cluster mode) */
    pthread_mutex_t heap_mu;     /* never taken while waiting for a shard */
    struct heap_item *heap;
    size_t heap_n, heap_cap;
};

/* ---- rates ---------------------------------------------------------- */

static int64_t rate_window(const struct config *c, int k)
{
    return k == RATE_AUTH ? c->auth_fail_window_ms
         : k == RATE_UNAUTH ? c->unauth_window_ms : c->conn_rate_window_ms;
}

static long rate_limit(const struct config *c, int k)
{
    return k == RATE_AUTH ? c->auth_fail_limit
         : k == RATE_UNAUTH ? c->unauth_limit : c->conn_rate_limit;
}

static int rate_kind(enum guard_reason why)
{
    return why == GUARD_AUTH_FAILURES ? RATE_AUTH : why == GUARD_UNAUTH_ATTEMPTS ? RATE_UNAUTH : RATE_CONN;
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
                                           "conn_rate", "manual"};
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

/* ---- table ---------------------------------------------------------- */

struct guard *guard_new(void)
{
    struct guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&g->shards[i].mu, NULL);
        g->shards[i].nb = 16;
        g->shards[i].b = calloc(16, sizeof *g->shards[i].b);
        if (g->shards[i].b == NULL)
            abort();
    }
    pthread_mutex_init(&g->heap_mu, NULL);
    return g;
}

void guard_free(struct guard *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < NSHARDS; i++) {
        struct shard *s = &g->shards[i];
        for (size_t j = 0; j < s->nb; j++) {
            for (struct entry *e = s->b[j], *next; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        free(s->b);
        pthread_mutex_destroy(&s->mu);
    }
    free(g->heap);
    pthread_mutex_destroy(&g->heap_mu);
    free(g);
}

static struct shard *shard_of(struct guard *g, const struct addr *k, uint64_t *h)
{
    *h = addr_hash(k);
    return &g->shards[*h % NSHARDS];
}

/* The shard's lock is held by the caller in all that follows. */
static struct entry *find(struct shard *s, uint64_t h, const struct addr *k)
{
    for (struct entry *e = s->b[(h / NSHARDS) % s->nb]; e != NULL; e = e->next)
        if (addr_equal(&e->key, k))
            return e;
    return NULL;
}

static void grow(struct shard *s)
{
    size_t nb = s->nb * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;   /* longer chains, still correct */
    for (size_t i = 0; i < s->nb; i++) {
        for (struct entry *e = s->b[i], *next; e != NULL; e = next) {
            next = e->next;
            size_t j = (addr_hash(&e->key) / NSHARDS) % nb;
            e->next = b[j];
            b[j] = e;
        }
    }
    free(s->b);
    s->b = b;
    s->nb = nb;
}

static struct entry *find_or_add(struct shard *s, uint64_t h, const struct addr *k)
{
    struct entry *e = find(s, h, k);
    if (e != NULL)
        return e;
    if (s->n >= s->nb)
        grow(s);
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->key = *k;
    size_t j = (h / NSHARDS) % s->nb;
    e->next = s->b[j];
    s->b[j] = e;
    s->n++;
    return e;
}

static bool entry_blocked(const struct entry *e, int64_t now)
{
    return e->block_id != 0 && e->block_until > now;
}

static void mark_len(struct guard *g, const struct addr *k)
{
    atomic_fetch_or(&g->lens[k->family == AF_INET ? 0 : 1][k->bits / 64], 1ULL << (k->bits % 64));
}

/* ---- expiry heap ---------------------------------------------------- */

static void heap_push(struct guard *g, int64_t until, uint64_t id, const struct addr *k)
{
    pthread_mutex_lock(&g->heap_mu);
    if (g->heap_n == g->heap_cap) {
        size_t cap = g->heap_cap ? g->heap_cap * 2 : 64;
        struct heap_item *h = realloc(g->heap, cap * sizeof *h);
        if (h == NULL) {
            /* Without a heap slot the block still holds (the check looks
             * at block_until) but nobody records its expiry. */
            pthread_mutex_unlock(&g->heap_mu);
            return;
        }
        g->heap = h;
        g->heap_cap = cap;
    }
    size_t i = g->heap_n++;
    while (i > 0 && g->heap[(i - 1) / 2].until > until) {
        g->heap[i] = g->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->heap[i] = (struct heap_item){until, id, *k};
    pthread_mutex_unlock(&g->heap_mu);
}

static bool heap_pop_due(struct guard *g, int64_t now, struct heap_item *out)
{
    pthread_mutex_lock(&g->heap_mu);
    if (g->heap_n == 0 || g->heap[0].until > now) {
        pthread_mutex_unlock(&g->heap_mu);
        return false;
    }
    *out = g->heap[0];
    struct heap_item last = g->heap[--g->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g->heap_n)
            break;
        if (c + 1 < g->heap_n && g->heap[c + 1].until < g->heap[c].until)
            c++;
        if (g->heap[c].until >= last.until)
            break;
        g->heap[i] = g->heap[c];
        i = c;
    }
    if (g->heap_n > 0)
        g->heap[i] = last;
    pthread_mutex_unlock(&g->heap_mu);
    return true;
}

/* ---- blocks --------------------------------------------------------- */

static void forget_old_offenses(struct entry *e, const struct config *c, int64_t now)
{
    int64_t horizon = now - c->offense_memory_ms;
    uint8_t keep = 0;
    for (uint8_t i = 0; i < e->noff; i++)
        if ((int64_t)e->offenses[i] > horizon)
            e->offenses[keep++] = e->offenses[i];
    e->noff = keep;
}

/* `learned`: a block told by the store, which may be one this entry has
 * counted already (its own, echoed by the cluster, or loaded again after
 * an outage). Two blocks of one prefix cannot start in the same
 * millisecond (the first holds while the second would be counted), so the
 * start time identifies the block. */
static void add_offense(struct entry *e, int64_t at, bool learned)
{
    int64_t s = at;
    for (uint8_t i = 0; learned && i < e->noff; i++)
        if (e->offenses[i] == s)
            return;
    if (e->noff == CONFIG_MAX_PERMANENT_AFTER) {
        memmove(e->offenses, e->offenses + 1, sizeof e->offenses - sizeof e->offenses[0]);
        e->noff--;
    }
    /* Keep the list sorted: installs from the store may come in any order. */
    uint8_t i = e->noff;
    while (i > 0 && e->offenses[i - 1] > s) {
        e->offenses[i] = e->offenses[i - 1];
        i--;
    }
    e->offenses[i] = s;
    e->noff++;
}

static void reset_rates(struct entry *e)
{
    memset(e->rate, 0, sizeof e->rate);
}

static void set_block(struct guard *g, struct entry *e, enum guard_reason why,
                      uint64_t id, int64_t started, int64_t until)
{
    e->block_id = id;
    e->reason = (uint8_t)why;
    e->block_started = started;
    e->block_until = until;
    mark_len(g, &e->key);
    if (until != INT64_MAX)
        heap_push(g, until, id, &e->key);
    atomic_fetch_add(&g->epoch, 1);
}

static uint64_t new_id(void)
{
    uint64_t id;
    do
        util_random(&id, sizeof id);
    while (id == 0);
    return id;
}

static const enum guard_reason rate_reason[NRATES] = {GUARD_AUTH_FAILURES, GUARD_UNAUTH_ATTEMPTS,
                                                     GUARD_CONN_RATE};

static void impose_as(struct guard *g, const struct config *c, struct entry *e,
                      enum guard_reason reason, int64_t first, uint32_t events, int64_t now,
                      struct guard_block *made)
{
    memset(made, 0, sizeof *made);
    made->first_event_at = first;
    made->last_event_at = now;
    made->events = events;

    forget_old_offenses(e, c, now);
    int64_t dur = config_ban_ms(c, e->noff + 1);
    add_offense(e, now, false);
    int64_t until = dur < 0 ? INT64_MAX : now + dur;
    uint64_t id = new_id();
    set_block(g, e, reason, id, now, until);
    /* A block resets the counters: after it lifts, counting starts afresh. */
    reset_rates(e);

    made->id = id;
    made->prefix = e->key;
    made->reason = reason;
    made->state = dur < 0 ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    made->started_at = now;
    made->expires_at = dur < 0 ? 0 : until;
}

/* The rate `kind` reached its limit: block, unless the cluster decides. */
static bool impose(struct guard *g, const struct config *c, struct entry *e, int kind,
                   int64_t now, struct guard_block *made)
{
    if (atomic_load_explicit(&g->shared, memory_order_relaxed))
        return false;
    const struct rate *r = &e->rate[kind];
    impose_as(g, c, e, rate_reason[kind], r->first,
              rate_estimate(r, now, rate_window(c, kind)), now, made);
    return true;
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
    struct shard *s = shard_of(g, key, &h);
    bool done = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find_or_add(s, h, key);
    if (e != NULL && !entry_blocked(e, now)) {
        impose_as(g, c, e, why, first_event, events, now, made);
        done = true;
    }
    pthread_mutex_unlock(&s->mu);
    return done;
}

/* Looks for a block in force over `client` at every prefix length in use;
 * with `hit` it also runs `hit(e, ctx)` under the entry's lock. */
static bool lookup_block(struct guard *g, const struct addr *client, int64_t now,
                         void (*hit)(struct entry *, void *), void *ctx)
{
    int fam = client->family == AF_INET ? 0 : 1;
    int maxbits = client->bits;
    for (int w = maxbits / 64; w >= 0; w--) {
        uint64_t m = atomic_load_explicit(&g->lens[fam][w], memory_order_acquire);
        while (m != 0) {
            int top = 63 - __builtin_clzll(m);
            m &= ~(1ULL << top);
            int bits = w * 64 + top;
            if (bits > maxbits)
                continue;
            struct addr k = *client;
            addr_cut(&k, bits);
            uint64_t h;
            struct shard *s = shard_of(g, &k, &h);
            pthread_mutex_lock(&s->mu);
            struct entry *e = find(s, h, &k);
            bool blocked = e != NULL && entry_blocked(e, now);
            if (blocked && hit != NULL)
                hit(e, ctx);
            pthread_mutex_unlock(&s->mu);
            if (blocked)
                return true;
        }
    }
    return false;
}

bool guard_blocked(struct guard *g, const struct addr *client, int64_t now)
{
    return lookup_block(g, client, now, NULL, NULL);
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
    struct shard *s = shard_of(g, &k, &h);
    enum guard_verdict v = GUARD_ACCEPT;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find_or_add(s, h, &k);
    if (e == NULL) {
        v = GUARD_ACCEPT_ALLOWED;   /* out of memory: serve, uncounted */
    } else if (rate_add(&e->rate[RATE_CONN], now, c->conn_rate_window_ms) >=
                   (uint32_t)c->conn_rate_limit &&
               impose(g, c, e, RATE_CONN, now, made)) {
        *did_block = true;
        v = GUARD_REJECT_BLOCKED;
    } else if (e->concurrent >= (uint32_t)c->concurrency_limit) {
        v = GUARD_REJECT_CONCURRENCY;
    } else {
        e->concurrent++;
    }
    pthread_mutex_unlock(&s->mu);
    return v;
}

void guard_disconnect(struct guard *g, const struct config *c, const struct addr *client)
{
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = shard_of(g, &k, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, h, &k);
    if (e != NULL && e->concurrent > 0)
        e->concurrent--;
    pthread_mutex_unlock(&s->mu);
}

bool guard_offend(struct guard *g, const struct config *c, const struct addr *client,
                  enum guard_offense what, int64_t now, struct guard_block *made)
{
    if (cidr_list_match(&c->allow, client))
        return false;
    int kind = what == GUARD_OFFENSE_AUTH ? RATE_AUTH : RATE_UNAUTH;
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = shard_of(g, &k, &h);
    bool blocked = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find_or_add(s, h, &k);
    if (e != NULL && !entry_blocked(e, now) &&
        rate_add(&e->rate[kind], now, rate_window(c, kind)) >= (uint32_t)rate_limit(c, kind))
        blocked = impose(g, c, e, kind, now, made);
    pthread_mutex_unlock(&s->mu);
    return blocked;
}

struct reject_ctx {
    int64_t now;
    uint32_t count;
    struct addr prefix;
};

static void note_reject(struct entry *e, void *arg)
{
    struct reject_ctx *r = arg;
    uint32_t sec = (uint32_t)(r->now / 1000);
    e->rejects++;
    if (e->reject_logged == 0 || sec - e->reject_logged >= 60) {
        r->count = e->rejects;
        r->prefix = e->key;
        e->rejects = 0;
        e->reject_logged = sec;
    }
}

uint32_t guard_reject_note(struct guard *g, const struct addr *client, int64_t now,
                           struct addr *prefix)
{
    uint32_t n = 0;
    guard_check_reject(g, client, now, &n, prefix);
    return n;
}

bool guard_check_reject(struct guard *g, const struct addr *client, int64_t now,
                        uint32_t *log_count, struct addr *prefix)
{
    struct reject_ctx r = {.now = now, .count = 0};
    bool blocked = lookup_block(g, client, now, note_reject, &r);
    *log_count = r.count;
    if (r.count > 0)
        *prefix = r.prefix;
    return blocked;
}

void guard_block_manual(struct guard *g, const struct addr *prefix, int64_t duration_ms,
                        int64_t now, struct guard_block *made,
                        struct guard_block *replaced, bool *had_old)
{
    uint64_t h;
    struct shard *s = shard_of(g, prefix, &h);
    memset(made, 0, sizeof *made);
    *had_old = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find_or_add(s, h, prefix);
    if (e == NULL) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (entry_blocked(e, now)) {
        memset(replaced, 0, sizeof *replaced);
        replaced->id = e->block_id;
        replaced->prefix = e->key;
        replaced->lifted_at = now;
        replaced->state = BLOCK_LIFTED;
        *had_old = true;
    }
    int64_t until = duration_ms < 0 ? INT64_MAX : now + duration_ms;
    uint64_t id = new_id();
    set_block(g, e, GUARD_MANUAL, id, now, until);
    pthread_mutex_unlock(&s->mu);

    made->id = id;
    made->prefix = *prefix;
    made->reason = GUARD_MANUAL;
    made->state = duration_ms < 0 ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    made->started_at = now;
    made->expires_at = duration_ms < 0 ? 0 : until;
}

/* The counters were reset when the block began and nothing is counted
 * while it holds, so what they hold now came after it: keep it. */
static void clear_block(struct entry *e)
{
    e->block_id = 0;
    e->block_until = 0;
    e->block_started = 0;
    e->reason = GUARD_NONE;
}

bool guard_unblock(struct guard *g, const struct addr *prefix, int64_t now, uint64_t *lifted_id)
{
    uint64_t h;
    struct shard *s = shard_of(g, prefix, &h);
    bool done = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, h, prefix);
    if (e != NULL && entry_blocked(e, now)) {
        *lifted_id = e->block_id;
        clear_block(e);
        done = true;
    }
    pthread_mutex_unlock(&s->mu);
    return done;
}

void guard_install(struct guard *g, const struct config *c, const struct guard_block *b, int64_t now)
{
    bool automatic = b->reason != GUARD_MANUAL && b->reason != GUARD_NONE;
    bool in_memory = automatic && b->started_at > now - c->offense_memory_ms;
    bool active = (b->state == BLOCK_ACTIVE || b->state == BLOCK_PERMANENT) &&
                  (b->expires_at == 0 || b->expires_at > now);
    if (!in_memory && !active)
        return;
    uint64_t h;
    struct shard *s = shard_of(g, &b->prefix, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = find_or_add(s, h, &b->prefix);
    if (e != NULL) {
        if (in_memory)
            add_offense(e, b->started_at, true);
        if (active && e->block_id != b->id)
            set_block(g, e, b->reason, b->id, b->started_at,
                      b->expires_at == 0 ? INT64_MAX : b->expires_at);
    }
    pthread_mutex_unlock(&s->mu);
}

void guard_remove(struct guard *g, const struct addr *prefix, uint64_t id)
{
    uint64_t h;
    struct shard *s = shard_of(g, prefix, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, h, prefix);
    if (e != NULL && e->block_id == id)
        clear_block(e);
    pthread_mutex_unlock(&s->mu);
}

size_t guard_expire(struct guard *g, int64_t now, guard_expired_cb cb, void *ctx)
{
    size_t n = 0;
    struct heap_item it;
    while (heap_pop_due(g, now, &it)) {
        uint64_t h;
        struct shard *s = shard_of(g, &it.key, &h);
        pthread_mutex_lock(&s->mu);
        struct entry *e = find(s, h, &it.key);
        /* A block replaced or lifted since leaves a stale heap item. */
        bool due = e != NULL && e->block_id == it.id && e->block_until == it.until;
        if (due)
            clear_block(e);
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

size_t guard_sweep(struct guard *g, const struct config *c, int64_t now)
{
    size_t freed = 0;
    for (size_t i = 0; i < NSHARDS; i++) {
        /* One shard at a time: a lookup waits at most one shard's walk. */
        struct shard *s = &g->shards[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->nb; j++) {
            struct entry **pp = &s->b[j];
            while (*pp != NULL) {
                struct entry *e = *pp;
                forget_old_offenses(e, c, now);
                if (e->block_id == 0 && e->concurrent == 0 && e->noff == 0 && e->rejects == 0 &&
                    rates_idle(e, c, now)) {
                    *pp = e->next;
                    free(e);
                    s->n--;
                    freed++;
                } else {
                    pp = &e->next;
                }
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    return freed;
}

struct status_ctx {
    struct guard_status *out;
};

static void status_hit(struct entry *e, void *arg)
{
    struct status_ctx *sc = arg;
    sc->out->blocked = true;
    sc->out->block_prefix = e->key;
    sc->out->block_id = e->block_id;
    sc->out->block_reason = (enum guard_reason)e->reason;
    sc->out->block_started = e->block_started;
    sc->out->block_until = e->block_until;
    sc->out->state = e->block_until == INT64_MAX ? BLOCK_PERMANENT : BLOCK_ACTIVE;
}

void guard_status(struct guard *g, const struct config *c, const struct addr *key,
                  int64_t now, struct guard_status *out)
{
    memset(out, 0, sizeof *out);
    out->state = BLOCK_EXPIRED;
    struct status_ctx sc = {out};
    lookup_block(g, key, now, status_hit, &sc);

    uint64_t h;
    struct shard *s = shard_of(g, key, &h);
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, h, key);
    if (e != NULL) {
        out->auth_failures = rate_estimate(&e->rate[RATE_AUTH], now, c->auth_fail_window_ms);
        out->unauth_attempts = rate_estimate(&e->rate[RATE_UNAUTH], now, c->unauth_window_ms);
        out->connections = rate_estimate(&e->rate[RATE_CONN], now, c->conn_rate_window_ms);
        out->concurrent = e->concurrent;
        forget_old_offenses(e, c, now);
        out->offenses = e->noff;
    }
    pthread_mutex_unlock(&s->mu);
}

void guard_list(struct guard *g, int64_t now, guard_list_cb cb, void *ctx)
{
    for (size_t i = 0; i < NSHARDS; i++) {
        struct shard *s = &g->shards[i];
        pthread_mutex_lock(&s->mu);
        for (size_t j = 0; j < s->nb; j++)
            for (struct entry *e = s->b[j]; e != NULL; e = e->next)
                if (entry_blocked(e, now))
                    cb(ctx, e->block_id, &e->key, e->block_until);
        pthread_mutex_unlock(&s->mu);
    }
}

void guard_stats(struct guard *g, int64_t now, struct guard_stats *out)
{
    memset(out, 0, sizeof *out);
    out->entry_size = sizeof(struct entry);
    for (size_t i = 0; i < NSHARDS; i++) {
        struct shard *s = &g->shards[i];
        pthread_mutex_lock(&s->mu);
        out->entries += s->n;
        out->bytes += s->nb * sizeof *s->b;
        for (size_t j = 0; j < s->nb; j++)
            for (struct entry *e = s->b[j]; e != NULL; e = e->next)
                if (entry_blocked(e, now)) {
                    out->blocks++;
                    out->permanent += e->block_until == INT64_MAX;
                }
        pthread_mutex_unlock(&s->mu);
    }
    out->bytes += out->entries * sizeof(struct entry);
    pthread_mutex_lock(&g->heap_mu);
    out->bytes += g->heap_cap * sizeof(struct heap_item);
    pthread_mutex_unlock(&g->heap_mu);
}
