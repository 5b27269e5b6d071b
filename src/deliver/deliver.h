/* deliver: where an accepted message goes, behind one interface. A backend
 * is one row of the table in deliver.c: Maildir (maildir.c) today, relay to
 * the provider's MTA (SPEC §7) next.
 *
 * One transaction per message, driven by the session on its worker's
 * event base:
 *
 *   begin (at MAIL) -> rcpt (each RCPT, verdict by callback)
 *     -> write (the message in chunks as DATA arrives; the session's
 *        Received: header is the first chunk) -> end (result by callback)
 *   abort, at any point before end's callback, instead of the rest.
 *
 * Callbacks run on the session's event base, perhaps before the call that
 * asked for them returns. After end's callback or after abort the
 * transaction is the backend's to free: the session forgets it. Nothing
 * may be acknowledged (250 after DATA) before end reports DELIVER_OK, and
 * that means the message is durable at the next hop. */
#ifndef PORTCULLIS_DELIVER_H
#define PORTCULLIS_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/addr.h"
#include "base/config.h"
#include "base/pool.h"

enum deliver_status {
    DELIVER_OK,
    DELIVER_TEMPFAIL,   /* 4xx: the client may retry */
    DELIVER_PERMFAIL,   /* 5xx */
};

/* A verdict, as the session passes it to the client: "code enhanced text". */
struct deliver_reply {
    enum deliver_status status;
    int code;                 /* 250, 451, 452, 550 ... */
    char enhanced[16];        /* "4.3.0" */
    char text[256];
    char detail[512];         /* for the log only (the error behind a failure) */
    char id[64];              /* OK at end: the next hop's id, if it gave one */
};

/* Who sent the message; strings are copied by begin. */
struct deliver_envelope {
    const char *queue_id;     /* ours, as in Received: and the 250 */
    const char *session;
    const char *sender;       /* MAIL FROM path, "" for <> */
    const struct addr *client;
    uint16_t client_port;
    const char *helo;
    const char *user;         /* "" when not authenticated */
    const char *proto;        /* RFC 3848: ESMTPSA ... */
    bool tls;
    bool smtputf8;
    bool body_8bit;
};

struct deliver;      /* a backend instance (one per daemon) */
struct deliver_tx;   /* one message */

typedef void (*deliver_reply_cb)(void *arg, const struct deliver_reply *r);
/* The backend drained what made write() say "stop": read on. */
typedef void (*deliver_resume_cb)(void *arg);

struct deliver_ops {
    const char *name;
    struct deliver *(*open)(const struct config *c, char *err, size_t errlen);
    void (*close)(struct deliver *d);
    /* NULL when out of resources (the session answers 451). `c` is the
     * session's configuration; blocking work goes to `pool`; `mb` is the
     * worker's mailbox, where every callback of this transaction runs. */
    struct deliver_tx *(*begin)(struct deliver *d, const struct config *c, struct pool *pool,
                                struct pool_mailbox *mb, const struct deliver_envelope *e,
                                deliver_resume_cb resume, void *arg);
    /* The verdict on one recipient: cb(arg, reply) exactly once. */
    void (*rcpt)(struct deliver_tx *t, const char *rcpt, deliver_reply_cb cb, void *arg);
    /* Part of the message (LF line ends, unstuffed). Returns false when
     * the session should stop reading its client until resume is called;
     * the chunk is taken either way. */
    bool (*write)(struct deliver_tx *t, const char *p, size_t n);
    /* The message is complete: cb(arg, result) exactly once, then the
     * transaction is gone. */
    void (*end)(struct deliver_tx *t, deliver_reply_cb cb, void *arg);
    /* Forget the message (RSET, refused data, a closed session): nothing
     * of it stays. No callback of this transaction runs after. */
    void (*abort)(struct deliver_tx *t);
};

/* A backend instance. */
struct deliver {
    const struct deliver_ops *ops;
};

/* The row for the configured [delivery] mode; NULL if none is built in. */
const struct deliver_ops *deliver_backend(enum delivery_mode mode);
extern const struct deliver_ops deliver_maildir;

/* Fills a reply. */
void deliver_reply_set(struct deliver_reply *r, enum deliver_status st, int code,
                       const char *enhanced, const char *text);

/* Creates <maildir>/{tmp,new,cur} and removes what a crash left in tmp/. */
bool maildir_prepare(const char *maildir, char *err, size_t errlen);

#endif
