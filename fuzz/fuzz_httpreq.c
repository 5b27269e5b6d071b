/* Fuzzes the admin HTTP API's own parsing (src/admin/httpreq.h): the first
 * byte picks what the rest is, as the daemon would meet it:
 *   0  the token file, then every token found must check as itself and a
 *      one-byte change of it must not
 *   1  a query string: ?ip= for status/history, ?kind= for the list
 *   2  a JSON body for POST /api/v1/block
 *   3  a JSON body for POST /api/v1/unblock
 *   4  an Authorization header against a fixed token file
 * and checks what the handlers will rely on. */
#include <jansson.h>
#include <stdbool.h>
#include "fuzz_common.h"
#include "admin/httpreq.h"
#include "admin/selfserve.h"
#include "base/addr.h"

static void check_req(const struct ctlreq *r, enum ctlreq_cmd cmd)
{
    CHECK(r->cmd == cmd);
    CHECK(strcmp(r->by, "fuzz") == 0);
    if (ctlreq_takes_name(cmd)) {
        /* A name goes into logs and JSON: it passed the check, and is one. */
        char e[CTLREQ_ERR_MAX];
        CHECK(ctlreq_name(r->name, e, sizeof e));
        json_t *n = json_string(r->name);
        CHECK(n != NULL);
        json_decref(n);
        return;
    }
    struct addr back;
    CHECK(addr_parse(r->ip, true, &back) && addr_equal(&back, &r->addr));
    if (cmd == CTLREQ_BLOCK)
        CHECK(r->duration_ms == -1 || (r->duration_ms > 0 && r->duration_ms <= CTLREQ_DURATION_MAX));
    /* The reason goes into a JSON string: it must be one. */
    json_t *s = json_string(r->reason);
    CHECK(s != NULL || r->reason[0] == '\0');
    json_decref(s);
}

static void tokens(const char *text, size_t len)
{
    static struct httpreq_tokens t;
    char err[256];
    if (!httpreq_tokens_parse(text, len, &t, err, sizeof err)) {
        CHECK(err[0] != '\0');
        return;
    }
    CHECK(t.n >= 1 && t.n <= HTTPREQ_MAX_TOKENS);
    for (size_t i = 0; i < t.n; i++) {
        CHECK(t.v[i].len >= HTTPREQ_TOKEN_MIN && t.v[i].len <= HTTPREQ_TOKEN_MAX);
        char hdr[HTTPREQ_TOKEN_MAX + 16] = "Bearer ";
        memcpy(hdr + 7, t.v[i].secret, t.v[i].len);
        hdr[7 + t.v[i].len] = '\0';
        const char *name = httpreq_tokens_check(&t, hdr);
        CHECK(name != NULL);
        /* Inside, where the spaces around a header value are not trimmed. */
        hdr[7 + t.v[i].len / 2] ^= 1;
        const char *other = httpreq_tokens_check(&t, hdr);
        /* only another token that happens to be that exact string */
        if (other != NULL) {
            bool found = false;
            for (size_t j = 0; j < t.n; j++)
                found |= t.v[j].len == t.v[i].len && memcmp(t.v[j].secret, hdr + 7, t.v[j].len) == 0;
            CHECK(found);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int what = data[0] % 5;
    char *s = fuzz_cstr(data + 1, size - 1);
    size_t len = size - 1;
    struct ctlreq r;
    char err[CTLREQ_ERR_MAX];
    switch (what) {
    case 0:
        tokens(s, len);
        break;
    case 1:
        if (httpreq_ip_query(CTLREQ_STATUS, s, "fuzz", &r, err))
            check_req(&r, CTLREQ_STATUS);
        if (httpreq_list_query(s, "fuzz", &r, err))
            CHECK(r.cmd == CTLREQ_LIST && (unsigned)r.filter <= CTLREQ_TEMPORARY);
        if (httpreq_name_query(CTLREQ_ACCOUNT, s, "fuzz", &r, err))
            check_req(&r, CTLREQ_ACCOUNT);
        (void)selfserve_format_of(s);
        break;
    case 2:
    case 3: {
        /* The body's first byte picks unlock now and then. */
        enum ctlreq_cmd c = what == 2 ? CTLREQ_BLOCK : len > 0 && (s[0] & 1) ? CTLREQ_UNLOCK
                                                                             : CTLREQ_UNBLOCK;
        if (httpreq_body(c, s, len, "fuzz", &r, err))
            check_req(&r, c);
        else
            CHECK(err[0] != '\0');
        break;
    }
    default: {
        static struct httpreq_tokens t;
        static bool loaded;
        if (!loaded) {
            const char *f = "desk:0123456789abcdef\n0123456789abcdef0123\n";
            char e[256];
            CHECK(httpreq_tokens_parse(f, strlen(f), &t, e, sizeof e));
            loaded = true;
        }
        const char *name = httpreq_tokens_check(&t, s);
        if (name != NULL)
            CHECK(strcmp(name, "desk") == 0 || strcmp(name, "api") == 0);
        break;
    }
    }
    free(s);
    return 0;
}
