#include "deliver/deliver.h"

#include <stdio.h>
#include "base/util.h"

/* One row per backend; a new one is a file and a line here. */
static const struct {
    enum delivery_mode mode;
    const struct deliver_ops *ops;
} backends[] = {
    {DELIVER_MAILDIR, &deliver_maildir},
};

const struct deliver_ops *deliver_backend(enum delivery_mode mode)
{
    for (size_t i = 0; i < ARRAY_LEN(backends); i++)
        if (backends[i].mode == mode)
            return backends[i].ops;
    return NULL;
}

void deliver_reply_set(struct deliver_reply *r, enum deliver_status st, int code,
                       const char *enhanced, const char *text)
{
    r->status = st;
    r->code = code;
    util_strlcpy(r->enhanced, enhanced, sizeof r->enhanced);
    util_strlcpy(r->text, text, sizeof r->text);
    r->detail[0] = '\0';
    r->id[0] = '\0';
}
