/* guard: who is counted, who is blocked, and for how long. Pure logic over
 * an in-memory table; time is a parameter, configuration is passed in by
 * each call (so a reload needs no locking here), and nothing here does I/O.
 * The caller records what the guard decides (store) and logs it.
 *
 * The counting table is sharded by prefix hash, each shard with its own
 * mutex, and bounded by max_tracked. The accept-time check does not read it:
 * blocks in force are also kept in a compact lock-free index (index.h). */
#ifndef PORTCULLIS_GUARD_H
#define PORTCULLIS_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"
#include "base/config.h"

enum guard_reason {
    GUARD_NONE = 0,
    GUARD_AUTH_FAILURES,
    GUARD_UNAUTH_ATTEMPTS,
    GUARD_CONN_RATE,
    GUARD_MANUAL,
    GUARD_ESCALATED,         /* SPEC §4: many automatic blocks inside one wider prefix */
};
const char *guard_reason_name(enum guard_reason r);   /* "auth_failures" ... */
/* The window and the limit configured for the count of `why` (one of the
 * three counted reasons), as the guard and the cluster's shared counts use. */
int64_t guard_window_ms(const struct config *c, enum guard_reason why);
long guard_limit(const struct config *c, enum guard_reason why);

enum block_state { BLOCK_ACTIVE, BLOCK_PERMANENT, BLOCK_LIFTED, BLOCK_EXPIRED };
const char *block_state_name(enum block_state s);     /* "blocked" ... */
bool block_state_parse(const char *s, enum block_state *out);
bool guard_reason_parse(const char *s, enum guard_reason *out);

/* One block as the history keeps it. Times in ms since the epoch; 0 = none. */
struct guard_block {
    uint64_t id;                 /* random: unique across nodes */
    struct addr prefix;
    enum guard_reason reason;
    enum block_state state;
    int64_t started_at;
    int64_t expires_at;          /* 0: permanent */
    int64_t lifted_at;
    int64_t first_event_at, last_event_at;
    uint32_t events;
    char lifted_by[64];
    char lift_reason[256];
    char note[256];              /* an operator's words on a manual block */
    char node[64];
};

/* What the guard says about a new connection. */
enum guard_verdict {
    GUARD_ACCEPT,            /* counted; call guard_disconnect() at close */
    GUARD_ACCEPT_ALLOWED,    /* in `allow`: neither counted nor blocked */
    GUARD_REJECT_BLOCKED,    /* 554: a block is in force (or this made one) */
    GUARD_REJECT_CONCURRENCY,/* 554: over concurrency_limit; no block */
};

struct guard;

struct guard *guard_new(void);
void guard_free(struct guard *g);

/* A new connection from `client` at `now`. May impose a conn_rate block:
 * then *made is filled and the function returns true in *did_block. */
enum guard_verdict guard_connect(struct guard *g, const struct config *c,
                                 const struct addr *client, int64_t now,
                                 struct guard_block *made, bool *did_block);
/* The end of a connection that guard_connect() answered GUARD_ACCEPT. */
void guard_disconnect(struct guard *g, const struct config *c, const struct addr *client);

/* A failed AUTH or an unauthenticated MAIL. Returns true when this event
 * reached the limit and imposed a block (filled into *made). */
bool guard_offend(struct guard *g, const struct config *c, const struct addr *client,
                  enum guard_reason what, int64_t now, struct guard_block *made);

/* A 554 was sent to `client`: counts it against the block in force. Once a
 * minute per blocked prefix returns the count to log (and that prefix in
 * *prefix); otherwise 0, so a flood does not become a log flood. */
uint32_t guard_reject_note(struct guard *g, const struct addr *client, int64_t now,
                           struct addr *prefix);
/* guard_blocked() and guard_reject_note() in one lookup, for the accept
 * path: true when blocked; *log_count as guard_reject_note() returns it. */
bool guard_check_reject(struct guard *g, const struct addr *client, int64_t now,
                        uint32_t *log_count, struct addr *prefix);

/* A blocked client on an implicit-TLS listener reads its 554 only after a
 * TLS handshake, which costs the server far more than the 554 itself: may
 * it have one? True for the first per_minute of each blocked prefix in a
 * minute (a customer's mail program retrying sees why); false beyond, and
 * when no block is in force (the caller closes without a word). */
bool guard_tls_reject_grant(struct guard *g, const struct addr *client, int64_t now,
                            uint32_t per_minute);
/* A 554 for being over concurrency_limit: counted on the client's
 * counting prefix (in *prefix), with the same once-a-minute rule. */
uint32_t guard_concurrency_note(struct guard *g, const struct config *c, const struct addr *client,
                                int64_t now, struct addr *prefix);
/* Every 554 ends up in exactly one log line: what the notes above did not
 * return waits on its entry until one of these hands it out. */
/* The pending (blocked) count of exactly `prefix`, taken: at expiry and
 * unblock, so the count goes out with the block it belongs to. */
uint32_t guard_reject_take(struct guard *g, const struct addr *prefix, int64_t now);
/* Calls cb with each pending count (why: GUARD_REJECT_BLOCKED or
 * GUARD_REJECT_CONCURRENCY) whose prefix had no line for a minute, or
 * every one when `all` (at shutdown), and takes it. cb runs under a shard
 * lock: it may log, but must not call the guard. Returns how many. */
