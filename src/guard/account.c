#include "guard/account.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "base/rate.h"

struct familiar {
    struct addr prefix;
    int64_t last;                /* its latest login */
};

/* Which eviction list an entry is on: the ones that hold only failures go
 * first, then those that know their owner's addresses; locked ones never. */
enum { L_FAILS, L_FAMILIAR, L_LOCKED, NLISTS };

struct acct {
    struct acct *next;           /* hash chain */
    struct acct *newer, *older;  /* its list, by last use */
    uint64_t hash;
    struct rate fails;
    uint64_t lock_id;            /* 0: no lock in force */
    int64_t lock_started, lock_until;
    uint8_t list, lock_reason, nfam, capfam;
    struct familiar *fam;        /* most recent login first; NULL until one */
    char name[];
};

struct list {
    struct acct *newest, *oldest;
};

struct account_table {
    pthread_mutex_t mu;
    uint8_t key[32];             /* keys the name hash: names come from outside */
    struct acct **b;
    size_t nb;                   /* a power of two */
    size_t n, max, evicted, bytes;
    struct list lists[NLISTS];
    bool shared;                 /* another party decides (cluster mode) */
};

/* ---- names ---------------------------------------------------------- */

bool account_name_normalise(const char *in, char out[ACCOUNT_NAME_MAX])
{
    size_t n = strlen(in);
    if (n == 0 || n >= ACCOUNT_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a') : in[i];
    return true;
}

static const char *const reason_names[] = {"none", "account_failures", "manual"};
static const char *const state_names[] = {"locked", "lifted", "expired"};

const char *account_reason_name(enum account_reason r)
{
    return (size_t)r < ARRAY_LEN(reason_names) && r != 0 ? reason_names[r] : "account_failures";
}

bool account_reason_parse(const char *s, enum account_reason *out)
{
    for (size_t i = 1; i < ARRAY_LEN(reason_names); i++)
        if (strcmp(s, reason_names[i]) == 0)
            return *out = (enum account_reason)i, true;
    return false;
}

const char *lock_state_name(enum lock_state s)
{
    return (size_t)s < ARRAY_LEN(state_names) ? state_names[s] : "locked";
}

bool lock_state_parse(const char *s, enum lock_state *out)
{
    for (size_t i = 0; i < ARRAY_LEN(state_names); i++)
        if (strcmp(s, state_names[i]) == 0)
            return *out = (enum lock_state)i, true;
    return false;
}

/* ---- table ---------------------------------------------------------- */

struct account_table *account_new(size_t max_accounts)
{
    struct account_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->max = max_accounts > 0 ? max_accounts : 1;
    t->nb = 16;
    while (t->nb < t->max && t->nb < ((size_t)1 << 22))
        t->nb *= 2;
    t->b = calloc(t->nb, sizeof *t->b);
    if (t->b == NULL) {
        free(t);
        return NULL;
    }
    util_random(t->key, sizeof t->key);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void account_free(struct account_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nb; i++)
        for (struct acct *e = t->b[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e->fam);
            free(e);
        }
    free(t->b);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Keyed, so that nobody can choose names that all land in one chain. */
static uint64_t name_hash(const struct account_table *t, const char *name)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), t->key, sizeof t->key, (const unsigned char *)name, strlen(name),
             md, &mdlen) == NULL)
        abort();
    uint64_t h;
    memcpy(&h, md, sizeof h);
    return h;
}

