#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

struct store *store_open(const struct config *c, const struct store_hooks *h,
                         char *err, size_t errlen)
{
    return c->store == STORE_REDIS ? store_redis_open(c, h, err, errlen)
                                   : store_sqlite_open(c, err, errlen);
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

void store_id_format(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016llX", (unsigned long long)id);
}

bool store_id_parse(const char *s, uint64_t *out)
{
    if (strlen(s) != 16)
        return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 16);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}
