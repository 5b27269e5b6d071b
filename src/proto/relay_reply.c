#include "proto/relay_reply.h"

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
