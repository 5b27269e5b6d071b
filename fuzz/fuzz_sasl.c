/* Fuzzes AUTH PLAIN / LOGIN decoding and the strict base64 codec:
 * the input is taken both as a client's base64 line and as raw bytes that
 * are encoded, decoded back, and read as a PLAIN message. */
#include <stdbool.h>
#include "fuzz_common.h"
#include "proto/sasl.h"

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* Decodes into exact-size heap buffers of outlen, outlen-1 and a tight one. */
static void decode_line(const char *in, size_t n)
{
    size_t cap = n / 4 * 3 + 1;
    unsigned char *out = malloc(cap);
    if (out == NULL)
        abort();
    long got = sasl_b64_decode(in, n, out, cap);
    if (got >= 0) {
        /* The shape it promises: strict, padded, groups of four. */
        CHECK(n % 4 == 0);
        CHECK((size_t)got == n / 4 * 3 - (n >= 1 && in[n - 1] == '=') - (n >= 2 && in[n - 2] == '='));
        for (size_t i = 0; i < n; i++)
            CHECK(b64_char((unsigned char)in[i]) || (in[i] == '=' && i + 2 >= n));
        CHECK(out[got] == '\0');
        /* Exactly got+1 octets suffice; got octets do not. */
        unsigned char *tight = malloc((size_t)got + 1);
        if (tight == NULL)
            abort();
        CHECK(sasl_b64_decode(in, n, tight, (size_t)got + 1) == got);
        CHECK(memcmp(tight, out, (size_t)got + 1) == 0);
        CHECK(sasl_b64_decode(in, n, tight, (size_t)got) == -1);
        free(tight);
    } else {
        CHECK(got == -1);
    }
    free(out);

    char *user = malloc(SASL_USER_MAX), *pass = malloc(SASL_PASS_MAX);
    if (user == NULL || pass == NULL)
        abort();
    if (sasl_plain_decode(in, n, user, pass)) {
        CHECK(got > 0);
        size_t ul = strnlen(user, SASL_USER_MAX), pl = strnlen(pass, SASL_PASS_MAX);
        CHECK(ul > 0 && ul < SASL_USER_MAX);
        CHECK(pl > 0 && pl < SASL_PASS_MAX);
    }
    free(user);
    free(pass);

    /* LOGIN into the session's own buffer sizes, exact on the heap. */
    static const size_t sizes[] = {SASL_USER_MAX, SASL_PASS_MAX, 1, 2, 4};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *o = malloc(sizes[i]);
        if (o == NULL)
            abort();
        if (sasl_login_decode(in, n, o, sizes[i])) {
            size_t l = strnlen(o, sizes[i]);
            CHECK(l > 0 && l < sizes[i]);
            CHECK(got >= 0 && (size_t)got == l);
        }
        free(o);
    }
}

/* Raw bytes -> base64 -> back, and as a PLAIN message. */
static void round_trip(const uint8_t *raw, size_t n)
{
    size_t need = (n + 2) / 3 * 4 + 1;
    char *enc = malloc(need);
    if (enc == NULL)
        abort();
    long elen = sasl_b64_encode(raw, n, enc, need);
    CHECK(elen >= 0 && (size_t)elen == need - 1 && enc[elen] == '\0');
    CHECK(sasl_b64_encode(raw, n, enc, need - 1) == -1);

    unsigned char *dec = malloc(n + 1);
    if (dec == NULL)
        abort();
    CHECK(sasl_b64_decode(enc, (size_t)elen, dec, n + 1) == (long)n);
    CHECK(n == 0 || memcmp(dec, raw, n) == 0);
    free(dec);

    /* PLAIN: authzid NUL authcid NUL passwd. Work out the verdict by hand. */
    char *user = malloc(SASL_USER_MAX), *pass = malloc(SASL_PASS_MAX);
    if (user == NULL || pass == NULL)
        abort();
    bool ok = sasl_plain_decode(enc, (size_t)elen, user, pass);
    const uint8_t *nul1 = n ? memchr(raw, 0, n) : NULL;
    const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - raw)) : NULL;
    bool want = false;
    size_t zl = 0, ul = 0, pl = 0;
    if (nul2 != NULL && n + 1 <= SASL_USER_MAX * 2 + SASL_PASS_MAX + 4) {
        zl = (size_t)(nul1 - raw);
        ul = (size_t)(nul2 - nul1 - 1);
        pl = n - (size_t)(nul2 + 1 - raw);
        want = ul > 0 && pl > 0 && ul < SASL_USER_MAX && pl < SASL_PASS_MAX &&
               memchr(nul2 + 1, 0, pl) == NULL &&
               (zl == 0 || (zl == ul && memcmp(raw, nul1 + 1, ul) == 0));
    }
    CHECK(ok == want);
    if (ok) {
        CHECK(strlen(user) == ul && memcmp(user, nul1 + 1, ul) == 0);
        CHECK(strlen(pass) == pl && memcmp(pass, nul2 + 1, pl) == 0);
    }
    free(user);
    free(pass);

    /* LOGIN: the bare value, refused when empty or holding a NUL. */
    char *o = malloc(SASL_PASS_MAX);
    if (o == NULL)
        abort();
    bool lok = sasl_login_decode(enc, (size_t)elen, o, SASL_PASS_MAX);
    CHECK(lok == (n > 0 && n < SASL_PASS_MAX && memchr(raw, 0, n) == NULL));
    if (lok)
        CHECK(memcmp(o, raw, n) == 0 && o[n] == '\0');
    free(o);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The session passes a NUL-terminated line and its strlen. */
    char *line = fuzz_cstr(data, size);
    size_t len = strlen(line);
    decode_line(line, len);
    CHECK(sasl_is_cancel(line) == (len == 1 && line[0] == '*'));
    free(line);

    round_trip(data, size);
    return 0;
}
