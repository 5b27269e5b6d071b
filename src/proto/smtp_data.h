/* smtp_data: the DATA byte stream -> the message, dot-unstuffed, with LF
 * line ends (as Maildir wants). Pure: bytes in, bytes out via a callback.
 *
 * Only CRLF "." CRLF ends the data (no SMTP smuggling with "\n.\n" or
 * "\r.\r\n"); a bare CR or bare LF anywhere, a NUL octet (RFC 5321 §2.3.8
 * keeps it out of text; readers of C strings would cut the message there
 * and what follows could hide from a filter), a line over 1000 octets
 * (CRLF included) or a message over the size limit marks the message as
 * refused, but the parser keeps reading to the real end of data so the
 * session stays in step with the client. */
#ifndef PORTCULLIS_SMTP_DATA_H
#define PORTCULLIS_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_data_error {
    SMTP_DATA_OK = 0,
    SMTP_DATA_TOO_BIG,        /* 552 5.3.4 */
    SMTP_DATA_LINE_TOO_LONG,  /* 550 5.6.0 */
    SMTP_DATA_BARE_CRLF,      /* 550 5.6.0 Bare CR or LF not allowed */
    SMTP_DATA_NUL,            /* 550 5.6.0 NUL character not allowed */
};

typedef void (*smtp_data_emit)(void *ctx, const char *p, size_t n);

struct smtp_data {
    /* private */
    int state;
    size_t line_len;          /* octets of the current line so far, CRLF included */
    uint64_t size;            /* octets of the message emitted, LF line ends */
    uint64_t max_size;
    enum smtp_data_error error; /* the first error seen */
    bool done;
    smtp_data_emit emit;
    void *ctx;
};

/* max_size: message limit in octets (as the client counts them: CRLF line
 * ends, after unstuffing); 0 = none. emit gets the message; after an error
 * nothing more is emitted. */
void smtp_data_init(struct smtp_data *d, uint64_t max_size, smtp_data_emit emit, void *ctx);
/* Consumes bytes up to and including the final CRLF.CRLF, and returns how
 * many it consumed; what is left belongs to the next command. After the end
 * d->done is true and d->error tells the verdict. */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len);

#endif
