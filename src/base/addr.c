#include "base/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int family_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

void addr_cut(struct addr *a, int bits)
{
    int width = family_bits(a->family);
    if (bits < 0)
        bits = 0;
    if (bits > width)
        bits = width;
    a->bits = (uint8_t)bits;
    int bytes = width / 8;
    for (int i = 0; i < bytes; i++) {
        int keep = bits - i * 8;
        if (keep >= 8)
            continue;
        a->b[i] &= keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
    memset(a->b + bytes, 0, sizeof a->b - (size_t)bytes);
}

static void set_v6(struct addr *a, const uint8_t b[16])
{
    memset(a, 0, sizeof *a);
    if (memcmp(b, v4mapped, sizeof v4mapped) == 0) {
        a->family = AF_INET;
        a->bits = 32;
        memcpy(a->b, b + 12, 4);
    } else {
        a->family = AF_INET6;
        a->bits = 128;
        memcpy(a->b, b, 16);
    }
}

bool addr_parse(const char *s, bool allow_prefix, struct addr *out)
{
    char buf[ADDR_STRLEN + 8];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n + 1);

    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash != NULL) {
        if (!allow_prefix || !util_parse_long(slash + 1, 0, 128, &bits))
            return false;
        *slash = '\0';
    }
    char *host = buf;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }

    struct addr a;
    memset(&a, 0, sizeof a);
    uint8_t b6[16];
    if (inet_pton(AF_INET, host, a.b) == 1) {
        a.family = AF_INET;
        a.bits = 32;
    } else if (inet_pton(AF_INET6, host, b6) == 1) {
        set_v6(&a, b6);
        /* A mapped prefix counts in the IPv4 space: ::ffff:0:0/104 is /8. */
        if (bits >= 0 && a.family == AF_INET)
            bits = bits >= 96 ? bits - 96 : -2;
    } else {
        return false;
    }
    if (bits == -2 || bits > family_bits(a.family))
        return false;
    addr_cut(&a, bits >= 0 ? (int)bits : family_bits(a.family));
    *out = a;
    return true;
}

bool addr_from_sockaddr(const struct sockaddr *sa, struct addr *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        out->bits = 32;
        memcpy(out->b, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        set_v6(out, in6->sin6_addr.s6_addr);
        return true;
    }
    return false;
}

socklen_t addr_to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, a->b, 4);
        return sizeof *in;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    memcpy(&in6->sin6_addr, a->b, 16);
    return sizeof *in6;
}

struct addr addr_prefix_of(const struct addr *a, int v4bits, int v6bits)
{
    struct addr p = *a;
    addr_cut(&p, a->family == AF_INET ? v4bits : v6bits);
    return p;
}

void addr_format(const struct addr *a, bool with_len, char out[ADDR_STRLEN])
{
    char host[INET6_ADDRSTRLEN];
    if (inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->b, host, sizeof host) == NULL)
        util_strlcpy(host, "?", sizeof host);
    if (with_len)
        snprintf(out, ADDR_STRLEN, "%s/%u", host, a->bits);
    else
        snprintf(out, ADDR_STRLEN, "%s", host);
}

bool addr_equal(const struct addr *x, const struct addr *y)
{
    return x->family == y->family && x->bits == y->bits &&
           memcmp(x->b, y->b, x->family == AF_INET ? 4 : 16) == 0;
}

bool addr_in(const struct addr *net, const struct addr *a)
{
    if (net->family != a->family || a->bits < net->bits)
        return false;
    struct addr cut = *a;
    addr_cut(&cut, net->bits);
    return addr_equal(&cut, net);
}

uint64_t addr_hash(const struct addr *a)
{
    /* FNV-1a over what identifies the prefix, then a final mix so that
     * neighbouring prefixes spread over shards and buckets. */
    uint64_t h = 1469598103934665603ULL;
    size_t n = a->family == AF_INET ? 4 : 16;
    h = (h ^ a->family) * 1099511628211ULL;
    h = (h ^ a->bits) * 1099511628211ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ a->b[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

bool cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen)
{
    struct cidr_list l = {0, NULL};
    const char *p = s;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        size_t n = strcspn(p, " ,\t");
        char word[ADDR_STRLEN + 8];
        if (n >= sizeof word) {
            snprintf(err, errlen, "not an address or prefix: '%.*s'", (int)(n > 60 ? 60 : n), p);
            free(l.v);
            return false;
        }
        memcpy(word, p, n);
        word[n] = '\0';
        struct addr a;
        if (!addr_parse(word, true, &a)) {
            snprintf(err, errlen, "not an address or prefix: '%s'", word);
            free(l.v);
            return false;
        }
        struct addr *v = realloc(l.v, (l.n + 1) * sizeof *v);
        if (v == NULL) {
            free(l.v);
            snprintf(err, errlen, "out of memory");
            return false;
        }
        l.v = v;
        l.v[l.n++] = a;
        p += n;
    }
    cidr_list_free(out);
    *out = l;
    return true;
}

bool cidr_list_match(const struct cidr_list *l, const struct addr *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (addr_in(&l->v[i], a))
            return true;
    return false;
}

void cidr_list_free(struct cidr_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}
