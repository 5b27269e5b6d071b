/* auth: checks a user's password, behind one interface. A backend is one
 * row of the table in auth.c: the users file (auth_file.c) today, Dovecot's
 * auth service next.
 *
 * A backend instance is immutable and reference-counted: a reload opens a
 * new one, and a check in flight keeps the one it started with. */
#ifndef PORTCULLIS_AUTH_H
#define PORTCULLIS_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "base/addr.h"
#include "base/config.h"
#include "base/pool.h"

enum auth_result {
    AUTH_OK,
    AUTH_FAIL,        /* 535: wrong user or password (an offence) */
    AUTH_TEMPFAIL,    /* 454: the backend could not tell */
};

/* The SASL mechanisms a backend can check (a bit set). */
#define AUTH_MECH_PLAIN 0x1u
#define AUTH_MECH_LOGIN 0x2u

/* What a backend may want to know about the client. */
struct auth_context {
    const struct addr *client;
    const struct addr *local;
    bool secured;            /* TLS, or a network trusted for plain auth */
    const char *session;
};

typedef void (*auth_done_cb)(void *arg, enum auth_result r);

struct auth;

struct auth_ops {
    const char *name;
    /* NULL with "FILE:LINE: problem" or the like in err. */
    struct auth *(*open)(const struct config *c, char *err, size_t errlen);
    void (*close)(struct auth *a);
    unsigned (*mechanisms)(const struct auth *a);
    /* Checks user and password: done(arg, result) exactly once, on mb's
     * event base, perhaps before verify returns. Blocking work goes to
     * `pool`. `pass` is not kept beyond the call's own copy, wiped after. */
    void (*verify)(struct auth *a, const struct config *c, struct pool *pool,
                   struct pool_mailbox *mb, const char *user, const char *pass,
                   const struct auth_context *ctx, auth_done_cb done, void *arg);
    /* For the daemon's start-up lines: how many users, and whether the
     * demo user of etc/users is among them. Either may be NULL. */
    size_t (*count)(const struct auth *a);
    bool (*has_demo)(const struct auth *a);
};

struct auth {
    const struct auth_ops *ops;
    atomic_int refs;
};

/* Opens the configured [auth] backend. */
struct auth *auth_open(const struct config *c, char *err, size_t errlen);
struct auth *auth_ref(struct auth *a);
void auth_unref(struct auth *a);

extern const struct auth_ops auth_file;

#endif
