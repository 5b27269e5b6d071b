#include "admin/httpreq.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include "base/util.h"

/* ---- the token file ---------------------------------------------------- */

static bool name_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
}

/* One line (no LF); "" when it is fine, else what is wrong with it. */
static const char *token_line(const char *s, size_t n, struct httpreq_token *t)
{
    const char *colon = memchr(s, ':', n);
    const char *tok = colon ? colon + 1 : s;
    size_t namelen = colon ? (size_t)(colon - s) : 0;
    size_t toklen = n - (size_t)(tok - s);
    if (colon != NULL && namelen == 0)
        return "empty NAME before ':'";
    if (namelen >= sizeof t->name)
        return "NAME longer than 63 characters";
    for (size_t i = 0; i < namelen; i++)
        if (!name_char((unsigned char)s[i]))
            return "NAME may hold letters, digits and . _ @ - only";
    if (toklen < HTTPREQ_TOKEN_MIN)
        return "TOKEN shorter than 16 characters";
    if (toklen > HTTPREQ_TOKEN_MAX)
        return "TOKEN longer than 256 characters";
    for (size_t i = 0; i < toklen; i++)
        if (tok[i] <= ' ' || tok[i] == 0x7f)
            return "TOKEN holds a space or a control character";
    memset(t, 0, sizeof *t);
    if (colon != NULL)
        memcpy(t->name, s, namelen);
    else
        memcpy(t->name, "api", 4);
    memcpy(t->secret, tok, toklen);
    t->len = toklen;
    return "";
}

bool httpreq_tokens_parse(const char *text, size_t len, struct httpreq_tokens *out,
                          char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (len > HTTPREQ_FILE_MAX) {
        snprintf(err, errlen, "longer than %d bytes", HTTPREQ_FILE_MAX);
        return false;
    }
    int lineno = 0;
    for (size_t at = 0; at < len;) {
        const char *s = text + at;
        const char *nl = memchr(s, '\n', len - at);
        size_t n = nl ? (size_t)(nl - s) : len - at;
        at += n + (nl != NULL);
        lineno++;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (n == 0 || s[0] == '#')
            continue;
        if (memchr(s, '\0', n) != NULL) {
            snprintf(err, errlen, "line %d: a NUL byte", lineno);
            return false;
        }
        if (out->n == HTTPREQ_MAX_TOKENS) {
            snprintf(err, errlen, "line %d: more than %d tokens", lineno, HTTPREQ_MAX_TOKENS);
            return false;
        }
        const char *why = token_line(s, n, &out->v[out->n]);
        if (why[0] != '\0') {
            snprintf(err, errlen, "line %d: %s (expected NAME:TOKEN or TOKEN)", lineno, why);
            return false;
        }
        out->n++;
    }
    if (out->n == 0) {
        snprintf(err, errlen, "no token in it");
        return false;
    }
    return true;
}

const char *httpreq_tokens_check(const struct httpreq_tokens *t, const char *authorization)
{
    if (authorization == NULL || !util_strcaseprefix(authorization, "Bearer "))
        return NULL;
    const char *p = authorization + 7;
    while (*p == ' ')
        p++;
    size_t len = strlen(p);
    while (len > 0 && p[len - 1] == ' ')
        len--;
    if (len == 0 || len > HTTPREQ_TOKEN_MAX)
        return NULL;
    unsigned char given[HTTPREQ_TOKEN_MAX] = {0};
    memcpy(given, p, len);
    /* No early exit: every token is compared in full, whichever matches. */
    const char *found = NULL;
    for (size_t i = 0; i < t->n; i++) {
        int differ = CRYPTO_memcmp(given, t->v[i].secret, sizeof given) | (len != t->v[i].len);
        if (!differ && found == NULL)
            found = t->v[i].name;
    }
    OPENSSL_cleanse(given, sizeof given);
    return found;
}

/* ---- query strings --------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes n bytes of s (%XX, '+') into out; false on a bad escape, a
 * NUL, or no room. */
static bool decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= outlen)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool httpreq_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    if (query == NULL || outlen == 0)
        return false;
    size_t qlen = strnlen(query, HTTPREQ_QUERY_MAX + 1);
    if (qlen > HTTPREQ_QUERY_MAX)
        return false;
    size_t klen = strlen(key);
    for (size_t at = 0; at < qlen;) {
        const char *s = query + at;
        const char *amp = memchr(s, '&', qlen - at);
        size_t n = amp ? (size_t)(amp - s) : qlen - at;
        at += n + 1;
        const char *eq = memchr(s, '=', n);
        size_t kn = eq ? (size_t)(eq - s) : n;
        char k[64];
        if (kn < sizeof k && decode(s, kn, k, sizeof k) && strlen(k) == klen &&
            strcmp(k, key) == 0) {
            if (eq == NULL)
                return decode("", 0, out, outlen);
            return decode(eq + 1, n - kn - 1, out, outlen);
        }
    }
    return false;
}

