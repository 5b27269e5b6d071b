#include "users.h"

#include <crypt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "util.h"

struct user {
    char *name;
    char *hash;
};

struct users {
    atomic_int refs;
    size_t n;
    struct user *v;      /* sorted by name, case-insensitive */
    char *dummy;         /* burned for unknown users */
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
    if (ok) {
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
