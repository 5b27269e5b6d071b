/* Fuzzes Dovecot auth-client line parsing, line by line as the client
 * reads them, and the AUTH request writer with the input as its fields. */
#include <stdbool.h>
#include "fuzz_common.h"
#include "proto/dovecot_proto.h"

static void one_line(const uint8_t *p, size_t len)
{
    /* The parser writes line[len]: give it exactly len+1. */
    char *line = malloc(len + 1);
    if (line == NULL)
        abort();
    if (len > 0)
        memcpy(line, p, len);
    struct dovecot_line l;
    bool ok = dovecot_parse_line(line, len, &l);
    if (ok) {
        CHECK(len <= DOVECOT_LINE_MAX);
        CHECK(strnlen(l.user, sizeof l.user) < sizeof l.user);
        CHECK(strnlen(l.reason, sizeof l.reason) < sizeof l.reason);
        CHECK(l.cont != NULL);
        if (l.kind == DOVECOT_MECH)
            CHECK(l.mech[0] != '\0' && strnlen(l.mech, sizeof l.mech) < sizeof l.mech);
        if (l.kind != DOVECOT_OK)
            CHECK(!l.nologin && !l.proxy);
        if (l.kind != DOVECOT_FAIL)
            CHECK(!l.temp);
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t start = 0;
    while (start <= size) {
        const uint8_t *lf = start < size ? memchr(data + start, '\n', size - start) : NULL;
        size_t end = lf ? (size_t)(lf - data) : size;
        one_line(data + start, end - start);
        start = end + 1;
    }

    /* The request: fields taken from the input; a value with TAB, CR, LF
     * or \001 must be refused, never sent. */
    char *s = fuzz_cstr(data, size);
    size_t n = strlen(s);
    const char *rip = s + n / 2;
    char out[512];
    long w = dovecot_auth_request(out, sizeof out, 1, "PLAIN", "127.0.0.1", rip, true, s);
    if (w >= 0) {
        CHECK(dovecot_value_ok(s) && dovecot_value_ok(rip));
        CHECK((size_t)w == strlen(out) && w > 0 && out[w - 1] == '\n');
        CHECK(memchr(out, '\n', (size_t)w - 1) == NULL);
    } else {
        /* The fixed words take under 100 octets; the rest is resp and rip. */
        CHECK(!dovecot_value_ok(s) || !dovecot_value_ok(rip) ||
              n + (n - n / 2) + 100 >= sizeof out);
    }
    free(s);
    return 0;
}
