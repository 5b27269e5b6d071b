/* Unit tests for src/smtp_data.h: the DATA stream. Only CRLF.CRLF ends it,
 * bare CR/LF refuse the message, dot-unstuffing, LF output, line and size
 * limits, and the end found wherever the reads split it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"

struct sink {
    char *buf;
    size_t len, cap;
    int calls;
};

static void sink_emit(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    s->calls++;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        s->buf = realloc(s->buf, cap);
        assert_non_null(s->buf);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = 0;
}

static void sink_init(struct sink *s)
{
    memset(s, 0, sizeof *s);
    s->cap = 64;
    s->buf = calloc(1, s->cap);
}

static void sink_free(struct sink *s)
{
    free(s->buf);
    memset(s, 0, sizeof *s);
}

struct run {
    size_t consumed;
    bool done;
    enum smtp_data_error error;
};

/* Feeds `in` in one call. */
static struct run feed_all(const char *in, size_t len, uint64_t max, struct sink *s)
{
    struct smtp_data d;
    smtp_data_init(&d, max, sink_emit, s);
    struct run r;
    r.consumed = smtp_data_feed(&d, in, len);
    r.done = d.done;
    r.error = d.error;
    return r;
}

/* Feeds `in` split at the offsets in cuts[] (ascending), like separate reads
 * of a caller that keeps what was not consumed and offers it again with the
 * next read (as an evbuffer does). Once done, what is left is not the
 * parser's. */
static struct run feed_split(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                             uint64_t max, struct sink *s)
{
    struct smtp_data d;
    smtp_data_init(&d, max, sink_emit, s);
    size_t pos = 0;
    for (size_t i = 0; i <= ncuts && !d.done; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (end < pos)
            end = pos;
        size_t n = smtp_data_feed(&d, in + pos, end - pos);
        if (n > end - pos)
            fail_msg("consumed %zu of %zu bytes offered at offset %zu", n, end - pos, pos);
        pos += n;
    }
    struct run r = { pos, d.done, d.error };
    return r;
}

static void expect_msg(const char *in, const char *out, size_t tail)
{
    struct sink s;
    sink_init(&s);
    size_t len = strlen(in);
    struct run r = feed_all(in, len, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_int_equal(r.consumed, len - tail);
    assert_int_equal(s.len, strlen(out));
    assert_memory_equal(s.buf, out, s.len);
    sink_free(&s);
}

static void test_simple(void **state)
{
    (void)state;
    expect_msg("Subject: hi\r\n\r\nHello\r\n.\r\n", "Subject: hi\n\nHello\n", 0);
}

static void test_empty_message(void **state)
{
    (void)state;
    expect_msg(".\r\n", "", 0);
}

static void test_lf_output(void **state)
{
    (void)state;
    struct sink s;
    sink_init(&s);
    const char *in = "A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n.\r\n";
    struct run r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_null(memchr(s.buf, '\r', s.len));
    assert_string_equal(s.buf, "A: 1\nB: 2\n\nx\ny\n");
    sink_free(&s);
}

static void test_dot_unstuffing(void **state)
{
    (void)state;
    expect_msg("..leading dot\r\n.\r\n", ".leading dot\n", 0);
    expect_msg("...\r\n.\r\n", "..\n", 0);
    expect_msg("..\r\n.\r\n", ".\n", 0);
    expect_msg("a.b\r\n.x\r\n. \r\n.\r\n", "a.b\nx\n \n", 0);
    expect_msg("x\r\n..\r\n..\r\n.\r\n", "x\n.\n.\n", 0);
    /* a dot not at the start of a line is kept */
    expect_msg("end.\r\n.\r\n", "end.\n", 0);
}

static void test_8bit_kept(void **state)
{
    (void)state;
    expect_msg("Gr\xc3\xbc\xc3\x9f" "e\r\n\xff\x80\r\n.\r\n", "Gr\xc3\xbc\xc3\x9f" "e\n\xff\x80\n", 0);
}

static void test_bytes_after_end_not_consumed(void **state)
{
    (void)state;
    expect_msg("x\r\n.\r\nMAIL FROM:<a@b>\r\n", "x\n", strlen("MAIL FROM:<a@b>\r\n"));
    expect_msg("x\r\n.\r\nQ", "x\n", 1);
    expect_msg(".\r\n.\r\n", "", 3);
}

/* The reference message for the split tests. */
static const char SPLIT_MSG[] = "Subject: s\r\n\r\nline1\r\n..dot\r\n..\r\n\r\nx.\r\n.\r\nRSET\r\n";
static const char SPLIT_OUT[] = "Subject: s\n\nline1\n.dot\n.\n\nx.\n";
#define SPLIT_TAIL 6   /* "RSET\r\n" */

static void check_split(const size_t *cuts, size_t ncuts)
{
    struct sink s;
    sink_init(&s);
    size_t len = strlen(SPLIT_MSG);
    struct run r = feed_split(SPLIT_MSG, len, cuts, ncuts, 0, &s);
    if (!r.done || r.error != SMTP_DATA_OK || r.consumed != len - SPLIT_TAIL ||
        s.len != strlen(SPLIT_OUT) || memcmp(s.buf, SPLIT_OUT, s.len) != 0) {
        char where[128] = "";
        size_t w = 0;
        for (size_t i = 0; i < ncuts && w < sizeof where - 8; i++)
            w += (size_t)snprintf(where + w, sizeof where - w, " %zu", cuts[i]);
        fail_msg("cuts at [%s ]: done=%d error=%d consumed=%zu (want %zu) out=\"%s\"",
                 where, r.done, r.error, r.consumed, len - SPLIT_TAIL, s.buf ? s.buf : "");
    }
    sink_free(&s);
}

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    size_t len = strlen(SPLIT_MSG);
    size_t cuts[sizeof SPLIT_MSG];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    check_split(cuts, len - 1);
}

