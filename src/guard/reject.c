/* The guard's side of the 554 log lines (issue 11): every 554 ends up in
 * exactly one "reject" line, a prefix gets at most one line a minute for
 * each reason, and blocked clients on an implicit-TLS listener get only a
 * few handshakes a minute per blocked prefix.
 *
 * Where the counts live: the 554s of a block in force in the accept-time
 * index, beside the block (the fast path touches no counting entry); when
 * the block ends, the index hands them to the prefix's block record, where
 * guard_reject_take() or guard_reject_flush() finds them. 554s for being
 * over concurrency_limit, and the TLS handshakes, are counted in the block
 * record too, which such a prefix gets for the purpose: the counting entry
 * itself stays 88 bytes. */
#include "guard/guard.h"

#include <pthread.h>
#include <string.h>
#include "guard/index.h"
#include "guard/table.h"

bool guard_check_reject(struct guard *g, const struct addr *client, int64_t now,
                        uint32_t *log_count, struct addr *prefix)
{
    /* The index counts the 554s itself: this path touches no entry. */
    return gindex_reject(g->ix, client, now, log_count, prefix);
}

uint32_t guard_reject_note(struct guard *g, const struct addr *client, int64_t now,
                           struct addr *prefix)
{
    uint32_t n = 0;
    guard_check_reject(g, client, now, &n, prefix);
    return n;
}

/* One more 554 on a pending count. The first after a quiet minute is
 * returned at once (so a new flood shows in the log straight away); the
 * rest wait for guard_reject_flush() or the next quiet minute. Returns the
 * count to log now, or 0. */
static uint32_t note(uint32_t *pending, uint32_t *logged, int64_t now)
{
    uint32_t sec = (uint32_t)(now / 1000);
    if (*pending < UINT32_MAX)
        (*pending)++;
    if (*logged != 0 && sec - *logged < 60)
        return 0;
    uint32_t n = *pending;
    *pending = 0;
    *logged = sec;
    return n;
}

uint32_t guard_concurrency_note(struct guard *g, const struct config *c, const struct addr *client,
                                int64_t now, struct addr *prefix)
{
    struct addr k = addr_prefix_of(client, c->ipv4_prefix, c->ipv6_prefix);
    uint64_t h;
    struct shard *s = table_shard(&g->t, &k, &h);
    uint32_t n = 1;              /* nowhere to keep it (out of memory): logged at once */
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_get(&g->t, s, h, &k, c, 1, now, false);
    if (e != NULL && blockrec_of(e) != NULL)
        n = note(&e->b->conc_rejects, &e->b->conc_logged, now);
    pthread_mutex_unlock(&s->mu);
    *prefix = k;
    return n;
}

bool guard_tls_reject_grant(struct guard *g, const struct addr *client, int64_t now,
                            uint32_t per_minute)
{
    struct addr p;
    if (!gindex_lookup(g->ix, client, now, false, &p, NULL))
        return false;
    uint64_t h;
    struct shard *s = table_shard(&g->t, &p, &h);
    bool granted = false;
    pthread_mutex_lock(&s->mu);
    struct entry *e = table_find(s, h, &p);
    if (e != NULL && e->b != NULL && e->b->block_id != 0) {
        struct blockrec *b = e->b;
        uint32_t minute = (uint32_t)(now / 60000);
        if (b->tls_minute != minute) {
            b->tls_minute = minute;
            b->tls_grants = 0;
        }
        granted = b->tls_grants < per_minute;
        b->tls_grants += granted;
    }
    pthread_mutex_unlock(&s->mu);
    return granted;
}

uint32_t guard_reject_take(struct guard *g, const struct addr *prefix, int64_t now)
{
    uint64_t h;
    struct shard *s = table_shard(&g->t, prefix, &h);
    pthread_mutex_lock(&s->mu);
    /* Still in the index if the block holds yet (then also counted there). */
    uint32_t n = gindex_take(g->ix, prefix, now);
    struct entry *e = table_find(s, h, prefix);
    if (e != NULL && e->b != NULL) {
        n += e->b->rejects;
        e->b->rejects = 0;
        blockrec_trim(e);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

struct flush_ctx {
    guard_reject_cb cb;
    void *ctx;
    uint32_t sec;
    bool all;
    size_t lines;
};

static void flush_blocked(void *arg, const struct addr *prefix, uint32_t count)
{
    struct flush_ctx *f = arg;
    f->cb(f->ctx, prefix, GUARD_REJECT_BLOCKED, count);
    f->lines++;
}

static bool flush_entry(struct entry *e, void *arg)
{
    struct flush_ctx *f = arg;
    struct blockrec *b = e->b;
    if (b == NULL)
        return false;
    /* Left by a block that ended without a take (lifted by the cluster). */
    if (b->rejects > 0) {
        f->cb(f->ctx, &e->key, GUARD_REJECT_BLOCKED, b->rejects);
        b->rejects = 0;
        f->lines++;
    }
    if (b->conc_rejects > 0 && (f->all || f->sec - b->conc_logged >= 60)) {
        f->cb(f->ctx, &e->key, GUARD_REJECT_CONCURRENCY, b->conc_rejects);
        b->conc_rejects = 0;
        b->conc_logged = f->sec;
        f->lines++;
    }
    blockrec_trim(e);
    return false;
}

size_t guard_reject_flush(struct guard *g, int64_t now, bool all, guard_reject_cb cb, void *ctx)
{
    struct flush_ctx f = {cb, ctx, (uint32_t)(now / 1000), all, 0};
    gindex_flush(g->ix, now, all, flush_blocked, &f);
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        struct shard *s = &g->t.shards[i];
        pthread_mutex_lock(&s->mu);
        table_each(&g->t, s, flush_entry, &f);
        pthread_mutex_unlock(&s->mu);
    }
    return f.lines;
}
