#include "proto/relay_reply.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "base/util.h"

void relay_reply_init(struct relay_reply *r)
{
    memset(r, 0, sizeof *r);
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1 to 3 digits at s[*i]; advances *i. */
static bool digits3(const char *s, size_t len, size_t *i)
{
    size_t n = 0;
    while (*i < len && digit(s[*i]) && n < 4) {
        (*i)++;
        n++;
    }
    return n >= 1 && n <= 3;
}

bool relay_enh_valid(const char *s, size_t len)
{
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    size_t i = 2;
    if (!digits3(s, len, &i) || i >= len || s[i] != '.')
        return false;
    i++;
    return digits3(s, len, &i) && i == len;
}

/* A keyword equal to `kw`, case-insensitive, followed by the end or a space. */
static bool keyword_is(const char *s, size_t len, const char *kw)
{
    size_t n = strlen(kw);
    return len >= n && strncasecmp(s, kw, n) == 0 && (len == n || s[n] == ' ');
}

static unsigned xforward_attr(const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } attrs[] = {
        {"NAME", XF_NAME}, {"ADDR", XF_ADDR}, {"PORT", XF_PORT}, {"PROTO", XF_PROTO},
        {"HELO", XF_HELO}, {"IDENT", XF_IDENT}, {"SOURCE", XF_SOURCE},
    };
    for (size_t i = 0; i < ARRAY_LEN(attrs); i++)
        if (strlen(attrs[i].name) == n && strncasecmp(s, attrs[i].name, n) == 0)
            return attrs[i].bit;
    return 0;
}

/* One EHLO keyword line ("SIZE 10240000", "XFORWARD NAME ADDR ..."). */
static void ehlo_line(struct relay_reply *r, const char *s, size_t len)
{
    if (keyword_is(s, len, "PIPELINING"))
        r->ext |= RELAY_EXT_PIPELINING;
    else if (keyword_is(s, len, "STARTTLS"))
        r->ext |= RELAY_EXT_STARTTLS;
    else if (keyword_is(s, len, "8BITMIME"))
        r->ext |= RELAY_EXT_8BITMIME;
    else if (keyword_is(s, len, "SMTPUTF8"))
        r->ext |= RELAY_EXT_SMTPUTF8;
    else if (keyword_is(s, len, "ENHANCEDSTATUSCODES"))
        r->ext |= RELAY_EXT_ENHANCEDSTATUSCODES;
    else if (keyword_is(s, len, "SIZE")) {
        r->ext |= RELAY_EXT_SIZE;
        uint64_t v = 0;
        bool ok = true;
        size_t i = 4;
        while (i < len && s[i] == ' ')
            i++;
        for (; i < len && ok; i++) {
            if (!digit(s[i]) || v > (UINT64_MAX - 9) / 10)
                ok = false;
            else
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        r->size = ok ? v : 0;
    } else if (keyword_is(s, len, "XFORWARD")) {
        r->ext |= RELAY_EXT_XFORWARD;
        size_t i = 8;
        while (i < len) {
            while (i < len && s[i] == ' ')
                i++;
            size_t start = i;
            while (i < len && s[i] != ' ')
                i++;
            r->xforward |= xforward_attr(s + start, i - start);
        }
    }
}

enum relay_feed relay_reply_feed(struct relay_reply *r, const char *line, size_t len)
{
    if (len < 3 || len > RELAY_REPLY_LINE_MAX || r->lines >= RELAY_REPLY_LINES_MAX)
        return RELAY_BAD;
    if (!(line[0] >= '2' && line[0] <= '5') || !digit(line[1]) || !digit(line[2]))
        return RELAY_BAD;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last;
    if (len == 3 || line[3] == ' ')
        last = true;
    else if (line[3] == '-')
        last = false;
    else
        return RELAY_BAD;
    /* Every line of one reply carries the same code (RFC 5321 §4.2.1). */
    if (r->lines > 0 && code != r->code)
        return RELAY_BAD;
    const char *text = len > 4 ? line + 4 : "";
    size_t tlen = len > 4 ? len - 4 : 0;

    if (r->lines == 0) {
        r->code = code;
        /* The enhanced code must agree with the reply's class. */
        size_t e = 0;
        while (e < tlen && text[e] != ' ')
            e++;
        if (relay_enh_valid(text, e) && text[0] == line[0] && e < sizeof r->enh) {
            memcpy(r->enh, text, e);
            r->enh[e] = '\0';
            text += e;
            tlen -= e;
            while (tlen > 0 && *text == ' ')
                text++, tlen--;
        }
        size_t n = tlen < sizeof r->text - 1 ? tlen : sizeof r->text - 1;
        /* Only printable ASCII goes on: this text may reach our client and log. */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)text[i];
            r->text[i] = c >= ' ' && c < 0x7f ? (char)c : '?';
        }
        r->text[n] = '\0';
    } else if (code / 100 == 2) {
        ehlo_line(r, text, tlen);
    }
    r->lines++;
    return last ? RELAY_DONE : RELAY_MORE;
}

