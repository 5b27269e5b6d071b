/* httpreq: the admin HTTP API's outside bytes -> what the handlers take.
 * Pure (jansson, no libevent, no server): http.c serves what it returns,
 * tests/unit/test_httpreq.c and fuzz/fuzz_httpreq.c reach every check.
 *
 *   the token file      NAME:TOKEN lines (a bare TOKEN is named "api")
 *   a query string      ip=...&kind=...&name=...  (%XX and + decoded)
 *   a JSON body         {"ip", "for" | "permanent", "reason"}, or {"name", "reason"}
 */
#ifndef PORTCULLIS_HTTPREQ_H
#define PORTCULLIS_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>
#include "admin/ctlreq.h"

/* Bounds of the token file: a handful of desks and monitors, not users. */
#define HTTPREQ_MAX_TOKENS 64
#define HTTPREQ_TOKEN_MIN 16      /* shorter secrets are refused: guessable */
#define HTTPREQ_TOKEN_MAX 256
#define HTTPREQ_NAME_MAX 64
#define HTTPREQ_FILE_MAX 65536
/* The longest query string looked at, and a request body. */
#define HTTPREQ_QUERY_MAX 2048
#define HTTPREQ_BODY_MAX 65536

struct httpreq_token {
    char name[HTTPREQ_NAME_MAX];
    unsigned char secret[HTTPREQ_TOKEN_MAX];   /* zero-padded */
    size_t len;
};

struct httpreq_tokens {
    struct httpreq_token v[HTTPREQ_MAX_TOKENS];
    size_t n;
};

/* Parses the token file's text (len bytes). Blank lines and lines
 * starting with '#' are skipped. A NAME is letters, digits and . _ @ -;
 * a TOKEN is 16 to 256 printable characters without spaces. Returns false
 * with "line N: what" in err. At least one token is required. */
bool httpreq_tokens_parse(const char *text, size_t len, struct httpreq_tokens *out,
                          char *err, size_t errlen);

/* The name of the token an "Authorization" header value carries
 * ("Bearer TOKEN"), or NULL. Every token is compared, each in constant
 * time over its whole buffer, so the time taken tells nothing. */
const char *httpreq_tokens_check(const struct httpreq_tokens *t, const char *authorization);

/* The decoded value of `key` in a query string (without the '?'), into
 * out; false when absent, undecodable (bad %XX, a NUL) or longer than
 * outlen - 1. The first occurrence wins. */
bool httpreq_query_get(const char *query, const char *key, char *out, size_t outlen);

/* The API's requests as the handlers take them. `by` is the author (the
 * token's name). Returns false with the 400 reply's text in err. */
bool httpreq_ip_query(enum ctlreq_cmd cmd, const char *query, const char *by,
                      struct ctlreq *r, char err[CTLREQ_ERR_MAX]);
bool httpreq_list_query(const char *query, const char *by, struct ctlreq *r,
                        char err[CTLREQ_ERR_MAX]);
/* GET /api/v1/account?name=NAME. */
bool httpreq_name_query(enum ctlreq_cmd cmd, const char *query, const char *by,
                        struct ctlreq *r, char err[CTLREQ_ERR_MAX]);
/* POST /api/v1/block, /unblock ({"ip", ...}) and /unlock ({"name",
 * "reason"}): the JSON body (len bytes). */
bool httpreq_body(enum ctlreq_cmd cmd, const char *body, size_t len, const char *by,
                  struct ctlreq *r, char err[CTLREQ_ERR_MAX]);

#endif
