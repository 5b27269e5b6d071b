/* Fuzzes control-socket request handling, the part that is pure: the
 * daemon's control.c needs a running server, so this target repeats its
 * request path step by step (conn_read's line cut, handle()'s json_loadb
 * and command lookup, req_prefix()'s address check and error text, the
 * reply built with json_string/json_dumps) plus portcullisctl's own checks
 * (addr_parse(ip, true), util_parse_duration), and the way the block
 * texts a request carries are kept (util_strlcpy into struct guard_block's
 * fixed fields) and shown again (json_string). Keep it in step with
 * src/control.c, src/store_*.c and src/ctl/portcullisctl.c. */
#include <jansson.h>
#include <stdbool.h>
#include "fuzz_common.h"
#include "addr.h"
#include "util.h"

#define CONTROL_REQUEST_MAX 65536   /* src/control.h */

struct req {
    json_t *in;
    const char *err;
    char errbuf[256];                /* as in control.c's struct req */
};

/* control.c req_prefix(), with the default counting prefixes. */
static bool req_prefix(struct req *r, struct addr *prefix, char *given, size_t glen)
{
    const char *ip = json_string_value(json_object_get(r->in, "ip"));
    struct addr a;
    if (ip == NULL || !addr_parse(ip, true, &a)) {
        const char *what = ip ? ip : "(none)";
        snprintf(r->errbuf, sizeof r->errbuf, "not an address or prefix: %.*s",
                 (int)util_utf8_cut(what, 200), what);
        r->err = r->errbuf;
        return false;
    }
    if (given != NULL)
        util_strlcpy(given, ip, glen);
    *prefix = strchr(ip, '/') ? a : addr_prefix_of(&a, 32, 64);
    return true;
}

static void set(json_t *o, const char *key, json_t *v)
{
    /* json_object_set_new fails (and drops the key) when v is NULL, e.g.
     * json_string() of text that is not valid UTF-8. */
    CHECK(v != NULL);
    CHECK(json_object_set_new(o, key, v) == 0);
}

static json_t *with_prefix(struct req *r, bool status)
{
    struct addr p;
    char given[ADDR_STRLEN + 8];
    if (!req_prefix(r, &p, status ? given : NULL, sizeof given))
        return NULL;
    char prefix[ADDR_STRLEN];
    addr_format(&p, true, prefix);
    struct addr back;
    CHECK(addr_parse(prefix, true, &back) && addr_equal(&back, &p));
    json_t *o = json_object();
    if (status)
        set(o, "address", json_string(given));
    set(o, "prefix", json_string(prefix));
    return o;
}

/* control.c str_or_null(), used by block_json() for the block's texts. */
static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static json_t *do_block(struct req *r)
{
    json_t *o = with_prefix(r, false);
    if (o == NULL)
        return NULL;
    json_t *d = json_object_get(r->in, "duration_ms");
    if (!json_is_integer(d) || (json_integer_value(d) <= 0 && json_integer_value(d) != -1)) {
        r->err = "duration_ms is a positive number, or -1 for permanent";
        json_decref(o);
        return NULL;
    }
    /* The operator's reason is kept in guard_block.note[256] and shown by
     * block_json() as "note". */
    const char *why = json_string_value(json_object_get(r->in, "reason"));
    char note[256];
    util_strlcpy(note, why ? why : "", sizeof note);
    set(o, "note", str_or_null(note));
    set(o, "duration_ms", json_integer(json_integer_value(d)));
    return o;
}

/* control.c do_unblock(): `by` and `reason` go to the store's lift(),
 * which keeps them in struct guard_block's lifted_by[64] and
 * lift_reason[256] (store_sqlite.c/store_redis.c, util_strlcpy);
 * block_json() then shows them with str_or_null(). */
