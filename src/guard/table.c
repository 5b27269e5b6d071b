#include "guard/table.h"

#include <stdlib.h>
#include <string.h>
#include "base/util.h"

/*
 * Memory: an entry is 88 bytes in a slab chunk (no allocator header), its
 * bucket 2 to 4 bytes (chains average one to two entries), so a tracked
 * prefix costs about 92 bytes. Slab slots are reused, never returned:
 * memory stays at the high-water mark, which max_tracked bounds.
 *
 * Eviction when max_tracked entries exist: a sampled comparison, not a
 * sort. Up to SAMPLE entries of the shard the newcomer falls in (then of a
 * few other non-empty shards, if their locks are free) are weighed by
 * guard_entry_worth(): recent events, failures weighing more than
 * connections; a block or an open connection is never evicted, and a
 * prefix with blocks on its ladder only after every plain one. The least
 * worth goes, the oldest among equals, but only if it is worth no more
 * than the newcomer: a flood of fresh addresses (one event each) keeps
 * replacing itself, oldest first, and cannot push out a prefix with a
 * few failures that is nearing its limit; when nothing is cheap enough,
 * the newcomer is not tracked.
 */

#define CHUNK_SHIFT 6
#define TABLE_CHUNK (1u << CHUNK_SHIFT)
#define SAMPLE 8
#define SAMPLE_BUCKETS 64
#define OTHER_SHARDS 4           /* non-empty ones */

static struct entry *at(const struct shard *s, uint32_t hd)
{
    return &s->chunks[(hd - 1) >> CHUNK_SHIFT][(hd - 1) & (TABLE_CHUNK - 1)];
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dULL;
    x ^= x >> 33;
    return x;
}

static uint64_t next_rnd(struct shard *s)
{
    s->rnd ^= s->rnd << 13;
    s->rnd ^= s->rnd >> 7;
    s->rnd ^= s->rnd << 17;
    return s->rnd;
}

bool table_init(struct table *t)
{
    memset(t, 0, sizeof *t);
    t->shards = calloc(TABLE_SHARDS, sizeof *t->shards);
    if (t->shards == NULL)
        return false;
    util_random(&t->seed, sizeof t->seed);
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->nb = 16;
        s->b = calloc(s->nb, sizeof *s->b);
        if (s->b == NULL)
            return false;
        util_random(&s->rnd, sizeof s->rnd);
        s->rnd |= 1;
    }
    return true;
}

void table_fini(struct table *t)
{
    if (t->shards == NULL)
        return;
    for (size_t i = 0; i < TABLE_SHARDS; i++) {
        struct shard *s = &t->shards[i];
        for (size_t c = 0; c < s->nchunks; c++) {
            for (size_t j = 0; j < TABLE_CHUNK; j++)
                free(s->chunks[c][j].b);
            free(s->chunks[c]);
        }
        free(s->chunks);
        free(s->b);
        pthread_mutex_destroy(&s->mu);
    }
    free(t->shards);
    t->shards = NULL;
}

/* Keyed: clients choose their addresses, and must not choose collisions. */
static uint64_t hash_of(const struct table *t, const struct addr *k)
{
    return mix(addr_hash(k) ^ t->seed);
}

struct shard *table_shard(struct table *t, const struct addr *k, uint64_t *h)
{
    *h = hash_of(t, k);
    return &t->shards[*h % TABLE_SHARDS];
}

static size_t bucket(const struct shard *s, uint64_t h)
{
    return (size_t)((h / TABLE_SHARDS) % s->nb);
}

struct entry *table_find(struct shard *s, uint64_t h, const struct addr *k)
{
    for (uint32_t hd = s->b[bucket(s, h)]; hd != 0;) {
        struct entry *e = at(s, hd);
        if (addr_equal(&e->key, k))
            return e;
        hd = e->next;
    }
    return NULL;
}

static void grow(struct table *t, struct shard *s)
{
    size_t nb = s->nb * 2;
    uint32_t *b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;   /* longer chains, still correct */
    for (size_t i = 0; i < s->nb; i++) {
        for (uint32_t hd = s->b[i]; hd != 0;) {
            struct entry *e = at(s, hd);
            uint32_t next = e->next;
            size_t j = (size_t)((hash_of(t, &e->key) / TABLE_SHARDS) % nb);
            e->next = b[j];
            b[j] = hd;
            hd = next;
        }
    }
    free(s->b);
    s->b = b;
    s->nb = nb;
}

