#include "proto/dovecot_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

/* Unescapes s in place (Dovecot's str_tabunescape); false for a \001 not
 * followed by one of 1, t, r, n. */
static bool unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r != '\0'; r++) {
        if (*r != '\001') {
            *w++ = *r;
            continue;
        }
        switch (*++r) {
        case '1': *w++ = '\001'; break;
        case 't': *w++ = '\t'; break;
        case 'r': *w++ = '\r'; break;
        case 'n': *w++ = '\n'; break;
        default: return false;
        }
    }
    *w = '\0';
    return true;
}

static void copy_cut(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* An unsigned decimal without sign or spaces, at most 4294967295. */
static bool parse_uint(const char *s, unsigned *out)
{
    if (*s < '0' || *s > '9' || strlen(s) > 10)
        return false;
    unsigned long v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > 0xffffffffUL)
        return false;
    *out = (unsigned)v;
    return true;
}

#define MAX_FIELDS 64

bool dovecot_parse_line(char *line, size_t len, struct dovecot_line *out)
{
    memset(out, 0, sizeof *out);
    out->cont = "";
    if (len > DOVECOT_LINE_MAX || memchr(line, '\0', len) != NULL)
        return false;
    line[len] = '\0';   /* the caller's buffer holds len+1 */

    /* Split on TAB; fields past MAX_FIELDS are ignored (we never need them). */
    char *f[MAX_FIELDS];
    int nf = 0;
    for (char *p = line; nf < MAX_FIELDS;) {
        f[nf++] = p;
        char *tab = strchr(p, '\t');
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    for (int i = 0; i < nf; i++)
        if (!unescape(f[i]))
            return false;

    const char *cmd = f[0];
    if (strcmp(cmd, "VERSION") == 0) {
        out->kind = DOVECOT_VERSION;
        return nf >= 3 && parse_uint(f[1], &out->major) && parse_uint(f[2], &out->minor);
    }
    if (strcmp(cmd, "MECH") == 0) {
        out->kind = DOVECOT_MECH;
        if (nf < 2 || f[1][0] == '\0' || strlen(f[1]) >= sizeof out->mech)
            return false;
        copy_cut(out->mech, sizeof out->mech, f[1]);
        return true;
    }
    if (strcmp(cmd, "SPID") == 0 || strcmp(cmd, "CUID") == 0) {
        out->kind = cmd[0] == 'S' ? DOVECOT_SPID : DOVECOT_CUID;
        unsigned v;
        return nf >= 2 && parse_uint(f[1], &v);
    }
    if (strcmp(cmd, "COOKIE") == 0) {
        out->kind = DOVECOT_COOKIE;
        return nf >= 2 && f[1][0] != '\0';
    }
    if (strcmp(cmd, "DONE") == 0) {
        out->kind = DOVECOT_DONE;
        return true;
    }
    if (strcmp(cmd, "OK") == 0)
        out->kind = DOVECOT_OK;
    else if (strcmp(cmd, "FAIL") == 0)
        out->kind = DOVECOT_FAIL;
    else if (strcmp(cmd, "CONT") == 0)
        out->kind = DOVECOT_CONT;
    else
        return out->kind = DOVECOT_UNKNOWN, true;

    if (nf < 2 || !parse_uint(f[1], &out->id))
        return false;
    if (out->kind == DOVECOT_CONT) {
        out->cont = nf >= 3 ? f[2] : "";
        return true;
    }
    bool ok = out->kind == DOVECOT_OK;
    for (int i = 2; i < nf; i++) {
        const char *a = f[i];
        /* Each flag means something only on its own reply. */
        if (!ok && (strcmp(a, "temp") == 0 || strcmp(a, "code=temp_fail") == 0))
            out->temp = true;
        else if (ok && strcmp(a, "nologin") == 0)
            out->nologin = true;
        else if (ok && strcmp(a, "proxy") == 0)
            out->proxy = true;
        else if (strncmp(a, "user=", 5) == 0)
            copy_cut(out->user, sizeof out->user, a + 5);
        else if (strncmp(a, "reason=", 7) == 0)
            copy_cut(out->reason, sizeof out->reason, a + 7);
    }
    return true;
}

bool dovecot_value_ok(const char *s)
{
    return strpbrk(s, "\t\r\n\001") == NULL;
}

long dovecot_auth_request(char *out, size_t outlen, unsigned id, const char *mech,
                          const char *lip, const char *rip, bool secured,
                          const char *resp)
{
    if (!dovecot_value_ok(mech) || !dovecot_value_ok(lip) || !dovecot_value_ok(rip) ||
        (resp != NULL && !dovecot_value_ok(resp)) || mech[0] == '\0')
        return -1;
    int n = snprintf(out, outlen, "AUTH\t%u\t%s\tservice=smtp\tlip=%s\trip=%s%s\tno-penalty%s%s\n",
                     id, mech, lip, rip, secured ? "\tsecured" : "",
                     resp != NULL ? "\tresp=" : "",
                     /* An empty initial response is written "=" (RFC 4954 §4). */
                     resp == NULL ? "" : resp[0] != '\0' ? resp : "=");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}
