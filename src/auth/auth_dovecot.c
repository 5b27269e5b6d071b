/* auth_dovecot: the auth backend of Dovecot's auth service (SPEC §8). The
 * connections (dovecot.c) are per worker, found by the worker's mailbox,
 * and outlive a reload (the socket is checked against each new
 * configuration), so a reload never drops a check in flight. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "auth/dovecot.h"
#include "base/log.h"
#include "base/util.h"

#define MAX_WORKERS 256

static struct {
    pthread_mutex_t mu;
    struct {
        struct pool_mailbox *mb;
        struct dovecot *d;
    } w[MAX_WORKERS];
    int n;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The worker's connection to the configured socket; only that worker
 * ever touches its row's connection. */
static struct dovecot *worker_dovecot(struct pool_mailbox *mb, const struct config *c)
{
    struct dovecot *d = NULL;
    int row = -1;
    pthread_mutex_lock(&reg.mu);
    for (int i = 0; i < reg.n; i++)
        if (reg.w[i].mb == mb)
            row = i;
    if (row < 0 && reg.n < MAX_WORKERS) {
        row = reg.n++;
        reg.w[row].mb = mb;
        reg.w[row].d = NULL;
    }
    if (row >= 0) {
        d = reg.w[row].d;
        if (d != NULL && strcmp(dovecot_socket(d), c->dovecot_socket) != 0) {
            dovecot_free(d);    /* a reload named another socket */
            d = NULL;
        }
        if (d == NULL) {
            char err[256];
            d = dovecot_new(pool_mailbox_base(mb), c, err, sizeof err);
            if (d == NULL)
                log_event(LOG_ERROR, "auth_backend_down", "socket", c->dovecot_socket,
                          "error", err, NULL);
        }
        reg.w[row].d = d;
    }
    pthread_mutex_unlock(&reg.mu);
    return d;
}

static struct auth *dc_open(const struct config *c, char *err, size_t errlen)
{
    (void)c;
    struct auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        util_strlcpy(err, "out of memory", errlen);
    return a;
}

static void dc_close(struct auth *a)
{
    /* The connections stay for the next configuration's instance. */
    free(a);
}

static unsigned dc_mechanisms(const struct auth *a)
{
    (void)a;
    unsigned m = dovecot_mechs(DOVECOT_MECH_PLAIN | DOVECOT_MECH_LOGIN);
    return (m & DOVECOT_MECH_PLAIN ? AUTH_MECH_PLAIN : 0) |
           (m & DOVECOT_MECH_LOGIN ? AUTH_MECH_LOGIN : 0);
}

static bool dc_up(const struct auth *a)
{
    (void)a;
    return dovecot_up();
}

struct check {
    auth_done_cb done;
    void *arg;
};

static void check_done(void *arg, enum dovecot_result r)
{
    struct check *k = arg;
    auth_done_cb done = k->done;
    void *darg = k->arg;
    free(k);
    done(darg, r == DOVECOT_AUTH_OK ? AUTH_OK : r == DOVECOT_AUTH_FAIL ? AUTH_FAIL : AUTH_TEMPFAIL);
}

static void dc_verify(struct auth *a, const struct config *c, struct pool *pool,
                      struct pool_mailbox *mb, const char *user, const char *pass,
                      const struct auth_context *ctx, auth_done_cb done, void *arg)
{
    (void)a, (void)pool;
    struct dovecot *d = worker_dovecot(mb, c);
    struct check *k = d != NULL ? calloc(1, sizeof *k) : NULL;
    if (k == NULL) {
        done(arg, AUTH_TEMPFAIL);
        return;
    }
    k->done = done;
    k->arg = arg;
    char lip[ADDR_STRLEN] = "", rip[ADDR_STRLEN];
    if (ctx->local != NULL && ctx->local->family != 0)
        addr_format(ctx->local, false, lip);
    addr_format(ctx->client, false, rip);
    if (dovecot_verify(d, user, pass, lip, rip, ctx->secured, check_done, k) == NULL) {
        free(k);
        done(arg, AUTH_TEMPFAIL);
    }
}

const struct auth_ops auth_dovecot = {
    .name = "dovecot",
    .open = dc_open,
    .close = dc_close,
    .mechanisms = dc_mechanisms,
    .verify = dc_verify,
    .count = NULL,
    .has_demo = NULL,
    .up = dc_up,
};
