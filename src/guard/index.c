#include "guard/index.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

/*
 * Layout: an array of 24-byte slots, open addressing with linear probing.
 * A slot is the prefix's bits (IPv4 in the top half of `hi`) and one word
 * `meta` = kind (8 bits) | prefix length (8) | until (48, ms since the
 * epoch, all ones = permanent). The table is rebuilt 45 % full when slots
 * in use (live + tombstones) pass 60 %, and when live ones fall under a
 * quarter, so a blocked prefix costs 40 to 53 bytes (96 at worst just
 * before a shrink), and a miss reads about 3.6 slots (one or two cache
 * lines; linear probing at 60 %). Slots map to positions by a multiply (any size,
 * not only powers of two, which would cost up to twice the memory), and
 * the hash is keyed by a random seed: the blocked prefixes are partly the
 * attacker's choice, and must not be made to collide.
 *
 * A check looks up each prefix length in use for the client's family
 * (normally one or two): it computes every candidate position first and
 * prefetches them, so the misses overlap and the check costs about one
 * memory latency, not one per length.
 */

enum { K_EMPTY = 0, K_TOMB = 1, K_V4 = 2, K_V6 = 3 };

#define UNTIL_BITS 48
#define UNTIL_MASK ((1ULL << UNTIL_BITS) - 1)
#define UNTIL_PERM UNTIL_MASK
#define KB_SHIFT UNTIL_BITS                    /* kind and length above until */
#define MIN_SLOTS 64
#define NREADERS 64

struct islot {
    uint64_t hi, lo, meta;
};

struct itab {
    size_t n;
    struct islot s[];
};

struct reader {
    _Atomic unsigned long n;       /* lookups in progress by the threads of this slot */
    char pad[64 - sizeof(unsigned long)];
};

struct gindex {
    pthread_mutex_t mu;            /* writers */
    _Atomic unsigned seq;          /* odd while a writer changes slots */
    struct itab *_Atomic tab;
    _Atomic uint64_t lens[2][3];   /* bit L: some prefix of length L is in the table */
    size_t nlen[2][129];           /* how many (under mu) */
    size_t live, tombs, resizes;
    uint64_t k0, k1;               /* hash seed */
    struct reader rd[NREADERS];
};

static _Thread_local int tl_reader = -1;
static atomic_uint reader_next;

/* ---- keys ------------------------------------------------------------- */

static uint64_t be64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | (i < n ? p[i] : 0);
    return v;
}

static uint64_t mask_top(int n)
{
    return n <= 0 ? 0 : n >= 64 ? ~0ULL : ~0ULL << (64 - n);
}

struct ikey {
    uint64_t hi, lo;
    uint64_t kb;                   /* kind and length, in meta's place */
};

/* The whole address as hi/lo; cut() below makes the key of one length. */
static void raw_of(const struct addr *a, uint64_t *hi, uint64_t *lo)
{
    if (a->family == AF_INET) {
        *hi = be64(a->b, 4);
        *lo = 0;
    } else {
        *hi = be64(a->b, 8);
        *lo = be64(a->b + 8, 8);
    }
}

static struct ikey cut(int fam, uint64_t hi, uint64_t lo, int bits)
{
    struct ikey k;
    k.hi = hi & mask_top(bits);
    k.lo = lo & mask_top(bits - 64);
    k.kb = ((uint64_t)(fam ? K_V6 : K_V4) << 8 | (uint64_t)bits) << KB_SHIFT;
    return k;
}