static void test_split_two_chunks(void **state)
{
    (void)state;
    size_t len = strlen(SPLIT_MSG);
    for (size_t i = 0; i <= len; i++) {
        size_t cuts[1] = { i };
        check_split(cuts, 1);
    }
}

static void test_split_three_chunks(void **state)
{
    (void)state;
    size_t len = strlen(SPLIT_MSG);
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = { i, j };
            check_split(cuts, 2);
        }
}

/* The end of data ".\r\n" after the final CRLF, split everywhere, with
 * zero-length reads thrown in. */
static void test_end_split_with_empty_reads(void **state)
{
    (void)state;
    const char *in = "a\r\n.\r\n";
    size_t len = strlen(in);
    struct sink s;
    sink_init(&s);
    struct smtp_data d;
    smtp_data_init(&d, 0, sink_emit, &s);
    size_t pos = 0;
    for (size_t i = 0; i < len && !d.done; i++) {
        assert_int_equal(smtp_data_feed(&d, in + pos, 0), 0);
        pos += smtp_data_feed(&d, in + pos, 1);
    }
    assert_true(d.done);
    assert_int_equal(d.error, SMTP_DATA_OK);
    assert_int_equal(pos, len);
    assert_string_equal(s.buf, "a\n");
    sink_free(&s);
}

/* smtp_data.h: "Consumes bytes up to and including the final CRLF.CRLF":
 * before the end, everything offered is consumed. */
static void test_not_done_without_end(void **state)
{
    (void)state;
    const char *ins[] = { "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", "x\r\n.\n", "x\n.\r\n",
                          "x\r\n. \r\n", "x\r\n.x\r\n", "" };
    for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
        struct sink s;
        sink_init(&s);
        size_t len = strlen(ins[i]);
        struct run r = feed_all(ins[i], len, 0, &s);
        if (r.done)
            fail_msg("\"%s\" ended the data", ins[i]);
        assert_int_equal(r.consumed, len);
        sink_free(&s);
    }
}

/* SMTP smuggling: "\n.\n", "\r.\r\n", "\r\n.\n" and "\n.\r\n" do not end the
 * data; the bare line ends refuse the message; the parser reads on to the
 * real CRLF.CRLF and stops there. */
static void check_smuggle(const char *in, size_t tail)
{
    struct sink s;
    sink_init(&s);
    size_t len = strlen(in);
    struct run r = feed_all(in, len, 0, &s);
    if (!r.done)
        fail_msg("\"%s\": data did not end at the real CRLF.CRLF", in);
    if (r.consumed != len - tail)
        fail_msg("\"%s\": consumed %zu, expected %zu (ended early?)", in, r.consumed, len - tail);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    sink_free(&s);
}

static void test_smuggling_lf_dot_lf(void **state)
{
    (void)state;
    check_smuggle("a\n.\nMAIL FROM:<evil@x>\r\nb\r\n.\r\n", 0);
    check_smuggle("a\n.\nMAIL FROM:<evil@x>\r\nb\r\n.\r\nQUIT\r\n", 6);
}

