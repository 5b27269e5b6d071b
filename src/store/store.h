/* store: where blocks and their history live beyond the process. One
 * interface, two backends: SQLite (one node) and Redis (many nodes).
 *
 * Writes are queued and return at once (a worker never waits on a disk or a
 * network); reads serve the control socket and the start-up load, and wait
 * for the queue ahead of them, so a read sees every write made before it. */
#ifndef PORTCULLIS_STORE_H
#define PORTCULLIS_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include "base/config.h"
#include "guard/guard.h"

struct store;
typedef void (*store_block_cb)(void *ctx, const struct guard_block *b);

/* One queued write. PUT: the whole record (insert, or replace by id).
 * LIFT: b.id, b.lifted_at, b.lifted_by, b.lift_reason. EXPIRE: b.id and
 * b.lifted_at (when). PRUNE: b.lifted_at (history ended before it goes). */
enum store_op { STORE_PUT, STORE_LIFT, STORE_EXPIRE, STORE_PRUNE };
struct store_write {
    enum store_op op;
    struct guard_block b;
};

/* A prefix's counts summed over the cluster's nodes. */
struct store_counts {
    uint32_t auth_failures, unauth_attempts, connections;
};

struct store_ops {
    /* Queues a write; returns at once. */
    void (*write)(struct store *s, const struct store_write *w);
    /* Every block in force, or started after `since`, oldest first. Blocks
     * whose expiry passed while no daemon ran are marked expired first. */
    bool (*load)(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx);
    /* Blocks on `prefix`, on prefixes covering it or inside it; newest
     * first; at most `limit` (0: all). */
    bool (*history)(struct store *s, const struct addr *prefix, int limit,
                    store_block_cb cb, void *ctx);
    bool (*get)(struct store *s, uint64_t id, struct guard_block *out);
    void (*close)(struct store *s);
    /* Cluster mode only (NULL otherwise): one event of `why` by `prefix`,
     * summed over all nodes; reaching `limit` within `window_ms` calls the
     * hooks' limit() on the store's thread, on exactly one node. */
    void (*count)(struct store *s, const struct addr *prefix, enum guard_reason why,
                  long limit, int64_t window_ms);
    /* Cluster mode only: the cluster's counts for `prefix` now. */
    bool (*counters)(struct store *s, const struct config *c, const struct addr *prefix,
                     struct store_counts *out);
};

/* What a shared store tells its node. Called on the store's own thread. */
struct store_hooks {
    void *ctx;
    /* A block recorded by some node (this one too): enforce it here. */
    void (*installed)(void *ctx, const struct guard_block *b);
    /* Block `id` on `prefix` was lifted or expired somewhere. */
    void (*removed)(void *ctx, uint64_t id, const struct addr *prefix);
    /* The cluster's count of `why` for `prefix` reached its limit. */
    void (*limit)(void *ctx, const struct addr *prefix, enum guard_reason why,
                  int64_t first_event, uint32_t events);
    /* The shared view became reachable (true) or was lost (false). */
    void (*shared)(void *ctx, bool up);
};

struct store {
    const struct store_ops *ops;
    /* Writes are failing (SQLite) or the shared store is away (Redis):
     * /metrics' portcullis_store_up. */
    atomic_bool down;
};

/* A backend: one file and one row of the table in store.c. */
struct store_backend_row {
    enum store_backend kind;
    struct store *(*open)(const struct config *c, const struct store_hooks *h,
                          char *err, size_t errlen);
};
extern const struct store_backend_row store_sqlite, store_redis;

/* Opens the configured [store] backend. */
struct store *store_open(const struct config *c, const struct store_hooks *h,
                         char *err, size_t errlen);

/* The reads and the rest, as callers say them (see store_ops). */
bool store_load(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx);
bool store_history(struct store *s, const struct addr *prefix, int limit,
                   store_block_cb cb, void *ctx);
bool store_get(struct store *s, uint64_t id, struct guard_block *out);
void store_close(struct store *s);
/* Cluster mode: see store_ops.count; store_counts says whether it counts
 * (false for a single node, where store_count does nothing). */
bool store_counts(const struct store *s);
void store_count(struct store *s, const struct addr *prefix, enum guard_reason why,
                 long limit, int64_t window_ms);

/* The writes, as callers say them. */
void store_put(struct store *s, const struct guard_block *b);
void store_lift(struct store *s, uint64_t id, int64_t at, const char *by, const char *why);
void store_expire(struct store *s, uint64_t id, int64_t at);
void store_prune(struct store *s, int64_t before);

/* Block ids travel as 16 hex digits (store_id.c, used by the backends). */
void store_id_format(uint64_t id, char out[17]);
bool store_id_parse(const char *s, uint64_t *out);

#endif