static uint32_t slot_alloc(struct shard *s)
{
    if (s->free_head == 0) {
        if (s->nchunks >= (UINT32_MAX >> CHUNK_SHIFT) - 1)
            return 0;
        struct entry **cs = realloc(s->chunks, (s->nchunks + 1) * sizeof *cs);
        if (cs == NULL)
            return 0;
        s->chunks = cs;
        struct entry *c = calloc(TABLE_CHUNK, sizeof *c);
        if (c == NULL)
            return 0;
        s->chunks[s->nchunks] = c;
        uint32_t base = (uint32_t)(s->nchunks << CHUNK_SHIFT) + 1;
        s->nchunks++;
        for (uint32_t j = TABLE_CHUNK; j-- > 0;) {
            c[j].next = s->free_head;
            s->free_head = base + j;
        }
    }
    uint32_t hd = s->free_head;
    s->free_head = at(s, hd)->next;
    return hd;
}

/* Takes the entry *pp names out of its bucket and frees it. */
static void unlink_free(struct table *t, struct shard *s, uint32_t *pp)
{
    uint32_t hd = *pp;
    struct entry *e = at(s, hd);
    *pp = e->next;
    free(e->b);
    memset(e, 0, sizeof *e);
    e->next = s->free_head;
    s->free_head = hd;
    s->n--;
    atomic_fetch_sub_explicit(&t->tracked, 1, memory_order_relaxed);
}

/* Evicts the least useful of a sample of this shard if it is worth no
 * more than `worth`. */
static bool evict_in(struct table *t, struct shard *s, const struct config *c, uint32_t worth,
                     int64_t now)
{
    if (s->n == 0)
        return false;
    size_t start = (size_t)(next_rnd(s) % s->nb);
    uint32_t *best = NULL;
    uint32_t best_worth = 0, best_seen = 0;
    unsigned looked = 0;
    for (size_t i = 0; i < s->nb && i < SAMPLE_BUCKETS && looked < SAMPLE; i++) {
        uint32_t *pp = &s->b[(start + i) % s->nb];
        for (; *pp != 0 && looked < SAMPLE; pp = &at(s, *pp)->next) {
            const struct entry *e = at(s, *pp);
            looked++;
            uint32_t w = guard_entry_worth(e, c, now);
            if (w > worth)
                continue;
            if (best == NULL || w < best_worth || (w == best_worth && e->seen < best_seen)) {
                best = pp;
                best_worth = w;
                best_seen = e->seen;
            }
        }
    }
    if (best == NULL)
        return false;
    unlink_free(t, s, best);
    atomic_fetch_add_explicit(&t->evictions, 1, memory_order_relaxed);
    return true;
}

static bool make_room(struct table *t, struct shard *s, const struct config *c, uint32_t worth,
                      int64_t now)
{
    if (evict_in(t, s, c, worth, now))
        return true;
    /* This shard has nothing cheap: look at a few others, without waiting
     * for their locks (two shards' locks are never waited for at once). */
    size_t start = (size_t)(next_rnd(s) % TABLE_SHARDS);
    int sampled = 0;
    for (size_t i = 0; i < TABLE_SHARDS && sampled < OTHER_SHARDS; i++) {
        struct shard *o = &t->shards[(start + i) % TABLE_SHARDS];
        if (o == s || pthread_mutex_trylock(&o->mu) != 0)
            continue;
        bool done = false;
        if (o->n > 0) {     /* a small table leaves most shards empty: skip those */
            sampled++;
            done = evict_in(t, o, c, worth, now);
        }
        pthread_mutex_unlock(&o->mu);
        if (done)
            return true;
    }
    return false;
}

struct entry *table_get(struct table *t, struct shard *s, uint64_t h, const struct addr *k,
                        const struct config *c, uint32_t worth, int64_t now, bool force)
{
    struct entry *e = table_find(s, h, k);
    if (e != NULL)
        return e;
    /* Reserve the place first: two threads adding in two shards at once
     * must not both take the last one. */
    size_t before = atomic_fetch_add(&t->tracked, 1);
    if (!force && c != NULL && c->max_tracked > 0 && before >= (size_t)c->max_tracked &&
        !make_room(t, s, c, worth, now)) {
        atomic_fetch_sub(&t->tracked, 1);
        atomic_fetch_add_explicit(&t->untracked, 1, memory_order_relaxed);
        return NULL;
    }
    if (s->n >= 2 * s->nb)
        grow(t, s);
    uint32_t hd = slot_alloc(s);
    if (hd == 0) {
        atomic_fetch_sub(&t->tracked, 1);
        return NULL;
    }
    e = at(s, hd);
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->seen = (uint32_t)(now / 1000);
    size_t j = bucket(s, h);
    e->next = s->b[j];
    s->b[j] = hd;
    s->n++;
    return e;
}

void table_remove(struct table *t, struct shard *s, uint64_t h, struct entry *e)
{
    for (uint32_t *pp = &s->b[bucket(s, h)]; *pp != 0; pp = &at(s, *pp)->next)
        if (at(s, *pp) == e) {
            unlink_free(t, s, pp);
            return;
        }
}

