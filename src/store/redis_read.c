/* redis_read: a block record in Redis (a hash of the fields of struct
 * guard_block), and the reads that wait for Redis (the control socket's,
 * the start-up load): posted to the store's thread, answered there. */
#include "store/redis_priv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/util.h"

static void fields_add(struct fields *f, const char *k, const char *v)
{
    f->argv[f->n++] = k;
    f->argv[f->n++] = v;
}

static const char *num(struct fields *f, int i, long long v)
{
    snprintf(f->bufs[i], sizeof f->bufs[i], "%lld", v);
    return f->bufs[i];
}

void fields_of(struct fields *f, const struct guard_block *b)
{
    f->n = 0;
    store_id_format(b->id, f->id);
    addr_format(&b->prefix, true, f->prefix);
    fields_add(f, "id", f->id);
    fields_add(f, "prefix", f->prefix);
    fields_add(f, "reason", guard_reason_name(b->reason));
    fields_add(f, "state", block_state_name(b->state));
    fields_add(f, "started_at", num(f, 0, b->started_at));
    fields_add(f, "expires_at", num(f, 1, b->expires_at));
    fields_add(f, "lifted_at", num(f, 2, b->lifted_at));
    fields_add(f, "lifted_by", b->lifted_by);
    fields_add(f, "lift_reason", b->lift_reason);
    fields_add(f, "first_event_at", num(f, 3, b->first_event_at));
    fields_add(f, "last_event_at", num(f, 4, b->last_event_at));
    fields_add(f, "events", num(f, 5, b->events));
    fields_add(f, "node", b->node);
    fields_add(f, "note", b->note);
}

bool block_of(const redisReply *h, struct guard_block *b)
{
    memset(b, 0, sizeof *b);
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements % 2 != 0)
        return false;
    bool have_id = false, have_prefix = false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        const char *key = k->str, *val = v->str;
        long long n = strtoll(val, NULL, 10);
        if (strcmp(key, "id") == 0)
            have_id = store_id_parse(val, &b->id);
        else if (strcmp(key, "prefix") == 0)
            have_prefix = addr_parse(val, true, &b->prefix);
        else if (strcmp(key, "reason") == 0)
            guard_reason_parse(val, &b->reason);
        else if (strcmp(key, "state") == 0)
            block_state_parse(val, &b->state);
        else if (strcmp(key, "started_at") == 0)
            b->started_at = n;
        else if (strcmp(key, "expires_at") == 0)
            b->expires_at = n;
        else if (strcmp(key, "lifted_at") == 0)
            b->lifted_at = n;
        else if (strcmp(key, "lifted_by") == 0)
            util_strlcpy(b->lifted_by, val, sizeof b->lifted_by);
        else if (strcmp(key, "lift_reason") == 0)
            util_strlcpy(b->lift_reason, val, sizeof b->lift_reason);
        else if (strcmp(key, "first_event_at") == 0)
            b->first_event_at = n;
        else if (strcmp(key, "last_event_at") == 0)
            b->last_event_at = n;
        else if (strcmp(key, "events") == 0)
            b->events = (uint32_t)n;
        else if (strcmp(key, "node") == 0)
            util_strlcpy(b->node, val, sizeof b->node);
        else if (strcmp(key, "note") == 0)
            util_strlcpy(b->note, val, sizeof b->note);
    }
    return have_id && have_prefix && b->reason != GUARD_NONE;
}

bool in_force(const struct guard_block *b, int64_t now)
{
    return (b->state == BLOCK_ACTIVE || b->state == BLOCK_PERMANENT) &&
           (b->expires_at == 0 || b->expires_at > now);
}

/* ---- reads that wait (control socket, start-up) ------------------------ */

struct call {
    struct redis_store *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, ok, too_long;
    /* the request: keys and args point into text, which the call owns,
     * since a call that times out outlives the caller that made it */
    const char *script;
    const char *keys[3];
    int nkeys;
    const char *args[EVAL_ARGS_MAX - 8];
    int nargs;
    size_t used;
    char text[8192];
    /* the answer: records, or numbers */
    struct guard_block *v;
    size_t n;
    long long nums[3];
    size_t nnums;
};

static struct call *call_new(const char *script)
{
    struct call *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->script = script;
    return c;
}

static void call_free(struct call *c)
{
    free(c->v);
    free(c);
}

/* A copy of t in the call's own text; "" (and the call refused) if full. */
static const char *call_text(struct call *c, const char *t)
{
    size_t n = strlen(t) + 1;
    if (n > sizeof c->text - c->used) {
        c->too_long = true;
        return "";
    }
    char *at = memcpy(c->text + c->used, t, n);
    c->used += n;
    return at;
}

static void call_key(struct call *c, const char *t)
{
    if (c->nkeys < (int)ARRAY_LEN(c->keys))
        c->keys[c->nkeys++] = call_text(c, t);
    else
        c->too_long = true;
}

static void call_arg(struct call *c, const char *t)
{
    if (c->nargs < (int)ARRAY_LEN(c->args))
        c->args[c->nargs++] = call_text(c, t);
    else
        c->too_long = true;
}

