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
#include "base/rate.h"

enum { RATE_AUTH, RATE_UNAUTH, RATE_CONN, NRATES };

/* What only a blocked (or recently blocked) prefix needs, or one with
 * 554s waiting for their log line: 48 bytes and the ladder's block times,
 * room for BLOCKREC_MIN at first (the default ladder needs four), grown up
 * to CONFIG_MAX_PERMANENT_AFTER. (The 554s of a block in force are counted
 * in the accept-time index; they come here when the block ends.) */
struct blockrec {
    uint64_t block_id;           /* 0: no block in force */
    int64_t block_started;
    int64_t block_until;         /* INT64_MAX: permanent */
    uint8_t reason;              /* enum guard_reason of the block in force */
    uint8_t noff;                /* used slots of offenses[] */
    uint8_t cap;                 /* its room */
    uint8_t esc_bits;            /* the block counts toward escalation at this length; 0: not */
    uint32_t rejects;            /* 554s of an ended block not yet logged */
    uint32_t conc_rejects;       /* 554s over concurrency_limit not yet logged */
    uint32_t conc_logged;        /* second of the last such log line; 0: none lately */
    uint32_t tls_minute;         /* minute of the TLS handshakes granted below */
    uint32_t tls_grants;         /* handshakes granted to blocked clients in it */
    int64_t offenses[];          /* starts (ms) of automatic blocks, oldest first */
};
#define BLOCKREC_MIN 4
#define BLOCKREC_SIZE(cap) (sizeof(struct blockrec) + (size_t)(cap) * sizeof(int64_t))

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

/* The guard itself (guard.c; the 554 counts are in reject.c). */
struct gindex;
struct guard {
    struct table t;
    struct gindex *ix;           /* blocks in force, for the accept-time check */
    _Atomic uint64_t epoch;
    atomic_bool shared;          /* another party decides (cluster mode) */
    struct expheap heap;         /* when blocks end */
    struct escmap esc;           /* automatic blocks in force per wider prefix */
};

/* e's record, made if missing (NULL: out of memory). */
struct blockrec *blockrec_of(struct entry *e);
/* Drops e's record once it holds nothing: no block, ladder or pending 554s. */
void blockrec_trim(struct entry *e);

#endif
