/* received: the Received: header Portcullis puts on top of every message
 * (SPEC §3, RFC 5321 §4.4), LF line ends as Maildir wants. Pure. */
#ifndef PORTCULLIS_RECEIVED_H
#define PORTCULLIS_RECEIVED_H

#include <stddef.h>
#include <stdint.h>

struct received_info {
    const char *helo;
    const char *name;      /* the client's confirmed name, "unknown", or NULL: not looked up */
    const char *ip;
    const char *hostname;  /* ours */
    const char *proto;     /* RFC 3848: ESMTPSA ... */
    const char *id;        /* the queue id */
    const char *tls;       /* "TLSv1.3 with cipher ...", or "" */
    const char *user;      /* the authenticated user, or NULL */
    int64_t at;            /* ms since the epoch */
};

/* Writes the header into out; returns its length, or 0 if it does not fit. */
size_t received_header(const struct received_info *r, char *out, size_t outlen);

#endif
