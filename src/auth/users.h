/* users: the passwd-style users file (`address:crypt-hash` per line),
 * loaded into an immutable, reference-counted table. A reload builds a new
 * one; sessions in flight keep the one they looked up. */
#ifndef PORTCULLIS_USERS_H
#define PORTCULLIS_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct users;

/* NULL on error, with "FILE:LINE: problem" in err. */
struct users *users_load(const char *path, char *err, size_t errlen);
struct users *users_ref(struct users *u);
void users_unref(struct users *u);
size_t users_count(const struct users *u);
/* The hash of `name` (ASCII case-insensitive), or NULL. */
const char *users_find(const struct users *u, const char *name);
/* Is the demo user of etc/users present? (the daemon warns off loopback) */
bool users_has_demo(const struct users *u);

/* Checks a password. Blocking (runs the hash function): call it on the pool.
 * An unknown user is checked against a hash of the same kind as the real
 * ones, so it costs the same time as a wrong password. */
bool users_verify(const struct users *u, const char *name, const char *pass);

/* The cache of recent successful checks (docs/SECURITY.md): a keyed hash
 * (HMAC-SHA256 with a key made at load) of user and password, remembered
 * for `ttl_ms`. Only successes are cached, so a guesser always pays for
 * the hash function. Cheap enough for an event loop; thread-safe. A reload
 * builds a new table, which empties the cache. */
bool users_cache_hit(struct users *u, const char *name, const char *pass, int64_t now_ms);
void users_cache_add(struct users *u, const char *name, const char *pass, int64_t now_ms,
                     int64_t ttl_ms);

/* A new yescrypt hash of `pass` for the users file; false on failure. */
bool users_hash_new(const char *pass, char *out, size_t outlen);

#endif
