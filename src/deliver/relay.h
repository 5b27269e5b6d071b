/* relay: the client side of SMTP/LMTP to the provider's MTA (SPEC §7), on
 * a worker's event loop. One `struct relay` per worker holds its idle
 * connections; a `struct relay_tx` is one client transaction relayed while
 * the client waits. Every step answers through the callback, always from
 * the event loop (never inside the call that asked), with the reply the
 * client is to get: the next hop's verdict mapped as SPEC §7 says. */
#ifndef PORTCULLIS_RELAY_H
#define PORTCULLIS_RELAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/config.h"

struct relay;
struct relay_tx;

/* What XFORWARD tells the next hop about our client. */
struct relay_client {
    const char *addr;       /* the client's address (from PROXY when enabled) */
    unsigned port;
    const char *name;       /* its confirmed name, or NULL: "[UNAVAILABLE]" */
    const char *helo;
    bool esmtp;             /* EHLO (ESMTP) or HELO (SMTP) */
};

/* The envelope's sender and MAIL parameters. */
struct relay_mail {
    const char *from;       /* without angle brackets; "" for <> */
    uint64_t size;          /* SIZE=, 0: not given */
    bool eightbit;          /* BODY=8BITMIME */
    bool smtputf8;
};

enum relay_step { RELAY_STEP_RCPT, RELAY_STEP_DATA, RELAY_STEP_END };

/* The client's reply to one step. */
struct relay_answer {
    enum relay_step step;
    int code;               /* RCPT: 250 or the refusal; DATA: 354 or the
                               refusal; END: 250, 451, 554/550 */
    char enh[16];           /* "2.1.5", "4.4.1", ... */
    char text[200];         /* printable; may hold the next hop's own words */
    char their_id[64];      /* END with 250: the next hop's queue id, or "" */
};

typedef void (*relay_answer_cb)(void *arg, const struct relay_answer *a);
/* The connection drained below its low mark: relay_tx_write again. */
typedef void (*relay_writable_cb)(void *arg);

/* The configuration's relay keys, copied: a reload does not change a
 * running relay (the daemon opens its delivery backend once). */
struct relay_conf {
    char relay[CONFIG_PATH_MAX], relay_ca[CONFIG_PATH_MAX], hostname[256];
    enum relay_tls tls;
    bool forward;
    int64_t timeout_ms;
};
void relay_conf_from(struct relay_conf *rc, const struct config *c);

/* A worker's relay. NULL with the reason in err (a bad relay or relay_ca,
 * no memory). */
struct relay *relay_new(struct event_base *base, const struct relay_conf *rc, char *err,
                        size_t errlen);
/* Closes every connection; transactions must be freed before. */
void relay_free(struct relay *r);
/* False from a relay_down log line to the next relay_up, whichever worker
 * saw it: the next hop could not be reached. True before any try. */
bool relay_up(void);

/* A transaction, at the client's first RCPT. `id` is our queue id (it
 * goes on as XFORWARD IDENT). Strings are copied. */
struct relay_tx *relay_tx_new(struct relay *r, const struct relay_client *c,
                              const struct relay_mail *m, const char *id,
                              relay_answer_cb cb, relay_writable_cb wcb, void *arg);
/* Relays one RCPT; answers RELAY_STEP_RCPT once. One step at a time. */
void relay_tx_rcpt(struct relay_tx *t, const char *rcpt);
/* Sends DATA; answers RELAY_STEP_DATA (354: go on with relay_tx_write). */
void relay_tx_data(struct relay_tx *t);
/* Passes on message bytes as the session has them (dot-unstuffed, LF line
 * ends): they are sent with CRLF and dot-stuffed again. Returns false when
 * the connection's buffer is over its high mark: stop until wcb. */
bool relay_tx_write(struct relay_tx *t, const char *p, size_t n);
/* Ends the data; answers RELAY_STEP_END with the final verdict. */
void relay_tx_end(struct relay_tx *t);
/* Ends the transaction, finished or not; no answer comes after. An
 * unfinished one never gets its final dot: its connection is reset or
 * closed, so the next hop never takes half a message. */
void relay_tx_free(struct relay_tx *t);

#endif