static void test_smuggling_cr_dot_crlf(void **state)
{
    (void)state;
    check_smuggle("a\r.\r\nMAIL FROM:<evil@x>\r\nb\r\n.\r\n", 0);
}

static void test_smuggling_crlf_dot_lf(void **state)
{
    (void)state;
    check_smuggle("a\r\n.\nMAIL FROM:<evil@x>\r\nb\r\n.\r\n", 0);
    check_smuggle("a\n.\r\nMAIL FROM:<evil@x>\r\nb\r\n.\r\n", 0);
    check_smuggle("a\r\n.\rMAIL FROM:<evil@x>\r\nb\r\n.\r\n", 0);
}

static void test_smuggling_split_byte_by_byte(void **state)
{
    (void)state;
    const char *in = "a\n.\nMAIL FROM:<evil@x>\r\nb\r\n.\r\nRSET\r\n";
    size_t len = strlen(in);
    struct sink s;
    sink_init(&s);
    size_t cuts[64];
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    struct run r = feed_split(in, len, cuts, len - 1, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.consumed, len - 6);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    sink_free(&s);
}

static void test_bare_cr(void **state)
{
    (void)state;
    struct sink s;
    sink_init(&s);
    const char *in = "first\r\nx\ry\r\nSECRET-AFTER\r\n.\r\n";
    struct run r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    assert_int_equal(r.consumed, strlen(in));
    /* after an error nothing more is emitted */
    if (s.buf != NULL && strstr(s.buf, "SECRET-AFTER") != NULL)
        fail_msg("emitted after the error: \"%s\"", s.buf);
    sink_free(&s);

    sink_init(&s);
    in = "abc\r\r\n.\r\n";          /* CR CR LF: the first CR is bare */
    r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    sink_free(&s);
}

static void test_bare_lf(void **state)
{
    (void)state;
    struct sink s;
    sink_init(&s);
    const char *in = "first\r\nx\ny\r\nSECRET-AFTER\r\n.\r\n";
    struct run r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    assert_int_equal(r.consumed, strlen(in));
    if (s.buf != NULL && strstr(s.buf, "SECRET-AFTER") != NULL)
        fail_msg("emitted after the error: \"%s\"", s.buf);
    sink_free(&s);

    sink_init(&s);
    in = "\n.\r\n";                 /* a bare LF as the very first byte */
    r = feed_all(in, strlen(in), 0, &s);
    assert_true(!r.done || r.error == SMTP_DATA_BARE_CRLF);
    sink_free(&s);
}

/* issue 11 item 10: a NUL octet refuses the message (550 5.6.0), the
 * parser reads on to the real end, nothing after it is emitted, and the
 * verdict does not depend on how the input was cut. */
static void test_nul_refused(void **state)
{
    (void)state;
    static const char in[] = "Subject: x\r\n\r\nbefore\0SECRET-AFTER\r\nmore\r\n.\r\nNEXT";
    size_t len = sizeof in - 1, tail = 4;
    for (size_t i = 0; i <= len; i++) {
        struct sink s;
        sink_init(&s);
        size_t cuts[1] = { i };
        struct run r = feed_split(in, len, cuts, 1, 0, &s);
        if (!r.done || r.error != SMTP_DATA_NUL || r.consumed != len - tail)
            fail_msg("split at %zu: done=%d error=%d consumed=%zu", i, r.done, r.error, r.consumed);
        if (s.buf != NULL && strstr(s.buf, "SECRET-AFTER") != NULL)
            fail_msg("emitted after the NUL: \"%s\"", s.buf);
        sink_free(&s);
    }
    /* a NUL on a dot-stuffed line, and one as the first octet */
    static const char *const more[] = {"..\0x\r\n.\r\n", "\0\r\n.\r\n"};
    static const size_t more_len[] = {9, 6};
    for (size_t k = 0; k < 2; k++) {
        struct sink s;
        sink_init(&s);
        struct run r = feed_all(more[k], more_len[k], 0, &s);
        assert_true(r.done);
        assert_int_equal(r.error, SMTP_DATA_NUL);
        sink_free(&s);
    }
    /* an earlier bare LF wins over a later NUL */
    struct sink s;
    sink_init(&s);
    static const char bare[] = "a\nb\0c\r\n.\r\n";
    struct run r = feed_all(bare, sizeof bare - 1, 0, &s);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    sink_free(&s);
}

