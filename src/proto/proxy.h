/* proxy: the HAProxy PROXY protocol header, v1 (text) and v2 (binary). Pure. */
#ifndef PORTCULLIS_PROXY_H
#define PORTCULLIS_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"

/* v1 is at most 107 octets; v2 is 16 octets plus a length we cap, so a
 * peer cannot make us buffer more than this before we decide. */
#define PROXY_MAX_HEADER 1024

enum proxy_status {
    PROXY_NEED_MORE = 0,   /* a valid beginning: read more */
    PROXY_DONE = 1,        /* r is filled, r->len octets consumed */
    PROXY_INVALID = -1,    /* not a PROXY header, or malformed: close */
};

struct proxy_result {
    size_t len;            /* header length in octets */
    int version;           /* 1 or 2 */
    bool local;            /* v2 LOCAL or v1 UNKNOWN: no client address given;
                              the connection stands for the peer itself */
    struct addr src, dst;  /* valid when !local */
    uint16_t src_port, dst_port;
};

enum proxy_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_result *r);

#endif
