/* Fuzzes the DATA stream machine (dot-stuffing, line limits, bare CR/LF,
 * end of data) across chunk boundaries.
 *
 * Input: byte 0 picks the chunking, byte 1 the size limit, the rest is the
 * stream. The stream is fed once whole and once in chunks; both must give
 * the same result, and the whole-stream result is checked against a small
 * reference model of RFC 5321 §4.5.2 as smtp_data.h describes it. */
#include <stdbool.h>
#include "fuzz_common.h"
#include "proto/smtp_data.h"
#include "proto/smtp_parse.h"

struct sink {
    char *p;
    size_t n, cap;
};

static void emit(void *ctx, const char *p, size_t n)
{
    struct sink *s = ctx;
    CHECK(n > 0);
    CHECK(memchr(p, '\r', n) == NULL);   /* LF line ends only */
    if (s->n + n > s->cap) {
        size_t cap = (s->n + n) * 2;
        char *q = realloc(s->p, cap);
        if (q == NULL)
            abort();
        s->p = q;
        s->cap = cap;
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
}

struct run {
    struct smtp_data d;
    struct sink out;
    size_t consumed;
};

/* Feeds one chunk as an exact-size heap copy and checks the contract. */
static void feed(struct run *r, const uint8_t *p, size_t n)
{
    bool was_done = r->d.done;
    char *c = (char *)fuzz_dup(p, n);
    size_t used = smtp_data_feed(&r->d, c, n);
    free(c);
    CHECK(used <= n);
    if (was_done)
        CHECK(used == 0 && r->d.done);        /* nothing after the end */
    else if (!r->d.done)
        CHECK(used == n);                     /* all of it until the end */
    r->consumed += used;
    CHECK(r->out.n <= r->consumed);           /* never more out than in */
}

/* The end of data is the first CRLF "." CRLF, the stream being taken to
 * start after a CRLF. Returns the octets up to and including it, or 0. */
static size_t find_end(const uint8_t *s, size_t n)
{
    if (n >= 3 && memcmp(s, ".\r\n", 3) == 0)
        return 3;
    for (size_t i = 0; i + 5 <= n; i++)
        if (memcmp(s + i, "\r\n.\r\n", 5) == 0)
            return i + 5;
    return 0;
}

/* The model for a stream that ended at `end`: is the body clean (no bare
 * CR or LF, no line over 1000 octets with CRLF), and if so what is the
 * unstuffed message and its size as the client counts it. */
static bool model(const uint8_t *s, size_t end, struct sink *want, uint64_t *size)
{
    size_t body = end - 3;   /* drop ".\r\n"; the body then ends in CRLF or is empty */
    *size = 0;
    for (size_t i = 0; i < body; i++) {
        if (s[i] == '\r' && (i + 1 >= body || s[i + 1] != '\n'))
            return false;
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            return false;
        if (s[i] == '\0')
            return false;
    }
    size_t start = 0;
    while (start < body) {
        const uint8_t *crlf = memmem(s + start, body - start, "\r\n", 2);
        CHECK(crlf != NULL);
        size_t len = (size_t)(crlf - (s + start));   /* without CRLF */
        if (len + 2 > SMTP_TEXT_LINE_MAX)
            return false;
        size_t skip = len > 0 && s[start] == '.' ? 1 : 0;
        if (len - skip > 0)
            emit(want, (const char *)s + start + skip, len - skip);
        emit(want, "\n", 1);
        *size += len - skip + 2;
        start += len + 2;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t mode = data[0], lim = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    uint64_t max_size = lim < 128 ? 0 : (uint64_t)(lim - 127) * 16;

    /* Whole, in one call. */
    struct run a = {0};
    smtp_data_init(&a.d, max_size, emit, &a.out);
    feed(&a, s, n);
    feed(&a, s, 0);

    /* In chunks of 1..32 octets: fixed size, or pseudo-random sizes, with
     * an empty feed now and then. */
    struct run b = {0};
    smtp_data_init(&b.d, max_size, emit, &b.out);
    size_t maxchunk = (size_t)(mode & 0x1f) + 1;
    uint32_t rng = 0x9e3779b9u ^ mode ^ ((uint32_t)lim << 8);
    size_t off = 0;
    while (off < n) {
        size_t c = maxchunk;
        if (mode & 0x20) {
            rng = rng * 1103515245u + 12345u;
            c = 1 + (rng >> 16) % maxchunk;
        }
        if (c > n - off)
            c = n - off;
        feed(&b, s + off, c);
        off += c;
        if ((mode & 0x40) && (off & 7) == 0)
            feed(&b, s + off, 0);
    }

    /* Chunk boundaries do not matter. */
    CHECK(a.consumed == b.consumed);
    CHECK(a.d.done == b.d.done);
    CHECK(a.d.error == b.d.error);
    CHECK(a.d.size == b.d.size);
    /* After an error the message is refused and what was emitted before it
     * is thrown away, so how much got out first may differ. */
    if (a.d.error == SMTP_DATA_OK)
        CHECK(a.out.n == b.out.n && (a.out.n == 0 || memcmp(a.out.p, b.out.p, a.out.n) == 0));

    /* The end is exactly the first CRLF.CRLF, and nothing past it is eaten. */
    size_t end = find_end(s, n);
    CHECK(a.d.done == (end != 0));
    CHECK(a.consumed == (end != 0 ? end : n));
    CHECK(a.d.error >= SMTP_DATA_OK && a.d.error <= SMTP_DATA_NUL);

    if (end != 0) {
        struct sink want = {0};
        uint64_t wsize;
        bool clean = model(s, end, &want, &wsize);
        bool big = clean && max_size != 0 && wsize > max_size;
        if (clean && !big) {
            CHECK(a.d.error == SMTP_DATA_OK);
            CHECK(a.d.size == wsize);
            CHECK(a.out.n == want.n && (want.n == 0 || memcmp(a.out.p, want.p, want.n) == 0));
        } else {
            CHECK(a.d.error != SMTP_DATA_OK);
            if (clean)
                CHECK(a.d.error == SMTP_DATA_TOO_BIG);
        }
        free(want.p);
    }
    free(a.out.p);
    free(b.out.p);
    return 0;
}