static json_t *do_unblock(struct req *r)
{
    json_t *o = with_prefix(r, false);
    if (o == NULL)
        return NULL;
    const char *by = json_string_value(json_object_get(r->in, "by"));
    const char *why = json_string_value(json_object_get(r->in, "reason"));
    char lifted_by[64], lift_reason[256];
    util_strlcpy(lifted_by, by ? by : "portcullisctl", sizeof lifted_by);
    util_strlcpy(lift_reason, why ? why : "", sizeof lift_reason);
    set(o, "lifted_by", str_or_null(lifted_by));
    set(o, "lift_reason", str_or_null(lift_reason));
    return o;
}

static json_t *do_list(struct req *r)
{
    const char *f = json_string_value(json_object_get(r->in, "filter"));
    if (!(f == NULL || strcmp(f, "all") == 0 || strcmp(f, "permanent") == 0 ||
          strcmp(f, "temporary") == 0)) {
        r->err = "filter is all, permanent or temporary";
        return NULL;
    }
    json_t *o = json_object();
    set(o, "blocks", json_array());
    return o;
}

static void handle(const char *line, size_t len)
{
    json_error_t jerr;
    struct req r = {0};
    r.in = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *result = NULL;
    if (!json_is_object(r.in)) {
        r.err = "the request is not a JSON object";
    } else {
        const char *cmd = json_string_value(json_object_get(r.in, "cmd"));
        r.err = "unknown command";
        if (cmd != NULL) {
            if (strcmp(cmd, "status") == 0) {
                r.err = NULL;
                result = with_prefix(&r, true);
            } else if (strcmp(cmd, "history") == 0) {
                r.err = NULL;
                result = with_prefix(&r, false);
            } else if (strcmp(cmd, "unblock") == 0) {
                r.err = NULL;
                result = do_unblock(&r);
            } else if (strcmp(cmd, "block") == 0) {
                r.err = NULL;
                result = do_block(&r);
            } else if (strcmp(cmd, "list") == 0) {
                r.err = NULL;
                result = do_list(&r);
            } else if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "reload") == 0) {
                r.err = NULL;
                result = json_object();
            }
        }

        /* portcullisctl's side of the same fields. */
        const char *ip = json_string_value(json_object_get(r.in, "ip"));
        struct addr a;
        if (ip != NULL && addr_parse(ip, true, &a)) {
            char txt[ADDR_STRLEN];
            addr_format(&a, true, txt);
            CHECK(strnlen(txt, sizeof txt) < sizeof txt);
        }
        const char *dur = json_string_value(json_object_get(r.in, "duration"));
        if (dur != NULL) {
            int64_t ms = util_parse_duration(dur);
            CHECK(ms >= -1);
        }
    }

    /* The reply: {"ok":true,"result":...} or {"ok":false,"error":"..."}. */
    json_t *reply = json_object();
    set(reply, "ok", json_boolean(result != NULL));
    if (result != NULL)
        set(reply, "result", result);
    else
        set(reply, "error", json_string(r.err ? r.err : "failed"));
    char *out = json_dumps(reply, JSON_COMPACT);
    CHECK(out != NULL);
    json_decref(reply);
    json_decref(r.in);

    /* What portcullisctl reads back. */
    json_t *back = json_loads(out, 0, &jerr);
    CHECK(json_is_object(back));
    CHECK(json_is_boolean(json_object_get(back, "ok")));
    if (!json_is_true(json_object_get(back, "ok")))
        CHECK(json_string_value(json_object_get(back, "error")) != NULL);
    json_decref(back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* conn_read: one request per LF-terminated line, at most 64 KiB. */
    const uint8_t *lf = memchr(data, '\n', size);
    size_t n = lf ? (size_t)(lf - data) : size;
    if (n > CONTROL_REQUEST_MAX)
        return 0;
    char *line = fuzz_cstr(data, n);
    handle(line, n);
    free(line);

    /* Also the bare duration and address parsers on the raw text. */
    char *s = fuzz_cstr(data, size);
    int64_t ms = util_parse_duration(s);
    CHECK(ms >= -1);
    struct addr a;
    (void)addr_parse(s, true, &a);
    free(s);
    return 0;
}
