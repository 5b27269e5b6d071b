/* Fuzzes address/prefix parsing: addr_parse -> addr_format -> addr_parse
 * gives an equal addr, and cidr_list_parse on the same text. */
#include <stdbool.h>
#include <sys/socket.h>
#include "fuzz_common.h"
#include "base/addr.h"

static void check_canonical(const struct addr *a)
{
    CHECK(a->family == AF_INET || a->family == AF_INET6);
    int width = a->family == AF_INET ? 32 : 128;
    CHECK(a->bits <= width);
    /* Host bits past `bits` are zero, and so is everything past the family. */
    for (int i = 0; i < 16; i++) {
        int keep = a->bits - i * 8;
        uint8_t mask = i * 8 >= width ? 0 : keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        CHECK((a->b[i] & (uint8_t)~mask) == 0);
    }
}

static void round_trip(const struct addr *a)
{
    char txt[ADDR_STRLEN];
    struct addr b;
    check_canonical(a);
    addr_format(a, true, txt);
    CHECK(strnlen(txt, ADDR_STRLEN) < ADDR_STRLEN);
    CHECK(addr_parse(txt, true, &b));
    CHECK(addr_equal(a, &b));
    CHECK(addr_in(a, a));
    CHECK(addr_hash(a) == addr_hash(&b));
    int width = a->family == AF_INET ? 32 : 128;
    addr_format(a, false, txt);
    if (a->bits == width) {
        /* A single address reads back without its length too. */
        CHECK(addr_parse(txt, false, &b));
        CHECK(addr_equal(a, &b));
    }
    /* Cutting is idempotent and stays inside the original prefix. */
    struct addr c = addr_prefix_of(a, 24, 64);
    check_canonical(&c);
    if (c.bits <= a->bits)
        CHECK(addr_in(&c, a));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    struct addr a;

    bool with_prefix = addr_parse(s, true, &a);
    if (with_prefix)
        round_trip(&a);
    if (addr_parse(s, false, &a)) {
        CHECK(with_prefix);
        CHECK(a.bits == (a.family == AF_INET ? 32 : 128));
        CHECK(strchr(s, '/') == NULL);
        round_trip(&a);
    }

    /* A list: every entry round-trips and matches itself; a failed parse
     * leaves the old list alone and names the problem. */
    struct cidr_list l = {0, NULL};
    char err[128] = "";
    char small[8];
    if (cidr_list_parse(s, &l, err, sizeof err)) {
        for (size_t i = 0; i < l.n; i++) {
            round_trip(&l.v[i]);
            CHECK(cidr_list_match(&l, &l.v[i]));
        }
        /* Parsing again over a filled list replaces it (no leak). */
        size_t n = l.n;
        CHECK(cidr_list_parse(s, &l, small, sizeof small));
        CHECK(l.n == n);
    } else {
        CHECK(err[0] != '\0' && strnlen(err, sizeof err) < sizeof err);
        CHECK(l.n == 0 && l.v == NULL);
        CHECK(!cidr_list_parse(s, &l, small, sizeof small));
        CHECK(strnlen(small, sizeof small) < sizeof small);
    }
    cidr_list_free(&l);
    free(s);
    return 0;
}