void relay_xtext(char *out, size_t outlen, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = ch >= '!' && ch <= '~' && ch != '+' && ch != '=';
        if (w + (plain ? 1 : 3) >= outlen)
            break;
        if (plain) {
            out[w++] = (char)ch;
        } else {
            out[w++] = '+';
            out[w++] = hex[ch >> 4];
            out[w++] = hex[ch & 15];
        }
    }
    if (outlen > 0)
        out[w] = '\0';
}

/* Room for the attributes of one line after "XFORWARD". */
#define XF_ATTRS_MAX (RELAY_XFORWARD_MAX - 8)

/* Appends " KEY=xtext(value)" at *n, or nothing when it does not fit
 * (never half an attribute). Values are cut to 299 octets of xtext. */
static void attr(char line[XF_ATTRS_MAX], size_t *n, const char *key, const char *value)
{
    char v[300];
    relay_xtext(v, sizeof v, value);
    int k = snprintf(line + *n, XF_ATTRS_MAX - *n, " %s=%s", key, v);
    if (k > 0 && *n + (size_t)k < XF_ATTRS_MAX)
        *n += (size_t)k;
    else
        line[*n] = '\0';
}

int relay_xforward_lines(unsigned attrs, const struct relay_xforward *x,
                         char line1[RELAY_XFORWARD_MAX], char line2[RELAY_XFORWARD_MAX])
{
    /* HELO (up to 255 octets, more as xtext) apart: the rest always fits
     * one line (NAME is cut like every value). */
    char a[XF_ATTRS_MAX] = "", b[XF_ATTRS_MAX] = "", port[16];
    size_t na = 0, nb = 0;
    snprintf(port, sizeof port, "%u", x->port);
    if (attrs & XF_ADDR)
        attr(a, &na, "ADDR", x->addr);
    if ((attrs & XF_PORT) && x->port != 0)
        attr(a, &na, "PORT", port);
    if (attrs & XF_PROTO)
        attr(a, &na, "PROTO", x->proto);
    if (attrs & XF_IDENT)
        attr(a, &na, "IDENT", x->ident);
    if (attrs & XF_NAME)
        attr(a, &na, "NAME", x->name);
    if ((attrs & XF_HELO) && x->helo[0] != '\0')
        attr(b, &nb, "HELO", x->helo);
    if (na + nb == 0)
        return 0;
    if (na + nb < XF_ATTRS_MAX || na == 0 || nb == 0) {
        snprintf(line1, RELAY_XFORWARD_MAX, "XFORWARD%s%s", a, b);
        return 1;
    }
    snprintf(line1, RELAY_XFORWARD_MAX, "XFORWARD%s", a);
    snprintf(line2, RELAY_XFORWARD_MAX, "XFORWARD%s", b);
    return 2;
}

void relay_queue_id(const char *text, char *out, size_t outlen)
{
    const char *p = strstr(text, "queued as ");
    out[0] = '\0';
    if (p == NULL)
        return;
    p += 10;
    size_t n = strcspn(p, " ;,");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}
