/* auth_file: the auth backend of the users file (users.h), with its cache
 * of recent successes. The hash function runs on the pool. */
#include "auth/auth.h"

#include <stdlib.h>
#include <openssl/crypto.h>
#include "auth/users.h"
#include "proto/sasl.h"
#include "base/util.h"

struct auth_file {
    struct auth base;
    struct users *users;
};

struct job {
    struct users *users;
    int64_t cache_ttl;
    auth_done_cb done;
    void *arg;
    bool ok;
    char user[SASL_USER_MAX];
    char pass[SASL_PASS_MAX];
};

static struct auth *file_open(const struct config *c, char *err, size_t errlen)
{
    struct users *u = users_load(c->users, err, errlen);
    if (u == NULL)
        return NULL;
    struct auth_file *a = calloc(1, sizeof *a);
    if (a == NULL) {
        users_unref(u);
        util_strlcpy(err, "out of memory", errlen);
        return NULL;
    }
    a->users = u;
    return &a->base;
}

static void file_close(struct auth *a)
{
    struct auth_file *f = (struct auth_file *)a;
    users_unref(f->users);
    free(f);
}

static unsigned file_mechanisms(const struct auth *a)
{
    (void)a;
    return AUTH_MECH_PLAIN | AUTH_MECH_LOGIN;
}

static void verify_work(void *arg)
{
    struct job *j = arg;
    j->ok = users_verify(j->users, j->user, j->pass);
    if (j->ok)
        users_cache_add(j->users, j->user, j->pass, util_mono_ms(), j->cache_ttl);
    OPENSSL_cleanse(j->pass, sizeof j->pass);
}

static void verify_done(void *arg)
{
    struct job *j = arg;
    users_unref(j->users);
    auth_done_cb done = j->done;
    void *darg = j->arg;
    enum auth_result r = j->ok ? AUTH_OK : AUTH_FAIL;
    free(j);
    done(darg, r);
}

static void file_verify(struct auth *a, const struct config *c, struct pool *pool,
                        struct pool_mailbox *mb, const char *user, const char *pass,
                        const struct auth_context *ctx, auth_done_cb done, void *arg)
{
    (void)ctx;
    struct users *u = ((struct auth_file *)a)->users;
    /* A recent success with this very password: no need for the pool. */
    if (c->auth_cache_ttl_ms > 0 && users_cache_hit(u, user, pass, util_mono_ms())) {
        done(arg, AUTH_OK);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        done(arg, AUTH_TEMPFAIL);
        return;
    }
    j->users = users_ref(u);     /* the job's reference */
    j->cache_ttl = c->auth_cache_ttl_ms;
    j->done = done;
    j->arg = arg;
    util_strlcpy(j->user, user, sizeof j->user);
    util_strlcpy(j->pass, pass, sizeof j->pass);
    pool_submit(pool, mb, verify_work, verify_done, j);
}

static size_t file_count(const struct auth *a)
{
    return users_count(((const struct auth_file *)a)->users);
}

static bool file_has_demo(const struct auth *a)
{
    return users_has_demo(((const struct auth_file *)a)->users);
}

const struct auth_ops auth_file = {
    .name = "file",
    .open = file_open,
    .close = file_close,
    .mechanisms = file_mechanisms,
    .verify = file_verify,
    .count = file_count,
    .has_demo = file_has_demo,
};
