/* index: the accept-time block check. One compact open-addressed table of
 * the prefixes blocked now (prefix -> until), of every length and both
 * families, apart from the guard's counting entries so that the check reads
 * a few dozen bytes of one table instead of walking entries with counters.
 *
 * Readers take no lock: a sequence count tells them when a writer changed
 * what they read (they read again), and a per-thread reader count tells a
 * writer when nobody can still be reading a table it replaced (so it can
 * free it). Writers are serialised by the index's own mutex. */
#ifndef PORTCULLIS_GUARD_INDEX_H
#define PORTCULLIS_GUARD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"

struct gindex;

struct gindex *gindex_new(void);
void gindex_free(struct gindex *ix);

/* Puts `prefix` (already cut) in force until `until` (INT64_MAX:
 * permanent), replacing what was there. False only when out of memory. */
bool gindex_put(struct gindex *ix, const struct addr *prefix, int64_t until);
/* Takes `prefix` out. False if it was not there. */
bool gindex_del(struct gindex *ix, const struct addr *prefix);

/* Is a block in force over `client` at `now`, at any prefix length in use?
 * On a hit, *hit (may be NULL) is the blocked prefix and *until its end:
 * the longest one, or with `widest` the shortest. */
bool gindex_lookup(struct gindex *ix, const struct addr *client, int64_t now, bool widest,
                   struct addr *hit, int64_t *until);

struct gindex_stats {
    size_t live;                 /* prefixes in the table */
    size_t tombstones;
    size_t slots;
    size_t bytes;                /* of the slot array */
    size_t resizes;
};
void gindex_stats(struct gindex *ix, struct gindex_stats *out);

#endif