static struct ikey key_of(const struct addr *a)
{
    uint64_t hi, lo;
    raw_of(a, &hi, &lo);
    return cut(a->family == AF_INET ? 0 : 1, hi, lo, a->bits);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static uint64_t hash(const struct gindex *ix, const struct ikey *k)
{
    return mix(mix(k->hi ^ ix->k0) ^ k->lo ^ k->kb ^ ix->k1);
}

static size_t pos(uint64_t h, size_t n)
{
    return (size_t)(((unsigned __int128)h * n) >> 64);
}

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void st(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static uint64_t until_enc(int64_t until)
{
    if (until == INT64_MAX || until < 0 || (uint64_t)until >= UNTIL_PERM)
        return UNTIL_PERM;
    return (uint64_t)until;
}

static int64_t until_dec(uint64_t meta)
{
    uint64_t u = meta & UNTIL_MASK;
    return u == UNTIL_PERM ? INT64_MAX : (int64_t)u;
}

/* ---- tables ----------------------------------------------------------- */

static struct itab *tab_new(size_t n)
{
    size_t bytes = sizeof(struct itab) + n * sizeof(struct islot);
    bytes = (bytes + 63) & ~(size_t)63;
    struct itab *t = aligned_alloc(64, bytes);
    if (t == NULL)
        return NULL;
    memset(t, 0, bytes);
    t->n = n;
    return t;
}

/* Where `k` is, or (with *free_at) where it would go: the first
 * tombstone on its path, else the empty slot that ends it. */
static struct islot *find_slot(const struct gindex *ix, struct itab *t, const struct ikey *k,
                               struct islot **free_at)
{
    size_t i = pos(hash(ix, k), t->n);
    struct islot *tomb = NULL;
    for (size_t probes = 0; probes < t->n; probes++) {
        struct islot *s = &t->s[i];
        uint64_t kind = s->meta >> 56;
        if (kind == K_EMPTY) {
            if (free_at)
                *free_at = tomb ? tomb : s;
            return NULL;
        }
        if (kind == K_TOMB) {
            if (tomb == NULL)
                tomb = s;
        } else if ((s->meta & ~UNTIL_MASK) == k->kb && s->hi == k->hi && s->lo == k->lo) {
            return s;
        }
        if (++i == t->n)
            i = 0;
    }
    if (free_at)
        *free_at = tomb;
    return NULL;
}

static void write_begin(struct gindex *ix)
{
    atomic_store_explicit(&ix->seq, atomic_load_explicit(&ix->seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void write_end(struct gindex *ix)
{
    atomic_store_explicit(&ix->seq, atomic_load_explicit(&ix->seq, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* A replaced table may still be read by a lookup that loaded it before the
 * swap: wait until every reader slot has been seen idle once after it. */
static void wait_readers(struct gindex *ix)
{
    for (int i = 0; i < NREADERS; i++)
        while (atomic_load(&ix->rd[i].n) != 0)
            sched_yield();
}

/* Rebuilds the table 45 % full for `want` live prefixes. */
static bool rebuild(struct gindex *ix, size_t want)
{
    size_t n = want * 20 / 9 < MIN_SLOTS ? MIN_SLOTS : want * 20 / 9;
    struct itab *old = atomic_load_explicit(&ix->tab, memory_order_relaxed);
    struct itab *t = tab_new(n);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < old->n; i++) {
        const struct islot *s = &old->s[i];
        if ((s->meta >> 56) < K_V4)
            continue;
        struct ikey k = {s->hi, s->lo, s->meta & ~UNTIL_MASK};
        struct islot *free_at = NULL;
        find_slot(ix, t, &k, &free_at);
        *free_at = *s;
    }
    write_begin(ix);
    atomic_store(&ix->tab, t);
    write_end(ix);
    wait_readers(ix);
    free(old);
    ix->tombs = 0;
    ix->resizes++;
    return true;
}

static void len_count(struct gindex *ix, const struct ikey *k, int delta)
{
    int fam = (k->kb >> (KB_SHIFT + 8)) == K_V6;
    int bits = (int)(k->kb >> KB_SHIFT & 0xff);
    size_t *c = &ix->nlen[fam][bits];
    uint64_t bit = 1ULL << (bits % 64);
    if (delta > 0 && (*c)++ == 0)
        atomic_fetch_or(&ix->lens[fam][bits / 64], bit);
    else if (delta < 0 && --(*c) == 0)
        atomic_fetch_and(&ix->lens[fam][bits / 64], ~bit);
}

/* ---- the interface ---------------------------------------------------- */

struct gindex *gindex_new(void)
{
    struct gindex *ix = aligned_alloc(64, (sizeof *ix + 63) & ~(size_t)63);
    if (ix == NULL)
        return NULL;
    memset(ix, 0, sizeof *ix);
    struct itab *t = tab_new(MIN_SLOTS);
    if (t == NULL) {
        free(ix);
        return NULL;
    }
    atomic_store(&ix->tab, t);
    pthread_mutex_init(&ix->mu, NULL);
    util_random(&ix->k0, sizeof ix->k0);
    util_random(&ix->k1, sizeof ix->k1);
    return ix;
}

void gindex_free(struct gindex *ix)
{
    if (ix == NULL)
        return;
    free(atomic_load(&ix->tab));
    pthread_mutex_destroy(&ix->mu);
    free(ix);
}

bool gindex_put(struct gindex *ix, const struct addr *prefix, int64_t until)
{
    struct ikey k = key_of(prefix);
    uint64_t meta = k.kb | until_enc(until);
    bool ok = true;
    pthread_mutex_lock(&ix->mu);
    struct itab *t = atomic_load_explicit(&ix->tab, memory_order_relaxed);
    struct islot *free_at = NULL;
    struct islot *s = find_slot(ix, t, &k, &free_at);
    if (s != NULL) {
        write_begin(ix);
        st(&s->meta, meta);
        write_end(ix);
        goto out;
    }
    if ((ix->live + ix->tombs + 1) * 10 > t->n * 6) {
        if (!rebuild(ix, ix->live + 1) && ix->live + ix->tombs + 1 >= t->n) {
            ok = false;    /* full, and no memory for more: the caller keeps its entry */
            goto out;
        }
        t = atomic_load_explicit(&ix->tab, memory_order_relaxed);
        find_slot(ix, t, &k, &free_at);
    }
    bool reuse = (free_at->meta >> 56) == K_TOMB;
    write_begin(ix);
    st(&free_at->hi, k.hi);
    st(&free_at->lo, k.lo);
    st(&free_at->meta, meta);
    len_count(ix, &k, +1);
    write_end(ix);
    ix->live++;
    ix->tombs -= reuse;
out:
    pthread_mutex_unlock(&ix->mu);
    return ok;
}

bool gindex_del(struct gindex *ix, const struct addr *prefix)
{
    struct ikey k = key_of(prefix);
    pthread_mutex_lock(&ix->mu);
    struct itab *t = atomic_load_explicit(&ix->tab, memory_order_relaxed);
    struct islot *s = find_slot(ix, t, &k, NULL);
    if (s == NULL) {
        pthread_mutex_unlock(&ix->mu);
        return false;
    }
    size_t i = (size_t)(s - t->s);
    size_t next = i + 1 == t->n ? 0 : i + 1;
    write_begin(ix);
    len_count(ix, &k, -1);
    if ((t->s[next].meta >> 56) == K_EMPTY) {
        /* Nothing probes past an empty slot: this one and the tombstones
         * just before it can become empty too. */
        st(&s->meta, 0);
        for (size_t j = i == 0 ? t->n - 1 : i - 1; (t->s[j].meta >> 56) == K_TOMB;
             j = j == 0 ? t->n - 1 : j - 1) {
            st(&t->s[j].meta, 0);
            ix->tombs--;
        }
    } else {
        st(&s->meta, (uint64_t)K_TOMB << 56);
        ix->tombs++;
    }
    write_end(ix);
    ix->live--;
    if (t->n > MIN_SLOTS && ix->live * 4 < t->n)
        rebuild(ix, ix->live);   /* on failure the bigger table stays: still correct */
    pthread_mutex_unlock(&ix->mu);
    return true;
}

static struct reader *reader_enter(struct gindex *ix)
{
    if (tl_reader < 0)
        tl_reader = (int)(atomic_fetch_add(&reader_next, 1) % NREADERS);
    struct reader *r = &ix->rd[tl_reader];
    atomic_fetch_add(&r->n, 1);   /* seq_cst: before the table is loaded */
    return r;
}

/* One length's probe, under the caller's sequence check. */
static bool probe(const struct gindex *ix, const struct itab *t, size_t i, const struct ikey *k,
                  uint64_t *meta)
{
    (void)ix;
    for (size_t probes = 0; probes < t->n; probes++) {
        const struct islot *s = &t->s[i];
        uint64_t m = ld(&s->meta);
        uint64_t kind = m >> 56;
        if (kind == K_EMPTY)
            return false;
        if ((m & ~UNTIL_MASK) == k->kb && ld(&s->hi) == k->hi && ld(&s->lo) == k->lo) {
            *meta = m;
            return true;
        }
        if (++i == t->n)
            i = 0;
    }
    return false;
}

bool gindex_lookup(struct gindex *ix, const struct addr *client, int64_t now, bool widest,
                   struct addr *hit, int64_t *until)
{
    int fam = client->family == AF_INET ? 0 : 1;
    uint64_t hi, lo;
    raw_of(client, &hi, &lo);
    struct reader *r = reader_enter(ix);
    bool found;
    int found_bits;
    uint64_t found_meta;
    for (;;) {
        unsigned s0 = atomic_load_explicit(&ix->seq, memory_order_acquire);
        if (s0 & 1) {
            sched_yield();
            continue;
        }
        const struct itab *t = atomic_load(&ix->tab);
        /* The lengths in use that can cover the client, in the order asked. */
        struct ikey keys[129];
        size_t at[129];
        int nk = 0;
        for (int w = 0; w < 3; w++) {
            uint64_t m = atomic_load_explicit(&ix->lens[fam][w], memory_order_relaxed);
            while (m != 0) {
                int bits = w * 64 + __builtin_ctzll(m);
                m &= m - 1;
                if (bits > client->bits)
                    break;
                keys[nk] = cut(fam, hi, lo, bits);
                at[nk] = pos(hash(ix, &keys[nk]), t->n);
                __builtin_prefetch(&t->s[at[nk]]);
                __builtin_prefetch((const char *)&t->s[at[nk]] + sizeof(struct islot) - 1);
                nk++;
            }
        }
        found = false;
        for (int j = 0; j < nk && !found; j++) {
            int q = widest ? j : nk - 1 - j;
            uint64_t meta;
            if (probe(ix, t, at[q], &keys[q], &meta) && until_dec(meta) > now) {
                found = true;
                found_bits = (int)(keys[q].kb >> KB_SHIFT & 0xff);
                found_meta = meta;
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&ix->seq, memory_order_relaxed) == s0)
            break;
    }
    atomic_fetch_sub_explicit(&r->n, 1, memory_order_release);
    if (found) {
        if (hit != NULL) {
            *hit = *client;
            addr_cut(hit, found_bits);
        }
        if (until != NULL)
            *until = until_dec(found_meta);
    }
    return found;
}

void gindex_stats(struct gindex *ix, struct gindex_stats *out)
{
    pthread_mutex_lock(&ix->mu);
    struct itab *t = atomic_load_explicit(&ix->tab, memory_order_relaxed);
    out->live = ix->live;
    out->tombstones = ix->tombs;
    out->slots = t->n;
    out->bytes = sizeof(struct itab) + t->n * sizeof(struct islot);
    out->resizes = ix->resizes;
    pthread_mutex_unlock(&ix->mu);
}
