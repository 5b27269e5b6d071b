/* The two backends behind accounts.h; only accounts.c uses them. */
#ifndef PORTCULLIS_ACCOUNTS_INT_H
#define PORTCULLIS_ACCOUNTS_INT_H

#include "store/accounts.h"

/* ---- SQLite: one node. Writes are queued to a thread of its own (a
 * worker never waits on the disk); reads wait for the writes before them. */
struct acc_sqlite;
struct acc_sqlite *acc_sqlite_open(const char *path, char *err, size_t errlen);
void acc_sqlite_close(struct acc_sqlite *s);
void acc_sqlite_put(struct acc_sqlite *s, const struct account_lock *l);
void acc_sqlite_lift(struct acc_sqlite *s, uint64_t id, int64_t at, const char *by,
                     const char *why);
void acc_sqlite_expire(struct acc_sqlite *s, uint64_t id, int64_t at);
void acc_sqlite_familiar(struct acc_sqlite *s, const char *name, const struct addr *p, int64_t at);
/* Forgets ended locks that ended before `locks`, logins before `logins`. */
void acc_sqlite_prune(struct acc_sqlite *s, int64_t locks, int64_t logins);
/* Locks in force (those that ran out meanwhile are marked expired first)
 * and logins since `logins`, most recent first. */
typedef void (*acc_familiar_cb)(void *ctx, const char *name, const struct addr *p, int64_t at);
bool acc_sqlite_load(struct acc_sqlite *s, int64_t now, int64_t logins,
                     accounts_lock_cb lock_cb, acc_familiar_cb fam_cb, void *ctx);
bool acc_sqlite_history(struct acc_sqlite *s, const char *name, int limit,
                        accounts_lock_cb cb, void *ctx);

/* ---- Redis: the cluster. Synchronous calls with a short timeout (the
 * caller is a pool thread or the control socket); -1 / false when Redis
 * cannot be asked, and then the caller decides locally. */
struct acc_redis;
struct acc_redis *acc_redis_open(const struct config *c, char *err, size_t errlen);
void acc_redis_close(struct acc_redis *r);
/* The cluster's repeat key, made by whichever node asks first. */
bool acc_redis_repeat_key(struct acc_redis *r, uint8_t key[32]);
/* 1: may try, no lock; 2: may try, locked but familiar (*last_login: that
 * prefix's latest login); 0: locked and prefix unfamiliar (*lock filled);
 * -1. */
int acc_redis_may_try(struct acc_redis *r, const struct config *c, const char *name,
                      const struct addr *prefix, int64_t now, struct account_lock *lock,
                      int64_t *last_login);
/* 1: fingerprint fp failed from prefix within the window; 0: it did not; -1. */
int acc_redis_repeat(struct acc_redis *r, const struct config *c, const struct addr *prefix,
                     uint64_t fp, int64_t now);
/* Counts a failure of `name`; 1: this one locked it (*made, recorded);
 * 0: counted (or a lock is in force); -1. */
int acc_redis_fail(struct acc_redis *r, const struct config *c, const char *name, int64_t now,
                   const char *node, struct account_lock *made);
bool acc_redis_familiar(struct acc_redis *r, const struct config *c, const char *name,
                        const struct addr *prefix, int64_t now);
/* Writes a lock made here while Redis was away, unless one is in force. */
bool acc_redis_put(struct acc_redis *r, const struct account_lock *l);
/* 1: lifted (*lifted filled); 0: none in force; -1. */
int acc_redis_unlock(struct acc_redis *r, const char *name, int64_t now, const char *by,
                     const char *why, struct account_lock *lifted);
bool acc_redis_status(struct acc_redis *r, const struct config *c, const char *name,
                      int64_t now, struct account_status *st);
bool acc_redis_history(struct acc_redis *r, const char *name, int limit,
                       accounts_lock_cb cb, void *ctx);
/* Repeats of `prefix` in the window, summed over the cluster; -1. */
long acc_redis_repeats(struct acc_redis *r, const struct config *c, const struct addr *prefix,
                       int64_t now);

#endif
