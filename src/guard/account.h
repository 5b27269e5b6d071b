/* account: failed logins per account from all addresses together, and the
 * lock they impose (SPEC §4). A botnet trying one account's password from
 * thousands of addresses, a few tries each, never reaches an address's
 * limit; the account's own count does. The lock holds only against
 * unfamiliar addresses: a prefix that logged in to the account within
 * familiar_for still may, so the owner is not locked out with the botnet.
 *
 * Pure logic over an in-memory table, like guard.c: time is a parameter,
 * configuration is passed in by each call, nothing here does I/O; the
 * caller records and logs what is decided. One mutex (touched per AUTH,
 * never per connection).
 *
 * Bounded against abuse of the bookkeeping itself: at most `max_accounts`
 * accounts are tracked (an attacker cycling through millions of names
 * evicts first the entries that only hold failures, oldest first, then
 * those with familiar prefixes; never a locked one: when all are locked, a
 * new name is not counted), and at most ACCOUNT_FAMILIAR_MAX familiar
 * prefixes per account (the one that logged in longest ago goes). */
#ifndef PORTCULLIS_ACCOUNT_H
#define PORTCULLIS_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"
#include "base/config.h"

#define ACCOUNT_NAME_MAX 256          /* with the NUL: SASL_USER_MAX */
#define ACCOUNT_FAMILIAR_MAX 32
#define ACCOUNT_MAX_TRACKED 100000

/* The account name as the users file and Dovecot (auth_username_format
 * %Lu) compare it: ASCII letters lowercased, nothing else changed. False
 * when empty or too long. */
bool account_name_normalise(const char *in, char out[ACCOUNT_NAME_MAX]);

enum account_reason { ACCOUNT_FAILURES = 1, ACCOUNT_MANUAL };
const char *account_reason_name(enum account_reason r);  /* "account_failures", "manual" */
bool account_reason_parse(const char *s, enum account_reason *out);

enum lock_state { LOCK_ACTIVE, LOCK_LIFTED, LOCK_EXPIRED };
const char *lock_state_name(enum lock_state s);          /* "locked", "lifted", "expired" */
bool lock_state_parse(const char *s, enum lock_state *out);

/* One lock as the history keeps it: a block of an account (SPEC §5's
 * LOCK). Times in ms since the epoch; 0 = none. */
struct account_lock {
    uint64_t id;                 /* random: unique across nodes */
    char account[ACCOUNT_NAME_MAX];
    enum account_reason reason;
    enum lock_state state;
    int64_t started_at;
    int64_t expires_at;
    int64_t lifted_at;
    int64_t first_event_at, last_event_at;
    uint32_t events;
    char lifted_by[64];
    char lift_reason[256];
    char note[256];
    char node[64];
};

struct account_table;

struct account_table *account_new(size_t max_accounts);
void account_free(struct account_table *t);

/* May `prefix` try to log in to `name` at `now`? True unless a lock is in
 * force and the prefix is not familiar. A refused try gets its 535 without
 * a password check and counts toward its address, not the account. */
bool account_may_try(struct account_table *t, const struct config *c, const char *name,
                     const struct addr *prefix, int64_t now);

/* A failed AUTH for `name` that counts (not a repeat, not refused by a
 * lock). Returns true when it reached account_fail_limit and locked the
 * account (the lock is filled into *made; the count starts afresh). */
bool account_fail(struct account_table *t, const struct config *c, const char *name,
                  int64_t now, struct account_lock *made);

/* `prefix` logged in to `name` at `at`: it is familiar from then on for
 * familiar_for. Also how familiar prefixes learned from the store are
 * installed. Returns the login known before for that prefix (0: none), so
 * that the caller need not record every login of a busy account. */
int64_t account_familiar(struct account_table *t, const char *name,
                         const struct addr *prefix, int64_t at);

/* Lifts the lock in force on `name`. False when none is; otherwise
 * *lifted_id names the record to mark lifted. */
bool account_unlock(struct account_table *t, const char *name, int64_t now,
                    uint64_t *lifted_id);

/* Installs a lock learned from the store (at start, or from another node);
 * ignored unless still in force at `now`. Idempotent by id. */
void account_install(struct account_table *t, const struct account_lock *l, int64_t now);
/* Another node lifted lock `id` on `name`. */
void account_remove(struct account_table *t, const char *name, uint64_t id);

/* Ends the locks whose time is up; calls cb with each once. */
typedef void (*account_expired_cb)(void *ctx, uint64_t id, const char *name, int64_t expired_at);
size_t account_expire(struct account_table *t, int64_t now, account_expired_cb cb, void *ctx);
/* Frees entries with nothing left to say: no lock, no failures in the
 * window, no familiar prefix within familiar_for. */
size_t account_sweep(struct account_table *t, const struct config *c, int64_t now);

/* Cluster mode: while the shared store counts for all nodes, this node's
 * own counts do not lock (the store does, via account_impose); when it is
 * unreachable, local decisions resume. Default: local. */
void account_set_local_decisions(struct account_table *t, bool local);
/* A lock decided elsewhere (the cluster's sum reached the limit). False
 * when a lock is in force already (or the table is full of locks). */
bool account_impose(struct account_table *t, const struct config *c, const char *name,
                    int64_t first_event, uint32_t events, int64_t now, struct account_lock *made);

struct account_status {
    bool locked;
    uint64_t lock_id;
    enum account_reason lock_reason;
    int64_t lock_started, lock_until;
    uint32_t failures;           /* within account_fail_window */
    uint32_t familiar;           /* prefixes familiar now */
};
void account_status(struct account_table *t, const struct config *c, const char *name,
                    int64_t now, struct account_status *out);
/* The prefixes familiar to `name` now, most recent login first; returns
 * how many were written (at most max). */
size_t account_familiar_list(struct account_table *t, const struct config *c, const char *name,
                             int64_t now, struct addr *out, int64_t *last_login, size_t max);

/* Every lock in force (a copy; its events and window are the store's). */
typedef void (*account_lock_cb)(void *ctx, const struct account_lock *l);
void account_locks(struct account_table *t, int64_t now, account_lock_cb cb, void *ctx);

struct account_stats {
    size_t accounts;             /* tracked now */
    size_t locks;                /* in force */
    size_t evicted;              /* forgotten for room, since start */
    size_t bytes;                /* memory of the table */
};
void account_stats(struct account_table *t, int64_t now, struct account_stats *out);

#endif
