#include "proto/smtp_data.h"

#include <string.h>
#include "proto/smtp_parse.h"

enum {
    S_LINE_START,  /* after CRLF (or at the start): a '.' is special */
    S_DOT,         /* a '.' began the line */
    S_DOT_CR,      /* ".\r" at the start of a line: LF ends the data */
    S_TEXT,        /* inside a line */
    S_CR,          /* a CR inside a line: only LF may follow */
};

void smtp_data_init(struct smtp_data *d, uint64_t max_size, smtp_data_emit emit, void *ctx)
{
    memset(d, 0, sizeof *d);
    d->state = S_LINE_START;
    d->max_size = max_size;
    d->emit = emit;
    d->ctx = ctx;
}

static void fail(struct smtp_data *d, enum smtp_data_error e)
{
    if (d->error == SMTP_DATA_OK)
        d->error = e;
}

/* Message octets as the client counts them (CRLF = 2) decide SIZE; the
 * output itself has LF line ends. */
static void out(struct smtp_data *d, const char *p, size_t n, size_t wire)
{
    d->size += wire;
    if (d->max_size != 0 && d->size > d->max_size)
        fail(d, SMTP_DATA_TOO_BIG);
    if (d->error == SMTP_DATA_OK && n > 0)
        d->emit(d->ctx, p, n);
}

static void count(struct smtp_data *d, size_t n)
{
    d->line_len += n;
    if (d->line_len > SMTP_TEXT_LINE_MAX)
        fail(d, SMTP_DATA_LINE_TOO_LONG);
}

size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len)
{
    size_t i = 0;
    while (i < len && !d->done) {
        char ch = in[i];
        switch (d->state) {
        case S_LINE_START:
            if (ch == '.') {
                count(d, 1);
                d->state = S_DOT;
                i++;
                continue;
            }
            d->state = S_TEXT;
            continue;
        case S_DOT:
            if (ch == '\r') {
                count(d, 1);
                d->state = S_DOT_CR;
                i++;
                continue;
            }
            d->state = S_TEXT;   /* the stuffed dot is dropped */
            continue;
        case S_DOT_CR:
            if (ch == '\n') {
                d->done = true;
                i++;
                continue;
            }
            fail(d, SMTP_DATA_BARE_CRLF);
            d->state = S_TEXT;
            continue;
        case S_TEXT: {
            /* The bulk of a message: copy up to the next CR or LF at once. */
            const char *p = in + i;
            size_t n = len - i, run = 0;
            while (run < n && p[run] != '\r' && p[run] != '\n' && p[run] != '\0')
                run++;
            if (run > 0) {
                /* Whichever limit the run crosses first is the verdict,
                 * however the stream was cut into reads (as if byte by
                 * byte: the line is counted before the size). */
                if (d->error == SMTP_DATA_OK) {
                    size_t line_room = d->line_len >= SMTP_TEXT_LINE_MAX ? 0
                                     : SMTP_TEXT_LINE_MAX - d->line_len;
                    uint64_t size_room = d->max_size == 0 ? UINT64_MAX
                                       : d->size >= d->max_size ? 0 : d->max_size - d->size;
                    if (run > line_room && line_room <= size_room)
                        fail(d, SMTP_DATA_LINE_TOO_LONG);
                    else if (run > size_room)
                        fail(d, SMTP_DATA_TOO_BIG);
                }
                count(d, run);
                out(d, p, run, run);
                i += run;
                continue;
            }
            count(d, 1);
            if (ch == '\0') {
                /* An octet of the line and the message like any other
                 * (so the first limit crossed wins, however the input
                 * was cut), then the refusal. */
                out(d, "", 0, 1);
                fail(d, SMTP_DATA_NUL);
            } else if (ch == '\n') {
                fail(d, SMTP_DATA_BARE_CRLF);
            } else {
                d->state = S_CR;
            }
            i++;
            continue;
        }
        case S_CR:
            if (ch == '\n') {
                count(d, 1);
                out(d, "\n", 1, 2);
                d->line_len = 0;
                d->state = S_LINE_START;
                i++;
                continue;
            }
            fail(d, SMTP_DATA_BARE_CRLF);
            d->state = S_TEXT;
            continue;
        }
    }
    return i;
}
