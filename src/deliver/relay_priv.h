/* relay_priv.h: what relay.c (the relay and its transactions) and
 * relay_conn.c (connections to the next hop: the wire, the replies, TLS)
 * share. Not for anyone else: the interface is relay.h. */
#ifndef PORTCULLIS_RELAY_PRIV_H
#define PORTCULLIS_RELAY_PRIV_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include "deliver/relay.h"
#include "proto/relay_reply.h"
#include "proto/smtp_parse.h"

/* Idle connections kept per worker, and how long one may wait: well under
 * Postfix's smtpd_timeout (300 s), so we close before it does. */
#define IDLE_MAX 4
#define IDLE_MS 30000
/* The body is queued up to HIGH octets, then the session pauses until the
 * next hop has read it down to LOW: memory per session stays bounded. */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW (64 * 1024)
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000

enum cstate {
    C_CONNECTING, C_GREETING, C_EHLO, C_STARTTLS, C_HANDSHAKE, C_EHLO_TLS,
    C_READY,        /* between commands: the transaction decides the next */
    C_XFORWARD, C_MAIL, C_RCPT, C_DATA, C_BODY, C_DOT,
    C_RSET,         /* back from a transaction, on the idle list, RSET not answered yet */
    C_IDLE,
};

struct conn {
    TAILQ_ENTRY(conn) link;        /* the idle list */
    struct relay *r;
    struct relay_tx *tx;
    struct bufferevent *bev;
    enum cstate state;
    struct relay_reply reply;
    unsigned ext, xforward;
    bool at_bol;                   /* the body: at the start of a line */
    bool parked;                   /* on the relay's idle list */
    bool dirty;                    /* XFORWARD or MAIL sent, transaction not over */
    /* The replies due, in order: more than one only when XFORWARD, MAIL
     * and the first RCPT go out together (PIPELINING, RFC 2920). */
    enum cstate due[4];
    int ndue;
    int xf_sent;                   /* XFORWARD commands of this transaction sent */
};
TAILQ_HEAD(conn_list, conn);

struct relay {
    struct event_base *base;
    struct relay_conf conf;
    bool lmtp, unix_socket;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[ADDR_STRLEN];        /* for the certificate check */
    SSL_CTX *ssl;
    struct conn_list idle;
    int nidle;
    int64_t retry_at, backoff_ms;  /* reconnect backoff after a failure */
};

enum op { OP_NONE, OP_RCPT, OP_DATA, OP_END };

struct relay_tx {
    struct relay *r;
    struct conn *c;
    char *id, *from, *addr, *name, *helo;
    struct relay_mail mail;
    struct relay_client client;
    relay_answer_cb cb;
    relay_writable_cb wcb;
    void *arg;
    struct event *answer_ev;       /* delivers `ans` from the loop */
    struct relay_answer ans;
    enum op op;
    char rcpt[SMTP_PATH_MAX + 1];
    bool mail_done, data_open, retried, want_write;
    int accepted;                  /* recipients the next hop took */
    struct relay_answer failed;    /* once set (code != 0): every later step gets it */
};

/* relay.c: the answers to the transaction's steps. */
void relay_set_answer(struct relay_answer *a, enum relay_step step, int code, const char *enh,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
enum relay_step relay_op_step(enum op op);
/* Answers the step in progress, from the loop, never from inside the call. */
void relay_answer_now(struct relay_tx *t, const struct relay_answer *a);
/* The transaction can go no further: this step and every later one get `a`. */
void relay_tx_fail(struct relay_tx *t, const struct relay_answer *a);

/* relay_conn.c: the connections. */
/* A new connection for t (t->c); failures reach t through relay_tx_fail. */
void rconn_start(struct relay_tx *t);
/* Sends what the transaction waits for next, if the connection is free. */
void rconn_advance(struct conn *c);
void rconn_free(struct conn *c);
/* Writes a command line; its reply is due in state `next`. */
void rconn_send(struct conn *c, enum cstate next, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The read timeout while waiting (0: none) and relay_timeout for writes. */
void rconn_timeouts(struct conn *c, int64_t read_ms);

#endif