typedef void (*guard_reject_cb)(void *ctx, const struct addr *prefix, enum guard_verdict why,
                                uint32_t count);
size_t guard_reject_flush(struct guard *g, int64_t now, bool all, guard_reject_cb cb, void *ctx);

/* Is a block in force over this client (at any prefix length)? */
bool guard_blocked(struct guard *g, const struct addr *client, int64_t now);
/* Bumped whenever a block is imposed or installed: a session compares it
 * with the value it last saw and only then looks itself up again. */
uint64_t guard_epoch(const struct guard *g);

/* An operator's block of `prefix` (already cut) for duration_ms, or
 * permanently when duration_ms < 0. Replaces a block in force there (the
 * replaced one is returned in *replaced with state lifted, *had_old true). */
void guard_block_manual(struct guard *g, const struct addr *prefix, int64_t duration_ms,
                        int64_t now, struct guard_block *made,
                        struct guard_block *replaced, bool *had_old);
/* Lifts the block in force on exactly `prefix`. Returns false if none was;
 * otherwise *lifted_id names the record to mark lifted. */
bool guard_unblock(struct guard *g, const struct addr *prefix, int64_t now, uint64_t *lifted_id);

/* Installs a block learned from the store (at start, or from another node):
 * in force if it is still active at `now`; an automatic block within
 * offense_memory also counts toward the ladder. Idempotent by id. */
void guard_install(struct guard *g, const struct config *c, const struct guard_block *b, int64_t now);
/* Another node lifted block `id` on `prefix`. */
void guard_remove(struct guard *g, const struct addr *prefix, uint64_t id);

/* Ends the blocks whose time is up; calls cb with each (id, prefix) once.
 * Returns how many expired. */
typedef void (*guard_expired_cb)(void *ctx, uint64_t id, const struct addr *prefix, int64_t expired_at);
size_t guard_expire(struct guard *g, int64_t now, guard_expired_cb cb, void *ctx);
/* Frees idle entries: no block, no open connection, counters run out, no
 * offense within offense_memory. Returns how many were freed. */
size_t guard_sweep(struct guard *g, const struct config *c, int64_t now);

struct guard_status {
    enum block_state state;      /* BLOCK_ACTIVE / BLOCK_PERMANENT, or BLOCK_EXPIRED = clear */
    bool blocked;
    struct addr block_prefix;    /* the prefix the block in force is on */
    uint64_t block_id;
    enum guard_reason block_reason;
    int64_t block_started, block_until;   /* until: INT64_MAX when permanent */
    uint32_t auth_failures, unauth_attempts, connections, concurrent;
    uint32_t offenses;           /* automatic blocks within offense_memory */
};
/* What the guard knows now about `key` (a counting prefix, or any CIDR). */
void guard_status(struct guard *g, const struct config *c, const struct addr *key,
                  int64_t now, struct guard_status *out);

/* Every block in force: id and prefix. */
typedef void (*guard_list_cb)(void *ctx, uint64_t id, const struct addr *prefix,
                              int64_t until /* INT64_MAX: permanent */);
void guard_list(struct guard *g, int64_t now, guard_list_cb cb, void *ctx);

struct guard_stats {
    size_t entries;              /* tracked prefixes */
    size_t blocks, permanent;    /* in force */
    size_t bytes;                /* memory of the table (entries, buckets, index, heap) */
    size_t entry_size;           /* bytes per tracked prefix */
    uint64_t evictions;          /* entries forgotten to stay within max_tracked */
    uint64_t untracked;          /* new prefixes not counted: the table was full of more useful ones */
    size_t index_prefixes;       /* blocked prefixes in the accept-time index */
    size_t index_bytes;          /* its memory */
    size_t block_bytes;          /* block and ladder records (blocked or recently blocked prefixes) */
};
void guard_stats(struct guard *g, int64_t now, struct guard_stats *out);
/* Entries forgotten so far to stay within max_tracked (cheap: one load). */
uint64_t guard_evictions(const struct guard *g);

/* Cluster mode: while a shared store counts for all nodes, this node's
 * own counts do not impose blocks (the store does, via guard_impose); when
 * the store is unreachable, local decisions resume. Default: local. */
void guard_set_local_decisions(struct guard *g, bool local);
/* A block decided elsewhere (the cluster's sum reached a limit): applies
 * the ladder to `key` as if the offense had happened here. Returns false
 * when a block is already in force there. */
bool guard_impose(struct guard *g, const struct config *c, const struct addr *key,
                  enum guard_reason why, int64_t first_event, uint32_t events, int64_t now,
                  struct guard_block *made);

/* Escalation (SPEC §4): call after an automatic block on `narrow` was made.
 * When escalate_count automatic blocks are in force inside the wider
 * prefix (ipv4_escalate_prefix / ipv6_escalate_prefix) that holds it, and
 * that prefix is not blocked already, blocks it (reason escalated, its own
 * ladder) and returns true with the block in *made. */
bool guard_escalate(struct guard *g, const struct config *c, const struct addr *narrow,
                    int64_t now, struct guard_block *made);
/* How many automatic blocks are in force inside `wide` (as counted for
 * escalation at its length). */
uint32_t guard_escalation_count(struct guard *g, const struct addr *wide);


#endif
