/* Fuzzes the PROXY protocol v1/v2 header parser on the whole input and on
 * every prefix of it (each an exact-size heap copy, so a read past the
 * bytes received so far is caught). */
#include <stdbool.h>
#include <sys/socket.h>
#include "fuzz_common.h"
#include "proto/proxy.h"

static bool same_result(const struct proxy_result *x, const struct proxy_result *y)
{
    if (x->len != y->len || x->version != y->version || x->local != y->local)
        return false;
    if (x->local)
        return true;
    return addr_equal(&x->src, &y->src) && addr_equal(&x->dst, &y->dst) &&
           x->src_port == y->src_port && x->dst_port == y->dst_port;
}

static void check_addr(const struct addr *a)
{
    CHECK(a->family == AF_INET || a->family == AF_INET6);
    CHECK(a->bits == (a->family == AF_INET ? 32 : 128));
}

static enum proxy_status parse_copy(const uint8_t *data, size_t k, struct proxy_result *r)
{
    uint8_t *p = fuzz_dup(data, k);
    enum proxy_status st = proxy_parse(p, k, r);
    free(p);
    CHECK(st == PROXY_NEED_MORE || st == PROXY_DONE || st == PROXY_INVALID);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_result full;
    memset(&full, 0, sizeof full);
    enum proxy_status st = parse_copy(data, size, &full);

    /* NEED_MORE never asks to buffer past the cap. */
    if (st == PROXY_NEED_MORE)
        CHECK(size < PROXY_MAX_HEADER);

    size_t L = 0;
    if (st == PROXY_DONE) {
        L = full.len;
        CHECK(L > 0 && L <= size && L <= PROXY_MAX_HEADER);
        CHECK(full.version == 1 || full.version == 2);
        if (full.version == 1)
            CHECK(L <= 107 && data[L - 2] == '\r' && data[L - 1] == '\n');
        else
            CHECK(L >= 16);
        if (!full.local) {
            check_addr(&full.src);
            check_addr(&full.dst);
        }
    }

    for (size_t k = 0; k < size; k++) {
        struct proxy_result r;
        memset(&r, 0, sizeof r);
        enum proxy_status pst = parse_copy(data, k, &r);
        if (st == PROXY_DONE && k < L) {
            /* The header is not complete yet: read more. */
            CHECK(pst == PROXY_NEED_MORE);
        } else if (st == PROXY_DONE) {
            /* Complete: what follows the header does not change it. */
            CHECK(pst == PROXY_DONE && same_result(&r, &full));
        }
    }
    return 0;
}
