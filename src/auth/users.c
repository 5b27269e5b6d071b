#include "auth/users.h"

#include <crypt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "base/util.h"

struct user {
    char *name;
    char *hash;
};

#define CACHE_SLOTS 4096

struct cache_slot {
    unsigned char mac[32];
    int64_t expires;
};

struct users {
    atomic_int refs;
    size_t n;
    struct user *v;      /* sorted by name, case-insensitive */
    char *dummy;         /* burned for unknown users */
    pthread_mutex_t cache_mu;
    unsigned char cache_key[32];
    struct cache_slot *cache;   /* CACHE_SLOTS, allocated on first use */
};

#define DEMO_USER "demo@example.test"

static int cmp_user(const void *a, const void *b)
{
    return strcasecmp(((const struct user *)a)->name, ((const struct user *)b)->name);
}

static void users_free(struct users *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].name);
        OPENSSL_cleanse(u->v[i].hash, strlen(u->v[i].hash));
        free(u->v[i].hash);
    }
    free(u->v);
    free(u->dummy);
    if (u->cache != NULL)
        OPENSSL_cleanse(u->cache, CACHE_SLOTS * sizeof *u->cache);
    free(u->cache);
    OPENSSL_cleanse(u->cache_key, sizeof u->cache_key);
    pthread_mutex_destroy(&u->cache_mu);
    free(u);
}

/* A hash to verify unknown users against: the first user's setting (same
 * method and cost) with a random password, or a fresh yescrypt one. */
static char *make_dummy(const struct users *u)
{
    unsigned char rnd[16];
    char pw[40];
    util_random(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    const char *s = u->n > 0 ? u->v[0].hash : NULL;
    if (s == NULL && crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) != NULL)
        s = setting;
    if (s == NULL)
        return NULL;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL)
        return NULL;
    char *h = crypt_rn(pw, s, cd, sizeof *cd);
    char *out = h != NULL && h[0] != '*' ? strdup(h) : NULL;
    free(cd);
    return out;
}

struct users *users_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        return NULL;
    }
    struct users *u = calloc(1, sizeof *u);
    if (u == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&u->refs, 1);
    pthread_mutex_init(&u->cache_mu, NULL);
    util_random(u->cache_key, sizeof u->cache_key);
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    int lineno = 0;
    bool ok = true;
    while (ok && getline(&line, &linecap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *colon = strchr(p, ':');
        if (colon == NULL || colon == p || colon[1] == '\0' || strchr(colon + 1, ':') != NULL ||
            strchr(p, ' ') != NULL) {
            snprintf(err, errlen, "%s:%d: expected 'address:hash'", path, lineno);
            ok = false;
            break;
        }
        *colon = '\0';
        if (colon[1] != '$') {
            snprintf(err, errlen, "%s:%d: %s: the hash is not in a crypt(5) format ($y$, $2b$, $6$ ...)",
                     path, lineno, p);
            ok = false;
            break;
        }
        if (u->n == cap) {
            cap = cap ? cap * 2 : 16;
            struct user *v = realloc(u->v, cap * sizeof *v);
            if (v == NULL) {
                snprintf(err, errlen, "out of memory");
                ok = false;
                break;
            }
            u->v = v;
        }
        u->v[u->n].name = strdup(p);
        u->v[u->n].hash = strdup(colon + 1);
        u->n++;
    }
    if (line != NULL) {
        OPENSSL_cleanse(line, linecap);
        free(line);
    }
    fclose(f);
    if (ok && u->n > 0) {
        /* (qsort of an empty file's NULL array is undefined, UBSan says) */
        qsort(u->v, u->n, sizeof *u->v, cmp_user);
        for (size_t i = 1; i < u->n; i++)
            if (strcasecmp(u->v[i - 1].name, u->v[i].name) == 0) {
                snprintf(err, errlen, "%s: %s: listed twice", path, u->v[i].name);
                ok = false;
                break;
            }
    }
    if (ok && (u->dummy = make_dummy(u)) == NULL) {
        snprintf(err, errlen, "%s: the first user's hash is not one this system's crypt knows", path);
        ok = false;
    }
    if (!ok) {
        users_free(u);
        return NULL;
    }
    return u;
}