void table_each(struct table *t, struct shard *s, bool (*fn)(struct entry *, void *), void *ctx)
{
    for (size_t j = 0; j < s->nb; j++) {
        uint32_t *pp = &s->b[j];
        while (*pp != 0) {
            if (fn(at(s, *pp), ctx))
                unlink_free(t, s, pp);
            else
                pp = &at(s, *pp)->next;
        }
    }
}

size_t table_shard_bytes(const struct shard *s)
{
    return s->nb * sizeof *s->b + s->nchunks * (TABLE_CHUNK * sizeof(struct entry) + sizeof *s->chunks);
}

/* ---- escalation counts ------------------------------------------------ */

struct esc_node {
    struct esc_node *next;
    struct addr wide;
    uint32_t n;
};

bool escmap_init(struct escmap *m)
{
    pthread_mutex_init(&m->mu, NULL);
    m->nb = 64;
    m->n = 0;
    m->b = calloc(m->nb, sizeof *m->b);
    return m->b != NULL;
}

void escmap_fini(struct escmap *m)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct esc_node *n = m->b[i], *next; n != NULL; n = next) {
            next = n->next;
            free(n);
        }
    free(m->b);
    pthread_mutex_destroy(&m->mu);
}

static struct esc_node **esc_slot(struct escmap *m, const struct addr *wide)
{
    struct esc_node **pp = &m->b[addr_hash(wide) % m->nb];
    while (*pp != NULL && !addr_equal(&(*pp)->wide, wide))
        pp = &(*pp)->next;
    return pp;
}

static void esc_grow(struct escmap *m)
{
    size_t nb = m->nb * 2;
    struct esc_node **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < m->nb; i++)
        for (struct esc_node *n = m->b[i], *next; n != NULL; n = next) {
            next = n->next;
            size_t j = addr_hash(&n->wide) % nb;
            n->next = b[j];
            b[j] = n;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void escmap_add(struct escmap *m, const struct addr *wide, int delta)
{
    pthread_mutex_lock(&m->mu);
    struct esc_node **pp = esc_slot(m, wide);
    if (*pp == NULL && delta > 0) {
        if (m->n >= m->nb) {
            esc_grow(m);
            pp = esc_slot(m, wide);
        }
        *pp = calloc(1, sizeof **pp);
        if (*pp != NULL) {
            (*pp)->wide = *wide;
            m->n++;
        }
    }
    if (*pp != NULL) {
        if (delta > 0 || (*pp)->n > 0)
            (*pp)->n += (uint32_t)delta;
        if ((*pp)->n == 0) {
            struct esc_node *dead = *pp;
            *pp = dead->next;
            free(dead);
            m->n--;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

uint32_t escmap_get(struct escmap *m, const struct addr *wide)
{
    pthread_mutex_lock(&m->mu);
    struct esc_node *n = *esc_slot(m, wide);
    uint32_t v = n ? n->n : 0;
    pthread_mutex_unlock(&m->mu);
    return v;
}

/* ---- expiry heap ---------------------------------------------------- */

void expheap_push(struct expheap *g, int64_t until, uint64_t id, const struct addr *k)
{
    pthread_mutex_lock(&g->mu);
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        struct expiry *h = realloc(g->v, cap * sizeof *h);
        if (h == NULL) {
            /* Without a heap slot the block still holds (the check looks
             * at block_until) but nobody records its expiry. */
            pthread_mutex_unlock(&g->mu);
            return;
        }
        g->v = h;
        g->cap = cap;
    }
    size_t i = g->n++;
    while (i > 0 && g->v[(i - 1) / 2].until > until) {
        g->v[i] = g->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->v[i] = (struct expiry){until, id, *k};
    pthread_mutex_unlock(&g->mu);
}

bool expheap_pop_due(struct expheap *g, int64_t now, struct expiry *out)
{
    pthread_mutex_lock(&g->mu);
    if (g->n == 0 || g->v[0].until > now) {
        pthread_mutex_unlock(&g->mu);
        return false;
    }
    *out = g->v[0];
    struct expiry last = g->v[--g->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= g->n)
            break;
        if (c + 1 < g->n && g->v[c + 1].until < g->v[c].until)
            c++;
        if (g->v[c].until >= last.until)
            break;
        g->v[i] = g->v[c];
        i = c;
    }
    if (g->n > 0)
        g->v[i] = last;
    pthread_mutex_unlock(&g->mu);
    return true;
}

void expheap_init(struct expheap *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
}

void expheap_fini(struct expheap *g)
{
    free(g->v);
    pthread_mutex_destroy(&g->mu);
}

size_t expheap_bytes(struct expheap *g)
{
    pthread_mutex_lock(&g->mu);
    size_t b = g->cap * sizeof *g->v;
    pthread_mutex_unlock(&g->mu);
    return b;
}
