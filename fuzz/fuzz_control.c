/* Fuzzes the control socket's request path as the daemon runs it: the line
 * cut at CTLREQ_MAX (control.c's conn_read), ctlreq_parse(), and the reply
 * from ctlreq_reply() read back as portcullisctl reads it. What control.c
 * adds needs the server (guard, store); here the result carries the texts
 * it would show from the request: the address as given, the prefix, and
 * `by` / `reason` as a block record keeps them (json_string() refuses text
 * cut inside a UTF-8 character, and the key would silently go missing). */
#include <jansson.h>
#include <stdbool.h>
#include "fuzz_common.h"
#include "base/addr.h"
#include "admin/ctlreq.h"
#include "base/util.h"

static void set(json_t *o, const char *key, json_t *v)
{
    CHECK(v != NULL);
    CHECK(json_object_set_new(o, key, v) == 0);
}

/* control.c's str_or_null() for a block's texts. */
static json_t *str_or_null(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static json_t *result_of(const struct ctlreq *q)
{
    CHECK((unsigned)q->cmd < CTLREQ_NCMD);
    json_t *o = json_object();
    if (ctlreq_takes_ip(q->cmd)) {
        /* The prefix shown is the one acted on: it reads back equal. */
        struct addr p = ctlreq_prefix(q, 32, 64), back;
        char prefix[ADDR_STRLEN];
        addr_format(&p, true, prefix);
        CHECK(addr_parse(prefix, true, &back) && addr_equal(&back, &p));
        set(o, "address", json_string(q->ip));
        set(o, "prefix", json_string(prefix));
    } else {
        CHECK(q->ip[0] == '\0');
    }
    if (q->cmd == CTLREQ_BLOCK)
        CHECK(q->duration_ms > 0 || q->duration_ms == -1);
    else
        CHECK(q->duration_ms == 0);
    CHECK((unsigned)q->filter <= CTLREQ_TEMPORARY);
    CHECK(q->cmd == CTLREQ_LIST || q->filter == CTLREQ_ALL);
    set(o, "lifted_by", str_or_null(q->by));
    set(o, "note", str_or_null(q->reason));
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* conn_read: one request per LF-terminated line, at most CTLREQ_MAX. */
    const uint8_t *lf = memchr(data, '\n', size);
    size_t n = lf ? (size_t)(lf - data) : size;
    if (n > CTLREQ_MAX)
        return 0;
    char *line = fuzz_cstr(data, n);
    struct ctlreq q;
    char err[CTLREQ_ERR_MAX];
    json_t *result = NULL;
    if (ctlreq_parse(line, n, &q, err))
        result = result_of(&q);
    else
        CHECK(err[0] != '\0' && strnlen(err, sizeof err) < sizeof err);
    free(line);
    char *out = ctlreq_reply(result, result ? NULL : err);
    CHECK(out != NULL);

    /* What portcullisctl reads back: ok, and the error text exactly. */
    json_error_t jerr;
    json_t *back = json_loads(out, 0, &jerr);
    CHECK(json_is_object(back));
    CHECK(json_is_boolean(json_object_get(back, "ok")));
    CHECK(json_is_true(json_object_get(back, "ok")) == (result != NULL));
    if (result == NULL) {
        const char *e = json_string_value(json_object_get(back, "error"));
        CHECK(e != NULL && strcmp(e, err) == 0);
    }
    json_decref(back);
    free(out);

    /* portcullisctl's own checks of its arguments, on the raw text. */
    char *s = fuzz_cstr(data, size);
    CHECK(util_parse_duration(s) >= -1);
    struct addr a;
    /* Raw bytes need not be UTF-8 (the text goes to stderr there). */
    if (!ctlreq_ip(s, &a, err, sizeof err))
        CHECK(strncmp(err, "not an address or prefix: ", 26) == 0);
    free(s);
    return 0;
}
