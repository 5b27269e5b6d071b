#include "admin/ctlreq.h"

#include <stdio.h>
#include <string.h>
#include "base/util.h"

/* A reason is kept as a block's note or as a lift's reason: one cut for both. */
_Static_assert(sizeof ((struct guard_block *)0)->note ==
               sizeof ((struct guard_block *)0)->lift_reason, "note and lift_reason differ");

static const char *const cmd_names[CTLREQ_NCMD] = {
    [CTLREQ_STATUS] = "status", [CTLREQ_HISTORY] = "history", [CTLREQ_LIST] = "list",
    [CTLREQ_BLOCK] = "block", [CTLREQ_UNBLOCK] = "unblock", [CTLREQ_STATS] = "stats",
    [CTLREQ_RELOAD] = "reload", [CTLREQ_ACCOUNT] = "account", [CTLREQ_UNLOCK] = "unlock",
};

static const char *const filter_names[] = {
    [CTLREQ_ALL] = "all", [CTLREQ_PERMANENT] = "permanent", [CTLREQ_TEMPORARY] = "temporary",
};

bool ctlreq_command(const char *name, enum ctlreq_cmd *out)
{
    for (size_t i = 0; name != NULL && i < ARRAY_LEN(cmd_names); i++) {
        if (strcmp(name, cmd_names[i]) == 0) {
            *out = (enum ctlreq_cmd)i;
            return true;
        }
    }
    return false;
}

bool ctlreq_takes_ip(enum ctlreq_cmd c)
{
    return c == CTLREQ_STATUS || c == CTLREQ_HISTORY || c == CTLREQ_BLOCK || c == CTLREQ_UNBLOCK;
}

bool ctlreq_takes_name(enum ctlreq_cmd c)
{
    return c == CTLREQ_ACCOUNT || c == CTLREQ_UNLOCK;
}

bool ctlreq_name(const char *name, char *err, size_t errlen)
{
    const char *why = NULL;
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0)
        why = "name is an account name";
    else if (n >= ACCOUNT_NAME_MAX)
        why = "name is longer than 255 bytes";
    for (size_t i = 0; why == NULL && i < n;) {
        unsigned char ch = (unsigned char)name[i];
        size_t len = ch < 0x80 ? 1 : util_utf8_char(name + i);
        if (len == 0)
            why = "name is not UTF-8";
        else if (ch < 0x20 || ch == 0x7f)
            why = "name holds a control character";
        i += len ? len : 1;
    }
    if (why != NULL)
        util_strlcpy(err, why, errlen);
    return why == NULL;
}

const char *ctlreq_filter_name(enum ctlreq_filter f)
{
    return filter_names[f];
}

bool ctlreq_ip(const char *ip, struct addr *out, char *err, size_t errlen)
{
    if (ip != NULL && addr_parse(ip, true, out))
        return true;
    const char *what = ip ? ip : "(none)";
    /* Cut on a character boundary: the text goes back as a JSON string,
     * which must be valid UTF-8. */
    snprintf(err, errlen, "not an address or prefix: %.*s", (int)util_utf8_cut(what, 200), what);
    return false;
}

struct addr ctlreq_prefix(const struct ctlreq *r, int v4bits, int v6bits)
{
    return strchr(r->ip, '/') ? r->addr : addr_prefix_of(&r->addr, v4bits, v6bits);
}

static const char *text(json_t *in, const char *key, const char *def)
{
    const char *v = json_string_value(json_object_get(in, key));
    return v != NULL ? v : def;
}

/* The checks of one command's arguments, in the order the errors win. */
static const char *check_args(json_t *in, struct ctlreq *r, char err[CTLREQ_ERR_MAX])
{
    if (ctlreq_takes_ip(r->cmd)) {
        const char *ip = json_string_value(json_object_get(in, "ip"));
        if (!ctlreq_ip(ip, &r->addr, err, CTLREQ_ERR_MAX))
            return err;
        util_strlcpy(r->ip, ip, sizeof r->ip);
    }
    if (ctlreq_takes_name(r->cmd)) {
        const char *name = json_string_value(json_object_get(in, "name"));
        if (!ctlreq_name(name, err, CTLREQ_ERR_MAX))
            return err;
        util_strlcpy(r->name, name, sizeof r->name);
    }
    if (r->cmd == CTLREQ_LIST) {
        const char *f = json_string_value(json_object_get(in, "filter"));
        size_t i = 0;
        while (f != NULL && i < ARRAY_LEN(filter_names) && strcmp(f, filter_names[i]) != 0)
            i++;
        if (i == ARRAY_LEN(filter_names))
            return "filter is all, permanent or temporary";
        r->filter = (enum ctlreq_filter)i;
    }
    if (r->cmd == CTLREQ_BLOCK) {
        json_t *d = json_object_get(in, "duration_ms");
        json_int_t ms = json_integer_value(d);
        if (!json_is_integer(d) || (ms != -1 && (ms <= 0 || ms > CTLREQ_DURATION_MAX)))
            return "duration_ms is a positive number up to 100 years, or -1 for permanent";
        r->duration_ms = ms;
    }
    util_strlcpy(r->by, text(in, "by", "portcullisctl"), sizeof r->by);
    util_strlcpy(r->reason, text(in, "reason", ""), sizeof r->reason);
    return NULL;
}

bool ctlreq_parse(const char *line, size_t len, struct ctlreq *r, char err[CTLREQ_ERR_MAX])
{
    memset(r, 0, sizeof *r);
    json_error_t jerr;
    json_t *in = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *e = NULL;
    if (!json_is_object(in))
        e = "the request is not a JSON object";
    else if (!ctlreq_command(json_string_value(json_object_get(in, "cmd")), &r->cmd))
        e = "unknown command";
    else
        e = check_args(in, r, err);
    json_decref(in);
    if (e != NULL && e != err)
        util_strlcpy(err, e, CTLREQ_ERR_MAX);
    return e == NULL;
}

char *ctlreq_reply(json_t *result, const char *err)
{
    json_t *reply = json_object();
    json_object_set_new(reply, "ok", json_boolean(result != NULL));
    if (result != NULL) {
        json_object_set_new(reply, "result", result);
    } else {
        /* json_string refuses text that is not UTF-8 (a config error may
         * quote any bytes): the reply still says that it failed. */
        json_t *e = json_string(err ? err : "failed");
        json_object_set_new(reply, "error", e ? e : json_string("failed"));
    }
    char *out = json_dumps(reply, JSON_COMPACT);
    json_decref(reply);
    return out;
}
