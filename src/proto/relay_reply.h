/* relay_reply: the next hop's SMTP/LMTP replies (RFC 5321 §4.2), read one
 * line at a time, and what its EHLO/LHLO reply offers. Pure. */
#ifndef PORTCULLIS_RELAY_REPLY_H
#define PORTCULLIS_RELAY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 says 512 octets per reply line; real servers write longer
 * texts, so we take up to 2048 and give up on a peer that sends more (or
 * more than RELAY_REPLY_LINES_MAX lines in one reply). */
#define RELAY_REPLY_LINE_MAX 2048
#define RELAY_REPLY_LINES_MAX 100
#define RELAY_REPLY_TEXT_MAX 256
#define RELAY_ENH_MAX 16            /* "5.123.123" fits easily */

/* What an EHLO/LHLO reply offers (the keywords Portcullis uses). */
enum {
    RELAY_EXT_PIPELINING = 1u << 0,
    RELAY_EXT_STARTTLS = 1u << 1,
    RELAY_EXT_SIZE = 1u << 2,
    RELAY_EXT_XFORWARD = 1u << 3,
    RELAY_EXT_8BITMIME = 1u << 4,
    RELAY_EXT_SMTPUTF8 = 1u << 5,
    RELAY_EXT_ENHANCEDSTATUSCODES = 1u << 6,
};

/* XFORWARD attributes (Postfix's XFORWARD_README). */
enum {
    XF_NAME = 1u << 0,
    XF_ADDR = 1u << 1,
    XF_PORT = 1u << 2,
    XF_PROTO = 1u << 3,
    XF_HELO = 1u << 4,
    XF_IDENT = 1u << 5,
    XF_SOURCE = 1u << 6,
};

struct relay_reply {
    int code;                          /* 200..599 */
    char enh[RELAY_ENH_MAX];           /* enhanced status code of the first line, or "" */
    char text[RELAY_REPLY_TEXT_MAX];   /* the first line's text after the code
                                          (and enh), cut to fit */
    int lines;
    unsigned ext;                      /* RELAY_EXT_*, from continuation lines */
    unsigned xforward;                 /* XF_*, when XFORWARD is listed */
    uint64_t size;                     /* SIZE's value; 0 if none or no limit */
};

enum relay_feed {
    RELAY_MORE,     /* a continuation line: feed the next one */
    RELAY_DONE,     /* the reply is complete in *r */
    RELAY_BAD,      /* not a reply line, codes that differ, too many lines */
};

/* Starts a new reply. */
void relay_reply_init(struct relay_reply *r);

/* Feeds one line without its CRLF (len octets, need not be NUL-terminated).
 * Lines over RELAY_REPLY_LINE_MAX are the caller's to refuse, but a longer
 * one is RELAY_BAD here too. */
enum relay_feed relay_reply_feed(struct relay_reply *r, const char *line, size_t len);

/* True when `s` (len octets) is an RFC 3463 status code "c.sss.ddd" whose
 * class c is 2, 4 or 5. */
bool relay_enh_valid(const char *s, size_t len);

/* XFORWARD (Postfix's XFORWARD_README): the values for relay_xforward_lines. */
struct relay_xforward {
    const char *addr;
    unsigned port;          /* 0: not sent */
    const char *proto;      /* "ESMTP" or "SMTP" */
    const char *ident;      /* our queue id */
    const char *name;       /* a name, or "[UNAVAILABLE]" */
    const char *helo;       /* "": not sent */
};
#define RELAY_XFORWARD_MAX 512

/* The XFORWARD command lines (without CRLF) for the attributes in `attrs`
 * (XF_*, as the next hop listed them), values xtext-encoded (RFC 1891),
 * each line under 512 octets: returns 0 (nothing to send), 1 (all in
 * line1), or 2 (HELO alone in line2). Values over 299 octets of xtext
 * are cut. */
int relay_xforward_lines(unsigned attrs, const struct relay_xforward *x,
                         char line1[RELAY_XFORWARD_MAX], char line2[RELAY_XFORWARD_MAX]);

/* RFC 1891 xtext of s into out, cut at a whole character to fit. */
void relay_xtext(char *out, size_t outlen, const char *s);

/* The next hop's queue id from its reply text ("2.0.0 Ok: queued as 4QxY"
 * -> "4QxY"), or "" when it names none. */
void relay_queue_id(const char *text, char *out, size_t outlen);

#endif