/* A bare CR at the end of one read followed by LF in the next is a CRLF. */
static void test_cr_lf_across_reads_is_not_bare(void **state)
{
    (void)state;
    const char *in = "abc\r\ndef\r\n.\r\n";
    size_t len = strlen(in);
    for (size_t i = 0; i <= len; i++) {
        struct sink s;
        sink_init(&s);
        size_t cuts[1] = { i };
        struct run r = feed_split(in, len, cuts, 1, 0, &s);
        if (!r.done || r.error != SMTP_DATA_OK)
            fail_msg("split at %zu: done=%d error=%d", i, r.done, r.error);
        assert_string_equal(s.buf, "abc\ndef\n");
        sink_free(&s);
    }
}

static char *line_of(size_t n, const char *prefix, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *p = malloc(pl + n + sl + 1);
    assert_non_null(p);
    memcpy(p, prefix, pl);
    memset(p + pl, 'x', n);
    memcpy(p + pl + n, suffix, sl + 1);
    return p;
}

static void test_line_1000_ok(void **state)
{
    (void)state;
    /* 998 octets + CRLF = 1000: the longest allowed text line */
    char *in = line_of(998, "", "\r\n.\r\n");
    struct sink s;
    sink_init(&s);
    struct run r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_int_equal(s.len, 999);
    assert_int_equal(s.buf[998], '\n');
    sink_free(&s);

    /* the same, byte by byte */
    sink_init(&s);
    size_t len = strlen(in);
    size_t *cuts = calloc(len, sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    r = feed_split(in, len, cuts, len - 1, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_int_equal(s.len, 999);
    free(cuts);
    sink_free(&s);
    free(in);

    /* several long lines in a row: the count restarts at each line */
    in = malloc(5 * 1000 + 8);
    size_t w = 0;
    for (int i = 0; i < 5; i++) {
        memset(in + w, 'a' + i, 998);
        w += 998;
        memcpy(in + w, "\r\n", 2);
        w += 2;
    }
    memcpy(in + w, ".\r\n", 4);
    sink_init(&s);
    r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_int_equal(s.len, 5 * 999);
    sink_free(&s);
    free(in);
}

static void test_line_1001_too_long(void **state)
{
    (void)state;
    /* 999 octets + CRLF = 1001 */
    char *in = line_of(999, "", "\r\nnext\r\n.\r\nNOOP\r\n");
    struct sink s;
    sink_init(&s);
    size_t len = strlen(in);
    struct run r = feed_all(in, len, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_LINE_TOO_LONG);
    assert_int_equal(r.consumed, len - 6);   /* read on to the real end */
    sink_free(&s);
    free(in);

    /* a very long line, then more data, split in small reads */
    in = line_of(20000, "Subject: x\r\n", "\r\nmore\r\n.\r\n");
    len = strlen(in);
    size_t cuts[64];
    size_t n = 0;
    for (size_t c = 7; c < len && n < 64; c += 331)
        cuts[n++] = c;
    sink_init(&s);
    r = feed_split(in, len, cuts, n, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_LINE_TOO_LONG);
    assert_int_equal(r.consumed, len);
    sink_free(&s);
    free(in);
}

static void test_size_limit(void **state)
{
    (void)state;
    /* "aaaa\r\nbbbb\r\n" is 12 octets as the client counts them (CRLF),
     * 10 with LF line ends */
    const char *in = "aaaa\r\nbbbb\r\n.\r\n";
    struct sink s;
    struct run r;

    sink_init(&s);
    r = feed_all(in, strlen(in), 12, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_string_equal(s.buf, "aaaa\nbbbb\n");
    sink_free(&s);

    sink_init(&s);
    r = feed_all(in, strlen(in), 11, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_TOO_BIG);
    assert_int_equal(r.consumed, strlen(in));
    sink_free(&s);

    sink_init(&s);
    r = feed_all(in, strlen(in), 1, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_TOO_BIG);
    sink_free(&s);

    /* dot-stuffing does not count: "..x\r\n" is ".x\r\n" = 4 octets */
    in = "..x\r\n.\r\n";
    sink_init(&s);
    r = feed_all(in, strlen(in), 4, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    sink_free(&s);
}

static void test_size_limit_large_reads_on(void **state)
{
    (void)state;
    /* 100 lines of 78 + CRLF = 8000 octets against a 4000 limit, in reads of 97 */
    size_t len = 100 * 80 + 3 + 6;
    char *in = malloc(len + 1);
    size_t w = 0;
    for (int i = 0; i < 100; i++) {
        memset(in + w, 'm', 78);
        w += 78;
        memcpy(in + w, "\r\n", 2);
        w += 2;
    }
    memcpy(in + w, ".\r\nQUIT\r\n", 10);
    assert_int_equal(strlen(in), len);
    size_t cuts[128], n = 0;
    for (size_t c = 97; c < len; c += 97)
        cuts[n++] = c;
    struct sink s;
    sink_init(&s);
    struct run r = feed_split(in, len, cuts, n, 4000, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_TOO_BIG);
    assert_int_equal(r.consumed, len - 6);
    assert_true(s.len <= 4000);
    sink_free(&s);

    /* with no limit (0) the same message passes */
    sink_init(&s);
    r = feed_split(in, len, cuts, n, 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_OK);
    assert_int_equal(s.len, 100 * 79);
    sink_free(&s);
    free(in);
}

static void test_first_error_wins(void **state)
{
    (void)state;
    /* bare LF first, then an over-long line: the verdict is the first error */
    char *in = line_of(2000, "a\nb\r\n", "\r\n.\r\n");
    struct sink s;
    sink_init(&s);
    struct run r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_BARE_CRLF);
    sink_free(&s);
    free(in);

    in = line_of(2000, "", "\r\na\nb\r\n.\r\n");
    sink_init(&s);
    r = feed_all(in, strlen(in), 0, &s);
    assert_true(r.done);
    assert_int_equal(r.error, SMTP_DATA_LINE_TOO_LONG);
    sink_free(&s);
    free(in);
}

/* Regression (fuzz/regressions/smtp_data-first-error-depends-on-chunking):
 * a line that crosses the size limit before the line limit is refused as
 * too big, whether it comes in one read or byte by byte. */
static void test_first_error_independent_of_reads(void **state)
{
    (void)state;
    size_t n = 1001 + 5;
    char *in = malloc(n + 1);
    assert_non_null(in);
    memset(in, 'X', 1001);
    memcpy(in + 1001, "\r\n.\r\n", 5);
    in[n] = 0;
    size_t cuts[1100];
    for (size_t i = 0; i < n - 1; i++)
        cuts[i] = i + 1;
    struct sink a, b;
    sink_init(&a);
    sink_init(&b);
    struct run whole = feed_all(in, n, 16, &a);
    struct run bytes = feed_split(in, n, cuts, n - 1, 16, &b);
    assert_true(whole.done && bytes.done);
    assert_int_equal(whole.error, SMTP_DATA_TOO_BIG);
    assert_int_equal(bytes.error, SMTP_DATA_TOO_BIG);
    /* With no size limit the same line is too long, both ways. */
    whole = feed_all(in, n, 0, &a);
    bytes = feed_split(in, n, cuts, n - 1, 0, &b);
    assert_int_equal(whole.error, SMTP_DATA_LINE_TOO_LONG);
    assert_int_equal(bytes.error, SMTP_DATA_LINE_TOO_LONG);
    sink_free(&a);
    sink_free(&b);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_error_independent_of_reads),
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_lf_output),
        cmocka_unit_test(test_dot_unstuffing),
        cmocka_unit_test(test_8bit_kept),
        cmocka_unit_test(test_bytes_after_end_not_consumed),
        cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_split_two_chunks),
        cmocka_unit_test(test_split_three_chunks),
        cmocka_unit_test(test_end_split_with_empty_reads),
        cmocka_unit_test(test_not_done_without_end),
        cmocka_unit_test(test_smuggling_lf_dot_lf),
        cmocka_unit_test(test_smuggling_cr_dot_crlf),
        cmocka_unit_test(test_smuggling_crlf_dot_lf),
        cmocka_unit_test(test_smuggling_split_byte_by_byte),
        cmocka_unit_test(test_bare_cr),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_cr_lf_across_reads_is_not_bare),
        cmocka_unit_test(test_line_1000_ok),
        cmocka_unit_test(test_line_1001_too_long),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_size_limit_large_reads_on),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_nul_refused),
    };
    return cmocka_run_group_tests_name("smtp_data", tests, NULL, NULL);
}