/* The mutex is held in all that follows. */
static struct acct *find(struct account_table *t, const char *name, uint64_t h)
{
    for (struct acct *e = t->b[h & (t->nb - 1)]; e != NULL; e = e->next)
        if (e->hash == h && strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static void list_unlink(struct account_table *t, struct acct *e)
{
    struct list *l = &t->lists[e->list];
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        l->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        l->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void list_push(struct account_table *t, struct acct *e)
{
    struct list *l = &t->lists[e->list];
    e->older = l->newest;
    e->newer = NULL;
    if (l->newest != NULL)
        l->newest->newer = e;
    l->newest = e;
    if (l->oldest == NULL)
        l->oldest = e;
}

/* Files e as the newest of the list its state belongs on. */
static void touch(struct account_table *t, struct acct *e)
{
    list_unlink(t, e);
    e->list = e->lock_id != 0 ? L_LOCKED : e->nfam > 0 ? L_FAMILIAR : L_FAILS;
    list_push(t, e);
}

static size_t entry_bytes(const struct acct *e)
{
    return sizeof *e + strlen(e->name) + 1 + e->capfam * sizeof(struct familiar);
}

static void remove_entry(struct account_table *t, struct acct *e)
{
    struct acct **pp = &t->b[e->hash & (t->nb - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    list_unlink(t, e);
    t->n--;
    t->bytes -= entry_bytes(e);
    free(e->fam);
    free(e);
}

/* Makes room for one more entry; false when every entry is locked. */
static bool make_room(struct account_table *t)
{
    if (t->n < t->max)
        return true;
    struct acct *victim = t->lists[L_FAILS].oldest;
    if (victim == NULL)
        victim = t->lists[L_FAMILIAR].oldest;
    if (victim == NULL)
        return false;
    remove_entry(t, victim);
    t->evicted++;
    return true;
}

static struct acct *find_or_add(struct account_table *t, const char *name)
{
    uint64_t h = name_hash(t, name);
    struct acct *e = find(t, name, h);
    if (e != NULL || !make_room(t))
        return e;
    size_t len = strlen(name);
    e = calloc(1, sizeof *e + len + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->name, name, len + 1);
    e->hash = h;
    e->list = L_FAILS;
    size_t j = h & (t->nb - 1);
    e->next = t->b[j];
    t->b[j] = e;
    list_push(t, e);
    t->n++;
    t->bytes += entry_bytes(e);
    return e;
}

/* Looks `in` up by its normalised name; NULL when unknown or not a name. */
static struct acct *lookup(struct account_table *t, const char *in)
{
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(in, name))
        return NULL;
    return find(t, name, name_hash(t, name));
}

static struct acct *lookup_or_add(struct account_table *t, const char *in)
{
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(in, name))
        return NULL;
    return find_or_add(t, name);
}

static bool locked(const struct acct *e, int64_t now)
{
    return e->lock_id != 0 && e->lock_until > now;
}

static bool is_familiar(const struct acct *e, const struct config *c, const struct addr *p,
                        int64_t now)
{
    for (uint8_t i = 0; i < e->nfam; i++)
        if (addr_equal(&e->fam[i].prefix, p))
            return now - e->fam[i].last < c->familiar_for_ms;
    return false;
}

static uint32_t familiar_count(const struct acct *e, const struct config *c, int64_t now)
{
    uint32_t n = 0;
    for (uint8_t i = 0; i < e->nfam; i++)
        n += now - e->fam[i].last < c->familiar_for_ms;
    return n;
}

static uint64_t new_id(void)
{
    uint64_t id;
    do
        util_random(&id, sizeof id);
    while (id == 0);
    return id;
}

/* ---- decisions ------------------------------------------------------ */

bool account_may_try(struct account_table *t, const struct config *c, const char *name,
                     const struct addr *prefix, int64_t now)
{
    if (c->account_fail_window_ms == 0)
        return true;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup(t, name);
    bool ok = e == NULL || !locked(e, now) || is_familiar(e, c, prefix, now);
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static void lock_entry(struct acct *e, const struct config *c, enum account_reason why,
                       int64_t first, uint32_t events, int64_t now, struct account_lock *made)
{
    e->lock_id = new_id();
    e->lock_reason = (uint8_t)why;
    e->lock_started = now;
    e->lock_until = now + c->account_lock_ms;
    /* A lock resets the count: after it, counting starts afresh. */
    memset(&e->fails, 0, sizeof e->fails);

    memset(made, 0, sizeof *made);
    made->id = e->lock_id;
    util_strlcpy(made->account, e->name, sizeof made->account);
    made->reason = why;
    made->state = LOCK_ACTIVE;
    made->started_at = now;
    made->expires_at = e->lock_until;
    made->first_event_at = first;
    made->last_event_at = now;
    made->events = events;
}

bool account_fail(struct account_table *t, const struct config *c, const char *name,
                  int64_t now, struct account_lock *made)
{
    if (c->account_fail_window_ms == 0)
        return false;
    bool did = false;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup_or_add(t, name);
    if (e != NULL && !locked(e, now)) {
        uint32_t n = rate_add(&e->fails, now, c->account_fail_window_ms);
        if (!t->shared && n >= (uint32_t)c->account_fail_limit) {
            lock_entry(e, c, ACCOUNT_FAILURES, (int64_t)e->fails.first, n, now, made);
            did = true;
        }
        touch(t, e);
    }
    pthread_mutex_unlock(&t->mu);
    return did;
}

bool account_impose(struct account_table *t, const struct config *c, const char *name,
                    int64_t first_event, uint32_t events, int64_t now, struct account_lock *made)
{
    bool did = false;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup_or_add(t, name);
    if (e != NULL && !locked(e, now)) {
        lock_entry(e, c, ACCOUNT_FAILURES, first_event, events, now, made);
        touch(t, e);
        did = true;
    }
    pthread_mutex_unlock(&t->mu);
    return did;
}

int64_t account_familiar(struct account_table *t, const char *name,
                         const struct addr *prefix, int64_t at)
{
    int64_t before = 0;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup_or_add(t, name);
    if (e == NULL)
        goto out;
    uint8_t i = 0;
    while (i < e->nfam && !addr_equal(&e->fam[i].prefix, prefix))
        i++;
    if (i < e->nfam)
        before = e->fam[i].last;
    if (before >= at)
        goto out;                       /* knew a later login already */
    if (i == e->nfam) {
        if (e->nfam == e->capfam && e->capfam < ACCOUNT_FAMILIAR_MAX) {
            uint8_t cap = e->capfam ? (uint8_t)(e->capfam * 2) : 2;
            struct familiar *f = realloc(e->fam, cap * sizeof *f);
            if (f != NULL) {
                t->bytes += (cap - e->capfam) * sizeof *f;
                e->fam = f;
                e->capfam = cap;
            }
        }
        if (e->nfam < e->capfam)
            e->nfam++;
        else if (e->nfam == 0)
            goto out;                   /* no memory for even one */
        i = (uint8_t)(e->nfam - 1);     /* the new one, or the oldest login */
    }
    /* Keep most recent first: move the slot to where `at` belongs. */
    struct familiar f = {*prefix, at};
    while (i > 0 && e->fam[i - 1].last < at) {
        e->fam[i] = e->fam[i - 1];
        i--;
    }
    e->fam[i] = f;
    touch(t, e);
out:
    pthread_mutex_unlock(&t->mu);
    return before;
}

bool account_unlock(struct account_table *t, const char *name, int64_t now,
                    uint64_t *lifted_id)
{
    bool ok = false;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup(t, name);
    if (e != NULL && locked(e, now)) {
        *lifted_id = e->lock_id;
        e->lock_id = 0;
        e->lock_until = 0;
        touch(t, e);
        ok = true;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void account_install(struct account_table *t, const struct account_lock *l, int64_t now)
{
    if (l->state != LOCK_ACTIVE || l->expires_at <= now)
        return;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup_or_add(t, l->account);
    if (e != NULL && e->lock_id != l->id) {
        /* The later of two locks made at once by two nodes wins. */
        if (!locked(e, now) || l->started_at >= e->lock_started) {
            e->lock_id = l->id;
            e->lock_reason = (uint8_t)l->reason;
            e->lock_started = l->started_at;
            e->lock_until = l->expires_at;
            memset(&e->fails, 0, sizeof e->fails);
        }
        touch(t, e);
    }
    pthread_mutex_unlock(&t->mu);
}

void account_remove(struct account_table *t, const char *name, uint64_t id)
{
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup(t, name);
    if (e != NULL && e->lock_id == id) {
        e->lock_id = 0;
        e->lock_until = 0;
        touch(t, e);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t account_expire(struct account_table *t, int64_t now, account_expired_cb cb, void *ctx)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (struct acct *e = t->lists[L_LOCKED].newest, *older; e != NULL; e = older) {
        older = e->older;
        if (e->lock_until > now)
            continue;
        uint64_t id = e->lock_id;
        int64_t at = e->lock_until;
        e->lock_id = 0;
        e->lock_until = 0;
        touch(t, e);
        if (cb != NULL)
            cb(ctx, id, e->name, at);
        n++;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t account_sweep(struct account_table *t, const struct config *c, int64_t now)
{
    size_t freed = 0;
    pthread_mutex_lock(&t->mu);
    for (int l = L_FAILS; l <= L_FAMILIAR; l++) {
        for (struct acct *e = t->lists[l].oldest, *newer; e != NULL; e = newer) {
            newer = e->newer;
            if (rate_estimate(&e->fails, now, c->account_fail_window_ms) == 0 &&
                familiar_count(e, c, now) == 0) {
                remove_entry(t, e);
                freed++;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
    return freed;
}

void account_set_local_decisions(struct account_table *t, bool local)
{
    pthread_mutex_lock(&t->mu);
    t->shared = !local;
    pthread_mutex_unlock(&t->mu);
}

/* ---- views ---------------------------------------------------------- */

void account_status(struct account_table *t, const struct config *c, const char *name,
                    int64_t now, struct account_status *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup(t, name);
    if (e != NULL) {
        if (locked(e, now)) {
            out->locked = true;
            out->lock_id = e->lock_id;
            out->lock_reason = (enum account_reason)e->lock_reason;
            out->lock_started = e->lock_started;
            out->lock_until = e->lock_until;
        }
        if (c->account_fail_window_ms > 0)
            out->failures = rate_estimate(&e->fails, now, c->account_fail_window_ms);
        out->familiar = familiar_count(e, c, now);
    }
    pthread_mutex_unlock(&t->mu);
}

size_t account_familiar_list(struct account_table *t, const struct config *c, const char *name,
                             int64_t now, struct addr *out, int64_t *last_login, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    struct acct *e = lookup(t, name);
    for (uint8_t i = 0; e != NULL && i < e->nfam && n < max; i++)
        if (now - e->fam[i].last < c->familiar_for_ms) {
            out[n] = e->fam[i].prefix;
            if (last_login != NULL)
                last_login[n] = e->fam[i].last;
            n++;
        }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void account_locks(struct account_table *t, int64_t now, account_lock_cb cb, void *ctx)
{
    pthread_mutex_lock(&t->mu);
    for (struct acct *e = t->lists[L_LOCKED].newest; e != NULL; e = e->older) {
        if (!locked(e, now))
            continue;
        struct account_lock l = {.id = e->lock_id, .reason = (enum account_reason)e->lock_reason,
                                 .state = LOCK_ACTIVE, .started_at = e->lock_started,
                                 .expires_at = e->lock_until};
        util_strlcpy(l.account, e->name, sizeof l.account);
        cb(ctx, &l);
    }
    pthread_mutex_unlock(&t->mu);
}

void account_stats(struct account_table *t, int64_t now, struct account_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&t->mu);
    out->accounts = t->n;
    out->evicted = t->evicted;
    out->bytes = sizeof *t + t->nb * sizeof *t->b + t->bytes;
    for (struct acct *e = t->lists[L_LOCKED].newest; e != NULL; e = e->older)
        out->locks += locked(e, now);
    pthread_mutex_unlock(&t->mu);
}
