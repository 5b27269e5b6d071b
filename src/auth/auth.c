#include "auth/auth.h"

#include <stdio.h>
#include "base/util.h"

/* One row per backend; a new one is a file and a line here. */
static const struct {
    enum auth_backend kind;
    const struct auth_ops *ops;
} backends[] = {
    {AUTH_FILE, &auth_file},
};

struct auth *auth_open(const struct config *c, char *err, size_t errlen)
{
    /* A backend not built in yet: the users file, as before the key existed. */
    const struct auth_ops *ops = &auth_file;
    for (size_t i = 0; i < ARRAY_LEN(backends); i++)
        if (backends[i].kind == c->auth_backend)
            ops = backends[i].ops;
    struct auth *a = ops->open(c, err, errlen);
    if (a != NULL) {
        a->ops = ops;
        atomic_init(&a->refs, 1);
    }
    return a;
}

struct auth *auth_ref(struct auth *a)
{
    atomic_fetch_add(&a->refs, 1);
    return a;
}

void auth_unref(struct auth *a)
{
    if (a != NULL && atomic_fetch_sub(&a->refs, 1) == 1)
        a->ops->close(a);
}
