/* repeat: is a failed AUTH the same user and password as an earlier failure
 * of the same prefix? A mail program or contact form retrying one stale
 * password forever is not guessing: a guesser must vary the password.
 *
 * Only a fingerprint is kept: a keyed hash (HMAC-SHA256 under a secret
 * made at start, or the cluster's shared one, cut to 64 bits) of the
 * normalised user and the password. Without the key the fingerprints say
 * nothing about the passwords; with it, 64 bits make a false "repeat"
 * between two different passwords of one prefix a 2^-60 event.
 *
 * Bounded: REPEAT_SLOTS fingerprints per prefix (the oldest goes; a prefix
 * with more distinct failures than auth_fail_limit is blocked anyway), and
 * `max_prefixes` prefixes (the least recently failing go). Forgetting is
 * always safe: a forgotten stale password counts once more. Thread-safe
 * (one mutex: this is touched once per failed AUTH, never per connection).
 * Time is a parameter. */
#ifndef PORTCULLIS_REPEAT_H
#define PORTCULLIS_REPEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"

#define REPEAT_SLOTS 8
#define REPEAT_KEY_LEN 32
#define REPEAT_MAX_PREFIXES 65536

struct repeat;

/* A table with a fresh random key. */
struct repeat *repeat_new(size_t max_prefixes);
void repeat_free(struct repeat *r);
/* Cluster mode: every node must hash with the same key, so that a retry
 * sent to another node is still a repeat. Forgets what was hashed before. */
void repeat_set_key(struct repeat *r, const uint8_t key[REPEAT_KEY_LEN]);

/* The fingerprint of (user, password); `user` is compared without case. */
uint64_t repeat_fingerprint(struct repeat *r, const char *user, const char *pass);

/* A failed AUTH of `prefix` with fingerprint fp at `now`: true when the same
 * fingerprint failed from this prefix within window_ms before (then the
 * failure is a repeat: it counts toward nothing). Either way the
 * fingerprint is remembered as failing at `now`, so a retry every few
 * minutes stays a repeat for as long as it goes on. */
bool repeat_check(struct repeat *r, const struct addr *prefix, uint64_t fp,
                  int64_t now, int64_t window_ms);

/* Repeats of `prefix` whose fingerprint failed within window_ms of now:
 * what status shows as "repeats". */
uint32_t repeat_count(struct repeat *r, const struct addr *prefix, int64_t now,
                      int64_t window_ms);

struct repeat_stats {
    size_t prefixes;     /* tracked now */
    size_t evicted;      /* prefixes forgotten for room, since start */
    size_t bytes;        /* memory of the table */
};
void repeat_stats(struct repeat *r, struct repeat_stats *out);

/* Forgets prefixes whose every fingerprint is older than window_ms. */
size_t repeat_sweep(struct repeat *r, int64_t now, int64_t window_ms);

#endif
