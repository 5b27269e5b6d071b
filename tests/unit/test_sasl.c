/* Unit tests for src/sasl.h: strict base64, AUTH PLAIN and LOGIN decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto/sasl.h"

/* A reference encoder, independent of the module under test. */
static char *ref_b64(const void *data, size_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = malloc((n + 2) / 3 * 4 + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        out[w++] = A[(v >> 18) & 63];
        out[w++] = A[(v >> 12) & 63];
        out[w++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[w] = 0;
    return out;
}

static long dec(const char *in, unsigned char *out, size_t outlen)
{
    return sasl_b64_decode(in, strlen(in), out, outlen);
}

static void test_b64_decode_good(void **state)
{
    (void)state;
    unsigned char out[64];
    assert_int_equal(dec("aGVsbG8=", out, sizeof out), 5);
    assert_memory_equal(out, "hello", 6);          /* NUL-terminated */
    assert_int_equal(dec("aGVsbA==", out, sizeof out), 4);
    assert_string_equal((char *)out, "hell");
    assert_int_equal(dec("aGVs", out, sizeof out), 3);
    assert_string_equal((char *)out, "hel");
    assert_int_equal(dec("//79", out, sizeof out), 3);
    assert_int_equal(out[0], 0xff);
    assert_int_equal(out[1], 0xfe);
    assert_int_equal(out[2], 0xfd);
    assert_int_equal(dec("", out, sizeof out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(dec("AHVzZXIA", out, sizeof out), 6);
    assert_memory_equal(out, "\0user\0", 6);
}

static void test_b64_decode_not_nul_terminated_input(void **state)
{
    (void)state;
    /* only inlen bytes are read */
    unsigned char out[16];
    const char in[] = "aGVsbG8=GARBAGE!!";
    assert_int_equal(sasl_b64_decode(in, 8, out, sizeof out), 5);
    assert_string_equal((char *)out, "hello");
}

static void test_b64_decode_bad_chars(void **state)
{
    (void)state;
    unsigned char out[64];
    const char *bad[] = { "aGVs!G8=", "aGVs-G8=", "aGVs_G8=", "aGV\x80" "bG8=", "aGVsbG8\0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sasl_b64_decode(bad[i], 8, out, sizeof out) != -1)
            fail_msg("bad base64 #%zu accepted", i);
}

static void test_b64_decode_bad_padding(void **state)
{
    (void)state;
    unsigned char out[64];
    const char *bad[] = {
        "aGVsbG8",      /* padding missing */
        "aGVsbA=",      /* half the padding */
        "aGVsbA",
        "aGVsbG8==",    /* too much */
        "aG=sbG8=",     /* padding in the middle */
        "aGVsbG8=aGVs", /* data after padding */
        "=",
        "====",
        "a",
        "aG",
        "aGV",
        "aGVsb",
        "a===",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long n = dec(bad[i], out, sizeof out);
        if (n != -1)
            fail_msg("sasl_b64_decode(\"%s\") = %ld, expected -1", bad[i], n);
    }
}

static void test_b64_decode_whitespace_rejected(void **state)
{
    (void)state;
    unsigned char out[64];
    const char *bad[] = { "aGVs bG8=", "aGVsbG8=\n", "aGVsbG8=\r\n", " aGVsbG8=", "aGVs\tbG8=", "aGVsbG8= " };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long n = dec(bad[i], out, sizeof out);
        if (n != -1)
            fail_msg("sasl_b64_decode(\"%s\") = %ld, expected -1", bad[i], n);
    }
}

static void test_b64_decode_small_buffer(void **state)
{
    (void)state;
    unsigned char out[8];
    memset(out, 0x77, sizeof out);
    /* "hello" needs 5 + NUL */
    assert_int_equal(dec("aGVsbG8=", out, 5), -1);
    assert_int_equal(out[5], 0x77);                /* nothing written past outlen */
    assert_int_equal(dec("aGVsbG8=", out, 6), 5);
    assert_string_equal((char *)out, "hello");
    assert_int_equal(dec("aGVsbG8=", out, 0), -1);
    assert_int_equal(dec("", out, 1), 0);
}

static void test_b64_encode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(sasl_b64_encode((const unsigned char *)"hello", 5, out, sizeof out), 8);
    assert_string_equal(out, "aGVsbG8=");
    assert_int_equal(sasl_b64_encode((const unsigned char *)"hello", 5, out, 9), 8);
    assert_int_equal(sasl_b64_encode((const unsigned char *)"hello", 5, out, 8), -1);
    assert_int_equal(sasl_b64_encode((const unsigned char *)"", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(sasl_b64_encode((const unsigned char *)"hell", 4, out, sizeof out), 8);
    assert_string_equal(out, "aGVsbA==");
}

static void test_b64_roundtrip(void **state)
{
    (void)state;
    unsigned char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof data; n += (n < 10 ? 1 : 37)) {
        char *ref = ref_b64(data, n);
        char enc[512];
        long el = sasl_b64_encode(data, n, enc, sizeof enc);
        assert_int_equal(el, strlen(ref));
        assert_string_equal(enc, ref);
        unsigned char back[320];
        long dl = sasl_b64_decode(ref, strlen(ref), back, sizeof back);
        assert_int_equal(dl, n);
        assert_memory_equal(back, data, n);
        free(ref);
    }
}

static void test_cancel(void **state)
{
    (void)state;
    assert_true(sasl_is_cancel("*"));
    assert_false(sasl_is_cancel(""));
    assert_false(sasl_is_cancel("**"));
    assert_false(sasl_is_cancel("* "));
    assert_false(sasl_is_cancel(" *"));
    assert_false(sasl_is_cancel("*x"));
    assert_false(sasl_is_cancel("Kg=="));          /* base64 of "*" is not a cancel */
}

/* ---- PLAIN -------------------------------------------------------------- */

static bool plain(const char *b64, char *user, char *pass)
{
    return sasl_plain_decode(b64, strlen(b64), user, pass);
}

static bool plain_raw(const void *raw, size_t n, char *user, char *pass)
{
    char *b = ref_b64(raw, n);
    bool ok = sasl_plain_decode(b, strlen(b), user, pass);
    free(b);
    return ok;
}

static void test_plain_no_authzid(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_true(plain("AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0", user, pass));
    assert_string_equal(user, "user@example.org");
    assert_string_equal(pass, "secret");
}

static void test_plain_same_authzid(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_true(plain("dXNlckBleGFtcGxlLm9yZwB1c2VyQGV4YW1wbGUub3JnAHNlY3JldA==", user, pass));
    assert_string_equal(user, "user@example.org");
    assert_string_equal(pass, "secret");
}

static void test_plain_other_authzid_refused(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_false(plain("b3RoZXJAZXhhbXBsZS5vcmcAdXNlckBleGFtcGxlLm9yZwBzZWNyZXQ=", user, pass));
}

/* issue 11 item 9: another identity is a failed login (535, counted), not
 * a response that cannot be decoded (501). */
static void test_plain_other_identity_status(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    const char *other = "b3RoZXJAZXhhbXBsZS5vcmcAdXNlckBleGFtcGxlLm9yZwBzZWNyZXQ=";
    memset(pass, 'Z', sizeof pass);
    assert_int_equal(sasl_plain_parse(other, strlen(other), user, pass), SASL_PLAIN_OTHER_IDENTITY);
    assert_string_equal(user, "user@example.org");   /* the authcid, for the log */
    assert_int_equal(pass[0], 'Z');                  /* the password is not handed out */
    const char *same = "dXNlckBleGFtcGxlLm9yZwB1c2VyQGV4YW1wbGUub3JnAHNlY3JldA==";
    assert_int_equal(sasl_plain_parse(same, strlen(same), user, pass), SASL_PLAIN_OK);
    /* malformed stays malformed, whatever the authzid */
    const char *bad[] = {"dXNlcgBwYXNz", "", "AHVzZXIA", "b3RoZXIAdXNlcgA=", "!!!!"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sasl_plain_parse(bad[i], strlen(bad[i]), user, pass), SASL_PLAIN_MALFORMED);
    /* an authzid too long to be any user of ours is malformed */
    unsigned char raw[SASL_USER_MAX + 16];
    memset(raw, 'a', SASL_USER_MAX);
    memcpy(raw + SASL_USER_MAX, "\0u\0p", 4);
    char *b = ref_b64(raw, SASL_USER_MAX + 4);
    assert_int_equal(sasl_plain_parse(b, strlen(b), user, pass), SASL_PLAIN_MALFORMED);
    free(b);
}

static void test_plain_missing_nuls(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_false(plain("dXNlcgBwYXNz", user, pass));   /* user NUL pass */
    assert_false(plain("dXNlcnBhc3M=", user, pass));   /* userpass */
    assert_false(plain("", user, pass));
}

static void test_plain_empty_fields(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_false(plain("AHVzZXIA", user, pass));       /* NUL user NUL (empty password) */
    assert_false(plain("AABwYXNz", user, pass));       /* NUL NUL pass (empty user) */
    assert_false(plain_raw("\0\0", 2, user, pass));
}

static void test_plain_nul_in_password(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_false(plain("AHUAcGEAc3M=", user, pass));   /* NUL u NUL pa NUL ss */
    assert_true(plain("AHUAcA==", user, pass));        /* NUL u NUL p */
    assert_string_equal(user, "u");
    assert_string_equal(pass, "p");
}

static void test_plain_bad_base64(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    assert_false(plain("AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0!", user, pass));
    assert_false(plain("AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV", user, pass));
    assert_false(plain("AHVzZXJA ZXhhbXBsZS5vcmcAc2VjcmV0", user, pass));
}

static void test_plain_field_sizes(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    char raw[4096];
    size_t n;

    /* the longest user that fits: SASL_USER_MAX - 1 octets */
    n = 0;
    raw[n++] = 0;
    memset(raw + n, 'u', SASL_USER_MAX - 1); n += SASL_USER_MAX - 1;
    raw[n++] = 0;
    memcpy(raw + n, "pw", 2); n += 2;
    assert_true(plain_raw(raw, n, user, pass));
    assert_int_equal(strlen(user), SASL_USER_MAX - 1);

    /* one more does not fit */
    n = 0;
    raw[n++] = 0;
    memset(raw + n, 'u', SASL_USER_MAX); n += SASL_USER_MAX;
    raw[n++] = 0;
    memcpy(raw + n, "pw", 2); n += 2;
    assert_false(plain_raw(raw, n, user, pass));

    /* the longest password that fits: SASL_PASS_MAX - 1 */
    n = 0;
    raw[n++] = 0;
    raw[n++] = 'u';
    raw[n++] = 0;
    memset(raw + n, 'p', SASL_PASS_MAX - 1); n += SASL_PASS_MAX - 1;
    assert_true(plain_raw(raw, n, user, pass));
    assert_int_equal(strlen(pass), SASL_PASS_MAX - 1);

    n = 0;
    raw[n++] = 0;
    raw[n++] = 'u';
    raw[n++] = 0;
    memset(raw + n, 'p', SASL_PASS_MAX); n += SASL_PASS_MAX;
    assert_false(plain_raw(raw, n, user, pass));

    /* an authzid that equals a long user is fine; a huge one is refused */
    n = 0;
    memset(raw + n, 'z', 3000); n += 3000;
    raw[n++] = 0;
    raw[n++] = 'u';
    raw[n++] = 0;
    raw[n++] = 'p';
    assert_false(plain_raw(raw, n, user, pass));
}

static void test_plain_utf8(void **state)
{
    (void)state;
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    const char raw[] = "\0j\xc3\xb6rg@example.org\0p\xc3\xa4ss";
    assert_true(plain_raw(raw, sizeof raw - 1, user, pass));
    assert_string_equal(user, "j\xc3\xb6rg@example.org");
    assert_string_equal(pass, "p\xc3\xa4ss");
}

/* ---- LOGIN -------------------------------------------------------------- */

static void test_login(void **state)
{
    (void)state;
    char out[SASL_USER_MAX];
    const char *b = "dXNlckBleGFtcGxlLm9yZw==";
    assert_true(sasl_login_decode(b, strlen(b), out, sizeof out));
    assert_string_equal(out, "user@example.org");

    assert_false(sasl_login_decode("dXNlckBleGFtcGxlLm9yZw", 22, out, sizeof out));
    assert_false(sasl_login_decode("dXNl!", 5, out, sizeof out));
    assert_false(sasl_login_decode(b, strlen(b), out, 16));    /* 16 octets + NUL */
    assert_true(sasl_login_decode(b, strlen(b), out, 17));
    assert_string_equal(out, "user@example.org");

    /* a password with a NUL in it is refused */
    char *nul = ref_b64("pa\0ss", 5);
    assert_false(sasl_login_decode(nul, strlen(nul), out, sizeof out));
    free(nul);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_decode_good),
        cmocka_unit_test(test_b64_decode_not_nul_terminated_input),
        cmocka_unit_test(test_b64_decode_bad_chars),
        cmocka_unit_test(test_b64_decode_bad_padding),
        cmocka_unit_test(test_b64_decode_whitespace_rejected),
        cmocka_unit_test(test_b64_decode_small_buffer),
        cmocka_unit_test(test_b64_encode),
        cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_plain_no_authzid),
        cmocka_unit_test(test_plain_same_authzid),
        cmocka_unit_test(test_plain_other_authzid_refused),
        cmocka_unit_test(test_plain_other_identity_status),
        cmocka_unit_test(test_plain_missing_nuls),
        cmocka_unit_test(test_plain_empty_fields),
        cmocka_unit_test(test_plain_nul_in_password),
        cmocka_unit_test(test_plain_bad_base64),
        cmocka_unit_test(test_plain_field_sizes),
        cmocka_unit_test(test_plain_utf8),
        cmocka_unit_test(test_login),
    };
    return cmocka_run_group_tests_name("sasl", tests, NULL, NULL);
}
