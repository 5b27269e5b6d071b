/* sasl: decoding of AUTH PLAIN and LOGIN exchanges (RFC 4616, RFC 4954). Pure. */
#ifndef PORTCULLIS_SASL_H
#define PORTCULLIS_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_USER_MAX 256
#define SASL_PASS_MAX 1024

/* Strict base64 (no whitespace, padding required). Returns the decoded
 * length, or -1 for bad input or when it does not fit in outlen. The
 * output is NUL-terminated (outlen must leave room for it). */
long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);
/* Encodes into out (NUL-terminated); returns the length, or -1 if too small. */
long sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outlen);

/* The client's "cancel" reply: a line that is exactly "*". */
bool sasl_is_cancel(const char *line);

/* PLAIN: base64 of authzid NUL authcid NUL passwd. */
enum sasl_plain_status {
    SASL_PLAIN_OK,             /* user and pass filled */
    SASL_PLAIN_MALFORMED,      /* bad base64, a missing NUL, an empty user or
                                  password, a NUL in the password, or fields
                                  that do not fit: 501 5.5.2 */
    SASL_PLAIN_OTHER_IDENTITY, /* well-formed, but the authzid is neither
                                  empty nor the authcid: we never act as
                                  another identity (no proxy authorisation),
                                  so RFC 4954 §4 has it fail as a login
                                  that failed: 535 5.7.8. user is filled
                                  (the authcid, for the log), pass is not. */
};
enum sasl_plain_status sasl_plain_parse(const char *b64, size_t len,
                                        char user[SASL_USER_MAX], char pass[SASL_PASS_MAX]);
/* sasl_plain_parse() == SASL_PLAIN_OK. */
bool sasl_plain_decode(const char *b64, size_t len,
                       char user[SASL_USER_MAX], char pass[SASL_PASS_MAX]);

/* LOGIN: each reply is base64 of the bare user name, then the password. */
bool sasl_login_decode(const char *b64, size_t len, char *out, size_t outlen);

#endif
