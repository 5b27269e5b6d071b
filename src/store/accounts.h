/* accounts: the repeat and account rules of SPEC §4 with their state
 * beyond one process; the decisions themselves are guard/repeat.c and
 * guard/account.c.
 *
 * One node (backend = sqlite): the in-memory tables decide; locks, their
 * lifting and expiry, and familiar logins are queued to SQLite (the same
 * file as the blocks, tables of their own) and loaded again at start, so
 * they survive a restart and kill -9.
 *
 * Cluster (backend = redis): Redis holds the truth: account counts summed
 * over every node, locks, familiar sets, the failure fingerprints and the
 * key they are made with. Each call asks it (synchronously, a few ms at
 * most: call from a pool thread, never from an event loop; see
 * accounts_waits()). The in-memory tables mirror what the answers say and
 * decide alone while Redis is unreachable (known locks stay enforced,
 * counting goes on locally); locks made meanwhile are written back once it
 * answers again.
 *
 * Thread-safe. Account names are normalised here (account_name_normalise). */
#ifndef PORTCULLIS_ACCOUNTS_H
#define PORTCULLIS_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>
#include "base/config.h"
#include "guard/account.h"
#include "guard/repeat.h"

struct accounts;
typedef void (*accounts_lock_cb)(void *ctx, const struct account_lock *l);

/* Opens the backend of c->store and loads what it holds. `node` names
 * this node in the records it makes. */
struct accounts *accounts_open(const struct config *c, const char *node, char *err, size_t errlen);
void accounts_close(struct accounts *a);
/* True when calls may wait on the network (cluster mode). */
bool accounts_waits(const struct accounts *a);

/* ---- the AUTH path ---- */

/* May `prefix` try to log in to `user` now? False: a lock is in force and
 * the prefix is unfamiliar; answer 535 without a password check (the
 * caller counts it toward the address). */
bool accounts_may_try(struct accounts *a, const struct config *c, const char *user,
                      const struct addr *prefix, int64_t now);

struct accounts_failure {
    bool repeat;                 /* same user and password as an earlier failure: counts nowhere */
    bool locked;                 /* this failure locked the account: log `lock` */
    struct account_lock lock;
};
/* The fingerprint of a (user, password) pair, taken when the AUTH comes
 * in, so that the password need not be kept until its verdict. */
uint64_t accounts_fingerprint(struct accounts *a, const char *user, const char *pass);
/* A 535 (fp: the pair's fingerprint): a wrong password, or (count_account
 * false) a try refused by a lock, which counts toward its address only.
 * With repeat_counts_once, a repeat counts toward nothing (the caller
 * counts the address unless out->repeat). */
void accounts_failed(struct accounts *a, const struct config *c, const char *user, uint64_t fp,
                     bool count_account, const struct addr *prefix, int64_t now,
                     struct accounts_failure *out);
/* A successful login: `prefix` is familiar to `user` from now on. */
void accounts_succeeded(struct accounts *a, const struct config *c, const char *user,
                        const struct addr *prefix, int64_t now);

/* ---- the support desk ---- */

/* Failures of `prefix` within auth_fail_window that were repeats. */
uint32_t accounts_repeats(struct accounts *a, const struct config *c, const struct addr *prefix,
                          int64_t now);
/* The account's state now; the lock in force is in st->lock_id etc. */
void accounts_status(struct accounts *a, const struct config *c, const char *name, int64_t now,
                     struct account_status *st);
/* Its locks, newest first, at most `limit` (0: all). False: unreadable. */
bool accounts_history(struct accounts *a, const char *name, int limit, accounts_lock_cb cb,
                      void *ctx);
/* Lifts the lock in force; false when there is none (or, in a cluster,
 * Redis cannot be reached: *err says which). *lifted: the lifted record. */
bool accounts_unlock(struct accounts *a, const struct config *c, const char *name, int64_t now,
                     const char *by, const char *why, struct account_lock *lifted,
                     const char **err);

/* ---- upkeep (the daemon's tick) ---- */

/* Ends the locks whose time is up (records them); cb (may be NULL) per lock. */
size_t accounts_expire(struct accounts *a, int64_t now, accounts_lock_cb cb, void *ctx);
/* Frees idle entries of the tables in memory. */
void accounts_sweep(struct accounts *a, const struct config *c, int64_t now);
/* Forgets old records: ended locks after history_retention, logins after
 * familiar_for (one node; Redis expires its keys itself). */
void accounts_prune(struct accounts *a, const struct config *c, int64_t now);

struct accounts_stats {
    struct account_stats accounts;
    struct repeat_stats repeats;
};
void accounts_stats(struct accounts *a, int64_t now, struct accounts_stats *out);

#endif
