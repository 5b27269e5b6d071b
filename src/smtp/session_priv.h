/* session_priv: what the files of one session share (session.c, the
 * lifecycle and reading; commands.c, the command table; session_auth.c,
 * AUTH; session_tls.c, TLS). Not for use outside src/smtp/session*.c and
 * commands.c. */
#ifndef PORTCULLIS_SESSION_PRIV_H
#define PORTCULLIS_SESSION_PRIV_H

#include <event2/bufferevent.h>
#include "base/util.h"
#include "proto/sasl.h"
#include "proto/smtp_data.h"
#include "proto/smtp_order.h"
#include "proto/smtp_parse.h"
#include "smtp/session.h"

enum state {
    ST_NEW,          /* accepted, not yet greeted */
    ST_PROXY,        /* waiting for the PROXY header */
    ST_CMD,          /* waiting for a command */
    ST_AUTH_PLAIN,   /* 334 sent, waiting for the PLAIN response */
    ST_AUTH_USER,    /* LOGIN: waiting for the user name */
    ST_AUTH_PASS,    /* LOGIN: waiting for the password */
    ST_DATA,         /* reading the message */
    ST_REJECTED,     /* 554 sent: 503 to all but QUIT */
};

/* The transaction: from MAIL to the end of DATA or RSET. */
struct tx {
    bool active;
    char id[UTIL_ID_LEN];        /* the queue id: Received:, the 250, the file */
    struct smtp_mail_from mail;
    size_t nrcpt;                /* recipients the backend took */
    struct smtp_data data;
    struct deliver_tx *dtx;      /* the backend's side, until end or abort */
    int64_t ended_ms;            /* util_mono_ms() at the end of data: delivery latency */
};

struct session {
    TAILQ_ENTRY(session) link;
    struct session_env *env;
    struct config *cfg;
    struct bufferevent *bev;
    evutil_socket_t fd;
    enum listen_mode mode;
    enum state state;
    struct addr peer, client;
    char ip[ADDR_STRLEN];
    char sid[UTIL_ID_LEN];
    uint16_t port;
    uint64_t epoch;
    bool counted, allowed, esmtp, tls, authed, busy, closing, dead, discard_line, tls_closed;
    bool calling;                /* inside a backend call: its callback must not re-enter process() */
    bool held;                   /* the backend asked us to stop reading the message */
    bool linger;                 /* we hang up on a client that may still be sending */
    bool peer_gone;
    bool handshaking;            /* a TLS handshake is under way */
    bool proxy_local;            /* the proxy's own health check: no client to name */
    struct rdns *rdns;           /* the lookup, while in flight */
    char *rdns_name;             /* its confirmed name; NULL: unknown */
    unsigned errors;
    char helo[256];
    char user[SASL_USER_MAX];
    uint64_t auth_fp;            /* the AUTH in flight: its fingerprint (store/accounts.h) */
    struct event *timer;         /* failure_delay, then the closing poll */
    struct event *deadline;      /* the PROXY header or a TLS handshake must be done by then */
    int64_t close_by;
    struct tx tx;
};

/* session.c */
void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The one place the state changes (logged at debug level). */
void enter_state(struct session *s, enum state st);
/* The read and write timeouts, in milliseconds. */
void set_timeouts(struct session *s, int64_t ms);
void tx_reset(struct session *s);
void close_after_reply(struct session *s);
void hang_up(struct session *s);
void bad_command(struct session *s, const char *text);
void offend(struct session *s, enum guard_reason what);
void process(struct session *s);
void on_read(struct bufferevent *bev, void *arg);
void on_write(struct bufferevent *bev, void *arg);
void on_event(struct bufferevent *bev, short what, void *arg);
/* SPEC §2 timeout_handshake: from now, the PROXY header or the TLS
 * handshake must be done within `ms` (an absolute limit, however slowly
 * the bytes trickle in), else the connection is closed; ms 0 disarms. */
void handshake_deadline(struct session *s, int64_t ms);
/* A backend's callback starts with wake (false: the session died while it
 * waited and is freed now) and ends with carry_on (reads on, unless the
 * answer came inside the call that asked: process() then goes on). */
bool wake(struct session *s);
void carry_on(struct session *s);
const char *protocol(const struct session *s);
bool wants_name(const struct session *s);

/* commands.c */
void session_command(struct session *s, const char *line);
bool feed_data(struct session *s);

/* session_auth.c */
bool auth_allowed(const struct session *s);
unsigned auth_mechanisms(const struct session *s);
void cmd_auth(struct session *s, const char *arg);
void auth_response(struct session *s, const char *line);
void auth_fail_reply(evutil_socket_t fd, short what, void *arg);

/* session_tls.c */
bool tls_offered(const struct session *s);
void cmd_starttls(struct session *s, const char *arg);
/* TLS from now on (after STARTTLS, or on a TLS listener at once); false
 * (and the session closing) when it cannot start. */
bool start_tls(struct session *s, SSL *ssl);

#endif
