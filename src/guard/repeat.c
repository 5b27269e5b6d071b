#include "guard/repeat.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"
#include "guard/account.h"

struct slot {
    uint64_t fp;         /* 0: free */
    int64_t last;        /* when it last failed */
    uint32_t repeats;    /* failures after the first, while remembered */
};

/* One prefix: in a hash chain and in the table's recency list. */
struct rentry {
    struct rentry *next;             /* hash chain */
    struct rentry *newer, *older;    /* recency list */
    struct addr key;
    struct slot s[REPEAT_SLOTS];
};

struct repeat {
    pthread_mutex_t mu;
    uint8_t key[REPEAT_KEY_LEN];
    struct rentry **b;
    size_t nb;                       /* a power of two */
    size_t n, max, evicted;
    struct rentry *newest, *oldest;
};

struct repeat *repeat_new(size_t max_prefixes)
{
    struct repeat *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->max = max_prefixes > 0 ? max_prefixes : 1;
    r->nb = 16;
    while (r->nb < r->max && r->nb < ((size_t)1 << 20))
        r->nb *= 2;
    r->b = calloc(r->nb, sizeof *r->b);
    if (r->b == NULL) {
        free(r);
        return NULL;
    }
    util_random(r->key, sizeof r->key);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void drop_all(struct repeat *r)
{
    for (struct rentry *e = r->newest, *next; e != NULL; e = next) {
        next = e->older;
        free(e);
    }
    memset(r->b, 0, r->nb * sizeof *r->b);
    r->newest = r->oldest = NULL;
    r->n = 0;
}

void repeat_free(struct repeat *r)
{
    if (r == NULL)
        return;
    drop_all(r);
    free(r->b);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void repeat_set_key(struct repeat *r, const uint8_t key[REPEAT_KEY_LEN])
{
    pthread_mutex_lock(&r->mu);
    if (memcmp(r->key, key, REPEAT_KEY_LEN) != 0) {
        /* Fingerprints under the old key would never match again. */
        memcpy(r->key, key, REPEAT_KEY_LEN);
        drop_all(r);
    }
    pthread_mutex_unlock(&r->mu);
}

uint64_t repeat_fingerprint(struct repeat *r, const char *user, const char *pass)
{
    /* The user is cut and lowercased as accounts are, and its length goes
     * first so that ("ab", "c") and ("a", "bc") differ. */
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(user, name))
        util_strlcpy(name, user, sizeof name);
    uint32_t ulen = (uint32_t)strlen(name);
    size_t plen = strlen(pass);
    size_t n = 4 + ulen + plen;
    unsigned char *msg = malloc(n);
    if (msg == NULL)
        abort();
    memcpy(msg, &ulen, 4);
    memcpy(msg + 4, name, ulen);
    memcpy(msg + 4 + ulen, pass, plen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint8_t key[REPEAT_KEY_LEN];
    pthread_mutex_lock(&r->mu);
    memcpy(key, r->key, sizeof key);
    pthread_mutex_unlock(&r->mu);
    if (HMAC(EVP_sha256(), key, sizeof key, msg, n, md, &mdlen) == NULL)
        abort();
    OPENSSL_cleanse(msg, n);
    OPENSSL_cleanse(key, sizeof key);
    free(msg);
    uint64_t fp;
    memcpy(&fp, md, sizeof fp);
    return fp != 0 ? fp : 1;   /* 0 marks a free slot */
}

/* The mutex is held in all that follows. */
static size_t bucket(const struct repeat *r, const struct addr *k)
{
    return (size_t)addr_hash(k) & (r->nb - 1);
}

static struct rentry *find(struct repeat *r, const struct addr *k)
{
    for (struct rentry *e = r->b[bucket(r, k)]; e != NULL; e = e->next)
        if (addr_equal(&e->key, k))
            return e;
    return NULL;
}

static void unlink_recency(struct repeat *r, struct rentry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        r->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        r->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void push_newest(struct repeat *r, struct rentry *e)
{
    e->older = r->newest;
    e->newer = NULL;
    if (r->newest != NULL)
        r->newest->newer = e;
    r->newest = e;
    if (r->oldest == NULL)
        r->oldest = e;
}

static void remove_entry(struct repeat *r, struct rentry *e)
{
    struct rentry **pp = &r->b[bucket(r, &e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    unlink_recency(r, e);
    r->n--;
    free(e);
}

static struct rentry *find_or_add(struct repeat *r, const struct addr *k)
{
    struct rentry *e = find(r, k);
    if (e != NULL) {
        unlink_recency(r, e);
        push_newest(r, e);
        return e;
    }
    if (r->n >= r->max) {
        remove_entry(r, r->oldest);
        r->evicted++;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->key = *k;
    size_t j = bucket(r, k);
    e->next = r->b[j];
    r->b[j] = e;
    push_newest(r, e);
    r->n++;
    return e;
}

static bool live(const struct slot *s, int64_t now, int64_t window_ms)
{
    return s->fp != 0 && now - s->last < window_ms;
}

bool repeat_check(struct repeat *r, const struct addr *prefix, uint64_t fp,
                  int64_t now, int64_t window_ms)
{
    pthread_mutex_lock(&r->mu);
    struct rentry *e = find_or_add(r, prefix);
    bool rep = false;
    if (e != NULL) {
        struct slot *use = NULL;
        for (size_t i = 0; i < REPEAT_SLOTS && use == NULL; i++)
            if (e->s[i].fp == fp && live(&e->s[i], now, window_ms))
                use = &e->s[i];
        if (use != NULL) {
            rep = true;
            use->repeats++;
        } else {
            /* A free or run-out slot, else the one that failed longest ago. */
            use = &e->s[0];
            for (size_t i = 0; i < REPEAT_SLOTS; i++) {
                if (!live(&e->s[i], now, window_ms)) {
                    use = &e->s[i];
                    break;
                }
                if (e->s[i].last < use->last)
                    use = &e->s[i];
            }
            *use = (struct slot){fp, now, 0};
        }
        use->last = now;
    }
    pthread_mutex_unlock(&r->mu);
    return rep;
}

uint32_t repeat_count(struct repeat *r, const struct addr *prefix, int64_t now,
                      int64_t window_ms)
{
    uint32_t n = 0;
    pthread_mutex_lock(&r->mu);
    struct rentry *e = find(r, prefix);
    for (size_t i = 0; e != NULL && i < REPEAT_SLOTS; i++)
        if (live(&e->s[i], now, window_ms))
            n += e->s[i].repeats;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void repeat_stats(struct repeat *r, struct repeat_stats *out)
{
    pthread_mutex_lock(&r->mu);
    out->prefixes = r->n;
    out->evicted = r->evicted;
    out->bytes = sizeof *r + r->nb * sizeof *r->b + r->n * sizeof(struct rentry);
    pthread_mutex_unlock(&r->mu);
}

size_t repeat_sweep(struct repeat *r, int64_t now, int64_t window_ms)
{
    size_t freed = 0;
    pthread_mutex_lock(&r->mu);
    /* Oldest first: an entry is touched at each failure, so once one is
     * still live, all newer ones are too. */
    while (r->oldest != NULL) {
        struct rentry *e = r->oldest;
        bool any = false;
        for (size_t i = 0; i < REPEAT_SLOTS && !any; i++)
            any = live(&e->s[i], now, window_ms);
        if (any)
            break;
        remove_entry(r, e);
        freed++;
    }
    pthread_mutex_unlock(&r->mu);
    return freed;
}
