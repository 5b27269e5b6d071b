#include "proto/proxy.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define V1_MAX 107

/* Either buf starts like `want` as far as it goes (need more), or it is not
 * this version. */
static bool starts_like(const uint8_t *buf, size_t len, const void *want, size_t wlen)
{
    size_t n = len < wlen ? len : wlen;
    return memcmp(buf, want, n) == 0;
}

static bool port_parse(const char *s, uint16_t *out)
{
    long v;
    /* RFC-style decimal without leading zeros, as the spec demands. */
    if (s[0] == '0' && s[1] != '\0')
        return false;
    if (!util_parse_long(s, 0, 65535, &v))
        return false;
    *out = (uint16_t)v;
    return true;
}

static enum proxy_status parse_v1(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    const uint8_t *lf = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (lf == NULL)
        return len < V1_MAX ? PROXY_NEED_MORE : PROXY_INVALID;
    size_t n = (size_t)(lf - buf);
    if (n < 1 || buf[n - 1] != '\r')
        return PROXY_INVALID;
    char line[V1_MAX + 1];
    memcpy(line, buf, n - 1);
    line[n - 1] = '\0';
    if (memchr(line, '\0', n - 1) != NULL)
        return PROXY_INVALID;

    /* Fields are separated by exactly one space (the spec's grammar). */
    char *f[7];
    int nf = 0;
    for (char *w = line;;) {
        if (nf == 6)
            return PROXY_INVALID;
        f[nf++] = w;
        char *sp = strchr(w, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        w = sp + 1;
    }
    for (int i = 0; i < nf; i++)
        if (f[i][0] == '\0' || strchr(f[i], '[') != NULL)
            return PROXY_INVALID;
    memset(r, 0, sizeof *r);
    r->version = 1;
    r->len = n + 1;
    if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
        r->local = true;
        return PROXY_DONE;
    }
    if (nf != 6 || strcmp(f[0], "PROXY") != 0)
        return PROXY_INVALID;
    int fam;
    if (strcmp(f[1], "TCP4") == 0)
        fam = AF_INET;
    else if (strcmp(f[1], "TCP6") == 0)
        fam = AF_INET6;
    else
        return PROXY_INVALID;
    /* A TCP6 header may carry a mapped IPv4 address; TCP4 may not carry v6. */
    if (!addr_parse(f[2], false, &r->src) || !addr_parse(f[3], false, &r->dst))
        return PROXY_INVALID;
    if (fam == AF_INET && (strchr(f[2], ':') || strchr(f[3], ':')))
        return PROXY_INVALID;
    if (fam == AF_INET6 && (!strchr(f[2], ':') || !strchr(f[3], ':')))
        return PROXY_INVALID;
    if (!port_parse(f[4], &r->src_port) || !port_parse(f[5], &r->dst_port))
        return PROXY_INVALID;
    return PROXY_DONE;
}

static enum proxy_status parse_v2(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    if (len < 16)
        return PROXY_NEED_MORE;
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f, fam = buf[13];
    size_t body = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2 || cmd > 1 || 16 + body > PROXY_MAX_HEADER)
        return PROXY_INVALID;
    if (len < 16 + body)
        return PROXY_NEED_MORE;
    memset(r, 0, sizeof *r);
    r->version = 2;
    r->len = 16 + body;
    const uint8_t *a = buf + 16;
    if (cmd == 0) {   /* LOCAL: the proxy's own health check */
        r->local = true;
        return PROXY_DONE;
    }
    uint8_t af = fam >> 4, proto = fam & 0x0f;
    if (proto != 1)   /* only STREAM makes sense for SMTP */
        return af == 0 && proto == 0 ? (r->local = true, PROXY_DONE) : PROXY_INVALID;
    if (af == 1) {
        if (body < 12)
            return PROXY_INVALID;
        r->src.family = r->dst.family = AF_INET;
        r->src.bits = r->dst.bits = 32;
        memcpy(r->src.b, a, 4);
        memcpy(r->dst.b, a + 4, 4);
        r->src_port = (uint16_t)(a[8] << 8 | a[9]);
        r->dst_port = (uint16_t)(a[10] << 8 | a[11]);
        return PROXY_DONE;
    }
    if (af == 2) {
        if (body < 36)
            return PROXY_INVALID;
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6}, d6 = {.sin6_family = AF_INET6};
        memcpy(&s6.sin6_addr, a, 16);
        memcpy(&d6.sin6_addr, a + 16, 16);
        addr_from_sockaddr((struct sockaddr *)&s6, &r->src);
        addr_from_sockaddr((struct sockaddr *)&d6, &r->dst);
        r->src_port = (uint16_t)(a[32] << 8 | a[33]);
        r->dst_port = (uint16_t)(a[34] << 8 | a[35]);
        return PROXY_DONE;
    }
    if (af == 0) {    /* UNSPEC: no address to speak of */
        r->local = true;
        return PROXY_DONE;
    }
    return PROXY_INVALID;   /* AF_UNIX and unknown families */
}

enum proxy_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_result *r)
{
    if (len == 0)
        return PROXY_NEED_MORE;
    if (starts_like(buf, len, v2sig, sizeof v2sig)) {
        if (len > sizeof v2sig && buf[12] >> 4 != 2)
            return PROXY_INVALID;
        return len < sizeof v2sig ? PROXY_NEED_MORE : parse_v2(buf, len, r);
    }
    if (starts_like(buf, len, "PROXY ", 6))
        return len < 6 ? PROXY_NEED_MORE : parse_v1(buf, len, r);
    return PROXY_INVALID;
}
