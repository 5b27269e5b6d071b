/* redis_priv: what the files of the Redis store share (redis.c: the
 * thread, the connections, the writes; redis_read.c: records and reads;
 * redis_lua.c: the scripts). Not for use outside src/store/redis*.c. */
#ifndef PORTCULLIS_REDIS_PRIV_H
#define PORTCULLIS_REDIS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/queue.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "base/pool.h"
#include "store/store.h"

#define PENDING_MAX 100000
#define BACKOFF_MAX_MS 5000
#define CALL_TIMEOUT_MS 3000
#define EVAL_ARGS_MAX 160     /* an IPv6 address and its 128 covering prefixes */

enum op { OP_PUT = STORE_PUT, OP_LIFT = STORE_LIFT, OP_EXPIRE = STORE_EXPIRE,
          OP_PRUNE = STORE_PRUNE, OP_COUNT };

struct item {
    STAILQ_ENTRY(item) link;   /* on the pending list */
    struct redis_store *r;     /* while posted to the store's thread */
    enum op op;
    struct guard_block b;      /* PUT; id, lifted_* for LIFT/EXPIRE; lifted_at = before for PRUNE */
    bool has_full;             /* LIFT/EXPIRE: the whole record, already lifted/expired */
    struct guard_block full;
    enum guard_reason why;     /* COUNT */
    long limit;
    int64_t window;
};

/* A record this node knows to be in force: written back if Redis loses it. */
struct known {
    struct known *next;
    struct guard_block b;
};

struct redis_store {
    struct store base;
    struct store_hooks hooks;
    char host[256];
    int port;                  /* 0: unix socket in host */
    char password[256];
    long db;
    char pfx[128];
    char chan[160];

    pthread_t thread;
    struct event_base *evb;
    struct pool_mailbox *mb;
    struct event *retry;
    struct event *recheck;     /* reloads the blocks in force after a (re)connect */
    int rechecks;
    redisAsyncContext *ac, *sub;
    atomic_bool up;            /* connected, synchronised and subscribed */
    int backoff_ms;
    bool down_logged;
    bool stopping;

    STAILQ_HEAD(, item) pending;   /* own writes while down */
    size_t npend;
    struct known *known;       /* blocks in force this node has seen */
};

/* argv for the record's fields; `bufs` holds the numbers' text. */
struct fields {
    const char *argv[40];
    size_t n;
    char bufs[10][32];
    char prefix[ADDR_STRLEN], id[17];
};

/* redis_lua.c */
extern const char lua_put[];
extern const char lua_writeback[];
extern const char lua_history_of[];
extern const char lua_counters[];
extern const char lua_lift[];
extern const char lua_count[];
extern const char lua_fetch[];
extern const char lua_load[];
extern const char lua_active[];
extern const char lua_history[];
extern const char lua_prune[];

/* redis_read.c */
void fields_of(struct fields *f, const struct guard_block *b);
bool block_of(const redisReply *h, struct guard_block *b);
bool in_force(const struct guard_block *b, int64_t now);
bool rs_load(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx);
bool rs_history(struct store *s, const struct addr *prefix, int limit,
                store_block_cb cb, void *ctx);
bool rs_counters(struct store *s, const struct config *cfg, const struct addr *prefix,
                 struct store_counts *out);
bool rs_get(struct store *s, uint64_t id, struct guard_block *out);

/* redis.c */
void key(const struct redis_store *r, char *out, size_t len, const char *what);
int eval(struct redis_store *r, redisAsyncContext *ac, redisCallbackFn *cb, void *priv,
         const char *script, int nkeys, const char **keys, int nargs, const char **args);
void count_key(const struct redis_store *r, enum guard_reason why, const struct addr *prefix,
               char *out, size_t len);

#endif