/* ---- the API's requests ---------------------------------------------------- */

static void set_author(struct ctlreq *r, const char *by)
{
    util_strlcpy(r->by, by, sizeof r->by);
}

bool httpreq_ip_query(enum ctlreq_cmd cmd, const char *query, const char *by,
                      struct ctlreq *r, char err[CTLREQ_ERR_MAX])
{
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    set_author(r, by);
    /* Room for more than an address: a wrong one is quoted back. */
    char ip[256];
    bool given = httpreq_query_get(query, "ip", ip, sizeof ip);
    if (!ctlreq_ip(given ? ip : NULL, &r->addr, err, CTLREQ_ERR_MAX))
        return false;
    util_strlcpy(r->ip, ip, sizeof r->ip);
    return true;
}

bool httpreq_name_query(enum ctlreq_cmd cmd, const char *query, const char *by,
                        struct ctlreq *r, char err[CTLREQ_ERR_MAX])
{
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    set_author(r, by);
    char name[ACCOUNT_NAME_MAX + 1];
    bool given = httpreq_query_get(query, "name", name, sizeof name);
    if (!ctlreq_name(given ? name : NULL, err, CTLREQ_ERR_MAX))
        return false;
    util_strlcpy(r->name, name, sizeof r->name);
    return true;
}

bool httpreq_list_query(const char *query, const char *by, struct ctlreq *r,
                        char err[CTLREQ_ERR_MAX])
{
    memset(r, 0, sizeof *r);
    r->cmd = CTLREQ_LIST;
    set_author(r, by);
    char kind[32];
    if (!httpreq_query_get(query, "kind", kind, sizeof kind))
        return true;
    static const enum ctlreq_filter f[] = {CTLREQ_ALL, CTLREQ_PERMANENT, CTLREQ_TEMPORARY};
    for (size_t i = 0; i < ARRAY_LEN(f); i++)
        if (strcmp(kind, ctlreq_filter_name(f[i])) == 0)
            return r->filter = f[i], true;
    util_strlcpy(err, "kind is all, permanent or temporary", CTLREQ_ERR_MAX);
    return false;
}

/* "for": a duration ("2h", "30d", or seconds as a number); "permanent": true. */
static const char *block_duration(json_t *in, struct ctlreq *r)
{
    json_t *perm = json_object_get(in, "permanent"), *d = json_object_get(in, "for");
    if (perm != NULL && !json_is_boolean(perm))
        return "permanent is true or false";
    if (json_is_true(perm)) {
        if (d != NULL)
            return "give \"for\" or \"permanent\", not both";
        r->duration_ms = -1;
        return NULL;
    }
    int64_t ms = -1;
    if (json_is_string(d))
        ms = util_parse_duration(json_string_value(d));
    else if (json_is_integer(d) && json_integer_value(d) > 0 &&
             json_integer_value(d) <= CTLREQ_DURATION_MAX / 1000)
        ms = json_integer_value(d) * 1000;
    if (ms <= 0 || ms > CTLREQ_DURATION_MAX)
        return "for is a duration such as 90m, 2h or 30d (up to 100 years), or give \"permanent\": true";
    r->duration_ms = ms;
    return NULL;
}

bool httpreq_body(enum ctlreq_cmd cmd, const char *body, size_t len, const char *by,
                  struct ctlreq *r, char err[CTLREQ_ERR_MAX])
{
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    set_author(r, by);
    if (len > HTTPREQ_BODY_MAX) {
        util_strlcpy(err, "the body is over 64 KB", CTLREQ_ERR_MAX);
        return false;
    }
    json_error_t jerr;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *e = NULL;
    json_t *reason = json_object_get(in, "reason");
    if (!json_is_object(in))
        e = "the body is not a JSON object";
    else if (reason != NULL && !json_is_string(reason) && !json_is_null(reason))
        e = "reason is a string";
    else if (ctlreq_takes_name(cmd))
        e = ctlreq_name(json_string_value(json_object_get(in, "name")), err, CTLREQ_ERR_MAX)
            ? NULL : err;
    else if (!ctlreq_ip(json_string_value(json_object_get(in, "ip")), &r->addr, err, CTLREQ_ERR_MAX))
        e = err;
    else if (cmd == CTLREQ_BLOCK)
        e = block_duration(in, r);
    if (e == NULL) {
        if (ctlreq_takes_name(cmd))
            util_strlcpy(r->name, json_string_value(json_object_get(in, "name")), sizeof r->name);
        else
            util_strlcpy(r->ip, json_string_value(json_object_get(in, "ip")), sizeof r->ip);
        if (json_is_string(reason))
            util_strlcpy(r->reason, json_string_value(reason), sizeof r->reason);
    }
    json_decref(in);
    if (e != NULL && e != err)
        util_strlcpy(err, e, CTLREQ_ERR_MAX);
    return e == NULL;
}
