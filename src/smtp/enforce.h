/* enforce: the one place where a block begins or ends here. Whoever
 * decides it (the guard on a session's offence, the cluster's count, an
 * operator, the clock) comes through one of these functions, which update
 * the guard's table, record the change in the store and log it with the
 * same fields (docs/LOGS.md). Open sessions of a newly blocked prefix end
 * at their next command: the guard's epoch moved (session.c, blocked_now). */
#ifndef PORTCULLIS_ENFORCE_H
#define PORTCULLIS_ENFORCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/config.h"
#include "guard/guard.h"
#include "store/store.h"
#include "smtp/stats.h"

struct enforce {
    struct guard *guard;
    struct store *store;
    struct stats *stats;      /* blocks made, by reason */
};

/* The guard imposed `made` (guard_offend, guard_connect and guard_impose
 * put it in the table themselves); `session` may be NULL. An automatic
 * block may complete an escalation (SPEC §4): the wider block is made
 * here too, the same way. */
void enforce_made(const struct enforce *e, const struct config *c,
                  const struct guard_block *made, const char *session);
/* An operator's block of `prefix` (already cut) for duration_ms (< 0:
 * permanent), replacing one in force there. False: out of memory. */
bool enforce_block(const struct enforce *e, const struct config *c, const struct addr *prefix,
                   int64_t duration_ms, int64_t now, const char *by, const char *why,
                   struct guard_block *made);
/* An operator's lift of the block on *prefix, or of a wider one covering
 * it (then *prefix becomes that one's). False: not blocked. The 554s to
 * it not yet logged go out with it (as at expiry). */
bool enforce_unblock(const struct enforce *e, const struct config *c, struct addr *prefix,
                     int64_t now, const char *by, const char *why, uint64_t *id);
/* The clock: ends the blocks whose time is up. */
void enforce_expire(const struct enforce *e, int64_t now);

#endif