struct users *users_ref(struct users *u)
{
    atomic_fetch_add(&u->refs, 1);
    return u;
}

void users_unref(struct users *u)
{
    if (u != NULL && atomic_fetch_sub(&u->refs, 1) == 1)
        users_free(u);
}

size_t users_count(const struct users *u)
{
    return u->n;
}

const char *users_find(const struct users *u, const char *name)
{
    if (u->n == 0)
        return NULL;      /* an empty file has no array: bsearch must not see NULL */
    struct user key = {.name = (char *)name};
    const struct user *hit = bsearch(&key, u->v, u->n, sizeof *u->v, cmp_user);
    return hit ? hit->hash : NULL;
}

bool users_has_demo(const struct users *u)
{
    return users_find(u, DEMO_USER) != NULL;
}

bool users_verify(const struct users *u, const char *name, const char *pass)
{
    /* crypt_data is large (32 KiB); one per pool thread. */
    static _Thread_local struct crypt_data cd;
    const char *want = users_find(u, name);
    const char *setting = want != NULL ? want : u->dummy;
    memset(&cd, 0, sizeof cd);
    const char *got = crypt_rn(pass, setting, &cd, sizeof cd);
    bool ok = want != NULL && got != NULL && got[0] != '*' && strlen(got) == strlen(want) &&
              CRYPTO_memcmp(got, want, strlen(want)) == 0;
    OPENSSL_cleanse(&cd, sizeof cd);
    return ok;
}

static void cache_mac(const struct users *u, const char *name, const char *pass,
                      unsigned char mac[32])
{
    /* The NUL between them keeps ("ab","c") and ("a","bc") apart; the name
     * is folded like the lookup folds it. */
    unsigned char buf[512 + 1024 + 2];
    size_t nl = strlen(name), pl = strlen(pass);
    if (nl > 512)
        nl = 512;
    if (pl > 1024)
        pl = 1024;
    for (size_t i = 0; i < nl; i++)
        buf[i] = (unsigned char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    buf[nl] = '\0';
    memcpy(buf + nl + 1, pass, pl);
    unsigned int len = 32;
    HMAC(EVP_sha256(), u->cache_key, sizeof u->cache_key, buf, nl + 1 + pl, mac, &len);
    OPENSSL_cleanse(buf, sizeof buf);
}

static size_t cache_slot_of(const unsigned char mac[32])
{
    uint64_t v;
    memcpy(&v, mac, sizeof v);
    return (size_t)(v % CACHE_SLOTS);
}

bool users_cache_hit(struct users *u, const char *name, const char *pass, int64_t now_ms)
{
    unsigned char mac[32];
    cache_mac(u, name, pass, mac);
    /* The cache appears with its first entry, made on a pool thread: look
     * for it under the lock too. */
    pthread_mutex_lock(&u->cache_mu);
    const struct cache_slot *s = u->cache != NULL ? &u->cache[cache_slot_of(mac)] : NULL;
    bool hit = s != NULL && s->expires > now_ms && CRYPTO_memcmp(s->mac, mac, sizeof mac) == 0;
    pthread_mutex_unlock(&u->cache_mu);
    return hit;
}

void users_cache_add(struct users *u, const char *name, const char *pass, int64_t now_ms,
                     int64_t ttl_ms)
{
    if (ttl_ms <= 0)
        return;
    unsigned char mac[32];
    cache_mac(u, name, pass, mac);
    pthread_mutex_lock(&u->cache_mu);
    if (u->cache == NULL)
        u->cache = calloc(CACHE_SLOTS, sizeof *u->cache);
    if (u->cache != NULL) {
        /* One slot per hash: a newer entry simply replaces an older one. */
        struct cache_slot *s = &u->cache[cache_slot_of(mac)];
        memcpy(s->mac, mac, sizeof mac);
        s->expires = now_ms + ttl_ms;
    }
    pthread_mutex_unlock(&u->cache_mu);
}

bool users_hash_new(const char *pass, char *out, size_t outlen)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) == NULL)
        return false;
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL)
        return false;
    const char *h = crypt_rn(pass, setting, cd, sizeof *cd);
    bool ok = h != NULL && h[0] != '*' && util_strlcpy(out, h, outlen) < outlen;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return ok;
}
