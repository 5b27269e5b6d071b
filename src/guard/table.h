/* table: the guard's counting entries (internal to src/guard). One compact
 * entry per tracked prefix, kept in per-shard slabs and found through
 * chained buckets of 32-bit handles; a prefix that is or was recently
 * blocked also has a block record. At most max_tracked entries: beyond,
 * the least useful go first (see table.c). */
#ifndef PORTCULLIS_GUARD_TABLE_H
#define PORTCULLIS_GUARD_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"
#include "base/config.h"

/* A two-period rate counter (guard.c explains the estimate) packed in 16
 * bytes: times are ms since the epoch in 42 bits (until the year 2109),
 * counts saturate at 2^22 - 1 (limits above are treated as that). */
struct rate {
    uint64_t start : 42;   /* start of the current period; 0 = never used */
    uint64_t cur : 22;
    uint64_t first : 42;   /* first event since the counter was last empty */
    uint64_t prev : 22;
};
#define RATE_MAX ((1u << 22) - 1)

enum { RATE_AUTH, RATE_UNAUTH, RATE_CONN, NRATES };

/* What only a blocked (or recently blocked) prefix needs. */
struct blockrec {
    uint64_t block_id;           /* 0: no block in force */
    int64_t block_started;
    int64_t block_until;         /* INT64_MAX: permanent */
    uint32_t rejects;            /* 554s not yet logged */
    uint32_t reject_logged;      /* second of the last reject log line */
    uint8_t reason;              /* enum guard_reason of the block in force */
    uint8_t noff;                /* used slots of offenses[] */
    uint8_t esc_bits;            /* the block counts toward escalation at this length; 0: not */
    int64_t offenses[CONFIG_MAX_PERMANENT_AFTER];  /* starts (ms) of automatic blocks, oldest first */
};

struct entry {
    struct addr key;             /* family 0: a free slab slot */
    uint32_t next;               /* handle of the next entry in the bucket (or free list) */
    uint32_t concurrent;
    uint32_t seen;               /* second of the last event: age, for eviction */
    struct rate rate[NRATES];
    struct blockrec *b;          /* NULL for the many prefixes never blocked */
};

struct shard {
    pthread_mutex_t mu;
    uint32_t *b;                 /* bucket heads: handles, 0 = none */
    size_t nb, n;
    struct entry **chunks;       /* the slab: chunks of TABLE_CHUNK entries */
    size_t nchunks;
    uint32_t free_head;          /* free slab slots */
    uint64_t rnd;                /* sampling state */
};

struct table {
    struct shard *shards;        /* TABLE_SHARDS */
    uint64_t seed;
    _Atomic size_t tracked;
    _Atomic uint64_t evictions, untracked;
};

#define TABLE_SHARDS 256

bool table_init(struct table *t);
void table_fini(struct table *t);

/* The shard of `k`; *h is the hash to pass on. */
struct shard *table_shard(struct table *t, const struct addr *k, uint64_t *h);
/* The shard's lock is held by the caller in all that follows. */
struct entry *table_find(struct shard *s, uint64_t h, const struct addr *k);
/* Finds or adds `k`. A new entry may have to make room: with `force` (a
 * block must be kept) the table may exceed max_tracked, otherwise an entry
 * no more useful than a newcomer worth `worth` is evicted, here or in
 * another shard, and if none is, NULL is returned (the prefix goes
 * uncounted). NULL also when out of memory. */
struct entry *table_get(struct table *t, struct shard *s, uint64_t h, const struct addr *k,
                        const struct config *c, uint32_t worth, int64_t now, bool force);
void table_remove(struct table *t, struct shard *s, uint64_t h, struct entry *e);
/* Calls fn on every entry of the shard; fn returns true to remove it. */
void table_each(struct table *t, struct shard *s, bool (*fn)(struct entry *, void *), void *ctx);
size_t table_shard_bytes(const struct shard *s);

/* Escalation counts: automatic blocks in force per wider prefix, one node
 * for each wider prefix that has any (so bounded by the blocks). Its lock
 * may be taken under a shard's, never the other way round. */
struct esc_node;
struct escmap {
    pthread_mutex_t mu;
    struct esc_node **b;
    size_t nb, n;
};
bool escmap_init(struct escmap *m);
void escmap_fini(struct escmap *m);
void escmap_add(struct escmap *m, const struct addr *wide, int delta);
uint32_t escmap_get(struct escmap *m, const struct addr *wide);

/* When blocks end: a min-heap of (until, id, prefix), its own lock, never
 * taken while waiting for a shard. Items of blocks lifted or replaced
 * since stay until due; the guard skips them then. */
struct expiry {
    int64_t until;
    uint64_t id;
    struct addr key;
};
struct expheap {
    pthread_mutex_t mu;
    struct expiry *v;
    size_t n, cap;
};
void expheap_init(struct expheap *h);
void expheap_fini(struct expheap *h);
void expheap_push(struct expheap *h, int64_t until, uint64_t id, const struct addr *k);
bool expheap_pop_due(struct expheap *h, int64_t now, struct expiry *out);
size_t expheap_bytes(struct expheap *h);

/* Implemented by the guard: how useful an entry is (0: evict first;
 * UINT32_MAX: never evict). */
uint32_t guard_entry_worth(const struct entry *e, const struct config *c, int64_t now);

#endif
