/* Fuzzes the next hop's reply parser: the input is split into lines at LF
 * (a CR before it dropped, as the client reads them) and fed until a reply
 * is complete or refused; then a new reply starts. */
#include <stdbool.h>
#include "fuzz_common.h"
#include "proto/relay_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    struct relay_reply r;
    relay_reply_init(&r);
    size_t start = 0;
    while (start < size) {
        const uint8_t *lf = memchr(buf + start, '\n', size - start);
        size_t end = lf ? (size_t)(lf - buf) : size;
        size_t len = end - start;
        if (len > 0 && buf[start + len - 1] == '\r')
            len--;
        /* An exact-size copy so reads past len are caught. */
        uint8_t *line = fuzz_dup(buf + start, len);
        int before = r.lines;
        enum relay_feed v = relay_reply_feed(&r, (const char *)line, len);
        free(line);
        if (v == RELAY_BAD) {
            CHECK(r.lines == before);
            relay_reply_init(&r);
        } else {
            CHECK(r.lines == before + 1 && r.lines <= RELAY_REPLY_LINES_MAX);
            CHECK(r.code >= 200 && r.code <= 599);
            CHECK(len >= 3 && len <= RELAY_REPLY_LINE_MAX);
            size_t tl = strnlen(r.text, sizeof r.text);
            CHECK(tl < sizeof r.text);
            for (size_t i = 0; i < tl; i++)
                CHECK(r.text[i] >= ' ' && r.text[i] < 0x7f);
            size_t el = strnlen(r.enh, sizeof r.enh);
            CHECK(el < sizeof r.enh);
            if (el > 0)
                CHECK(relay_enh_valid(r.enh, el) && r.enh[0] == '0' + r.code / 100);
            if (r.xforward != 0)
                CHECK(r.ext & RELAY_EXT_XFORWARD);
            if (v == RELAY_DONE)
                relay_reply_init(&r);
        }
        start = end + 1;
    }
    free(buf);

    /* The input as XFORWARD values and as a reply text. */
    char *v = fuzz_cstr(data, size);
    struct relay_xforward x = {v, 1, "ESMTP", v, v, v};
    char l1[RELAY_XFORWARD_MAX], l2[RELAY_XFORWARD_MAX];
    int n = relay_xforward_lines(XF_ADDR | XF_PORT | XF_PROTO | XF_IDENT | XF_NAME | XF_HELO,
                                 &x, l1, l2);
    CHECK(n >= 1 && n <= 2);
    for (int i = 0; i < n; i++) {
        const char *l = i == 0 ? l1 : l2;
        size_t ll = strnlen(l, RELAY_XFORWARD_MAX);
        CHECK(ll < RELAY_XFORWARD_MAX && strncmp(l, "XFORWARD ", 9) == 0);
        for (size_t k = 0; k < ll; k++)      /* xtext: printable ASCII only */
            CHECK(l[k] >= ' ' && l[k] < 0x7f);
    }
    char id[64];
    relay_queue_id(v, id, sizeof id);
    CHECK(strnlen(id, sizeof id) < sizeof id);
    free(v);
    return 0;
}