static void call_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct call *c = priv;
    redisReply *rep = reply;
    pthread_mutex_lock(&c->mu);
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY) {
        c->v = calloc(rep->elements + 1, sizeof *c->v);
        for (size_t i = 0; c->v != NULL && i < rep->elements; i++) {
            const redisReply *e = rep->element[i];
            if (e->type == REDIS_REPLY_INTEGER && c->nnums < ARRAY_LEN(c->nums))
                c->nums[c->nnums++] = e->integer;
            else if (block_of(e, &c->v[c->n]))
                c->n++;
        }
        c->ok = c->v != NULL;
    }
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void call_run(void *arg)
{
    struct call *c = arg;
    struct redis_store *r = c->r;
    if (!atomic_load(&r->up) || r->ac == NULL ||
        eval(r, r->ac, call_reply, c, c->script, c->nkeys, c->keys, c->nargs, c->args) != REDIS_OK) {
        pthread_mutex_lock(&c->mu);
        c->done = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* Runs the script on the store thread and waits for its records. On
 * false the call is gone: freed, or left to a reply that may still come
 * (freeing it then would risk a write into freed memory). */
static bool call_wait(struct redis_store *r, struct call *c)
{
    if (c->too_long) {
        call_free(c);
        return false;
    }
    c->r = r;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pool_post(r->mb, call_run, c);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CALL_TIMEOUT_MS / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    bool done = c->done;
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return false;
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    bool ok = c->ok;
    if (!ok)
        call_free(c);
    return ok;
}

bool rs_load(struct store *s, int64_t since, int64_t now, store_block_cb cb, void *ctx)
{
    (void)s;
    (void)since;
    (void)now;
    (void)cb;
    (void)ctx;
    /* The store thread loads everything itself each time it (re)connects
     * and hands it to hooks.installed; nothing to do at start. */
    return true;
}

bool rs_history(struct store *s, const struct addr *prefix, int limit,
                       store_block_cb cb, void *ctx)
{
    struct redis_store *r = (struct redis_store *)s;
    int width = prefix->family == AF_INET ? 32 : 128;
    struct call *c = prefix->bits < width ? call_new(lua_history) : call_new(lua_history_of);
    if (c == NULL)
        return false;
    if (prefix->bits < width) {
        /* Blocks inside a wider prefix are not indexed by it: read all. */
        char kt[160];
        key(r, kt, sizeof kt, "bytime");
        call_key(c, kt);
        call_arg(c, r->pfx);
    } else {
        /* The address and every prefix covering it, from the index. */
        char lim[16], text[ADDR_STRLEN];
        snprintf(lim, sizeof lim, "%d", limit);
        call_arg(c, r->pfx);
        call_arg(c, lim);
        for (int bits = prefix->bits; bits >= 0; bits--) {
            struct addr a = *prefix;
            addr_cut(&a, bits);
            addr_format(&a, true, text);
            call_arg(c, text);
        }
    }
    if (!call_wait(r, c))
        return false;
    int n = 0;
    for (size_t i = 0; i < c->n && (limit == 0 || n < limit); i++) {
        const struct guard_block *b = &c->v[i];
        if (b->prefix.family == prefix->family &&
            (addr_in(&b->prefix, prefix) || addr_in(prefix, &b->prefix))) {
            cb(ctx, b);
            n++;
        }
    }
    call_free(c);
    return true;
}

bool rs_counters(struct store *s, const struct config *cfg, const struct addr *prefix,
                 struct store_counts *out)
{
    struct redis_store *r = (struct redis_store *)s;
    static const enum guard_reason kinds[3] = {GUARD_AUTH_FAILURES, GUARD_UNAUTH_ATTEMPTS,
                                               GUARD_CONN_RATE};
    struct call *c = call_new(lua_counters);
    if (c == NULL)
        return false;
    char k[256], win[24];
    for (int i = 0; i < 3; i++) {
        count_key(r, kinds[i], prefix, k, sizeof k);
        call_key(c, k);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(win, sizeof win, "%lld", (long long)guard_window_ms(cfg, kinds[i]));
        call_arg(c, win);
    }
    if (!call_wait(r, c))
        return false;
    bool ok = c->nnums == 3;
    if (ok)
        *out = (struct store_counts){(uint32_t)c->nums[0], (uint32_t)c->nums[1],
                                     (uint32_t)c->nums[2]};
    call_free(c);
    return ok;
}

bool rs_get(struct store *s, uint64_t id, struct guard_block *out)
{
    struct redis_store *r = (struct redis_store *)s;
    char hex[17];
    store_id_format(id, hex);
    struct call *c = call_new(lua_fetch);
    if (c == NULL)
        return false;
    call_arg(c, r->pfx);
    call_arg(c, hex);
    if (!call_wait(r, c))
        return false;
    bool ok = c->n == 1;
    if (ok)
        *out = c->v[0];
    call_free(c);
    return ok;
}
