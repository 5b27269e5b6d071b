#include "store/store.h"

#include <stdio.h>
#include "base/util.h"

/* One row per backend; a new one is a file and a line here. */
static const struct store_backend_row *const backends[] = {&store_sqlite, &store_redis};

struct store *store_open(const struct config *c, const struct store_hooks *h,
                         char *err, size_t errlen)
{
    for (size_t i = 0; i < ARRAY_LEN(backends); i++)
        if (backends[i]->kind == c->store)
            return backends[i]->open(c, h, err, errlen);
    snprintf(err, errlen, "[store] backend: not built in");
    return NULL;
}

bool store_load(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx)
{
    return s->ops->load(s, since, now, cb, ctx);
}

bool store_history(struct store *s, const struct addr *prefix, int limit,
                   store_block_cb cb, void *ctx)
{
    return s->ops->history(s, prefix, limit, cb, ctx);
}

bool store_get(struct store *s, uint64_t id, struct guard_block *out)
{
    return s->ops->get(s, id, out);
}

void store_close(struct store *s)
{
    s->ops->close(s);
}

bool store_counts(const struct store *s)
{
    return s->ops->count != NULL;
}

void store_count(struct store *s, const struct addr *prefix, enum guard_reason why,
                 long limit, int64_t window_ms)
{
    if (s->ops->count != NULL)
        s->ops->count(s, prefix, why, limit, window_ms);
}

void store_put(struct store *s, const struct guard_block *b)
{
    struct store_write w = {STORE_PUT, *b};
    s->ops->write(s, &w);
}

void store_lift(struct store *s, uint64_t id, int64_t at, const char *by, const char *why)
{
    struct store_write w = {.op = STORE_LIFT, .b = {.id = id, .lifted_at = at}};
    util_strlcpy(w.b.lifted_by, by ? by : "", sizeof w.b.lifted_by);
    util_strlcpy(w.b.lift_reason, why ? why : "", sizeof w.b.lift_reason);
    s->ops->write(s, &w);
}

void store_expire(struct store *s, uint64_t id, int64_t at)
{
    struct store_write w = {.op = STORE_EXPIRE, .b = {.id = id, .lifted_at = at}};
    s->ops->write(s, &w);
}

void store_prune(struct store *s, int64_t before)
{
    struct store_write w = {.op = STORE_PRUNE, .b = {.lifted_at = before}};
    s->ops->write(s, &w);
}
