/* dovecot_proto: lines of Dovecot's auth-client protocol (the server's
 * side: VERSION, MECH, SPID, CUID, COOKIE, DONE, OK, FAIL, CONT), and the
 * AUTH request we send. Fields are TAB-separated; values escape \001, TAB,
 * CR and LF as \001 followed by '1', 't', 'r', 'n'. Pure. */
#ifndef PORTCULLIS_DOVECOT_PROTO_H
#define PORTCULLIS_DOVECOT_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Dovecot's own bound on an auth-client line is 16 KB. */
#define DOVECOT_LINE_MAX 16384
#define DOVECOT_MECH_MAX 32
#define DOVECOT_USER_MAX 256
#define DOVECOT_REASON_MAX 128

enum dovecot_kind {
    DOVECOT_UNKNOWN = 0,   /* a line we do not use (ignored, as the protocol asks) */
    DOVECOT_VERSION, DOVECOT_MECH, DOVECOT_SPID, DOVECOT_CUID, DOVECOT_COOKIE,
    DOVECOT_DONE, DOVECOT_OK, DOVECOT_FAIL, DOVECOT_CONT,
};

struct dovecot_line {
    enum dovecot_kind kind;
    unsigned major, minor;              /* VERSION */
    char mech[DOVECOT_MECH_MAX];        /* MECH */
    unsigned id;                        /* OK, FAIL, CONT: the request id */
    bool temp;                          /* FAIL: temporary (temp, code=temp_fail) */
    bool nologin;                       /* OK: no login wanted here */
    bool proxy;                         /* OK: log in elsewhere */
    char user[DOVECOT_USER_MAX];        /* OK/FAIL user=, unescaped, cut to fit */
    char reason[DOVECOT_REASON_MAX];    /* FAIL reason=, unescaped, cut to fit */
    const char *cont;                   /* CONT: the base64 challenge (points into the line) */
};

/* Parses one line (without LF; len octets; the buffer must hold len+1,
 * as line[len] becomes the NUL; `line` is modified: fields are split and unescaped in place). Returns
 * false for a line the protocol does not allow: a missing or bad id or
 * version, an empty mechanism, a bad escape, more than DOVECOT_LINE_MAX. */
bool dovecot_parse_line(char *line, size_t len, struct dovecot_line *out);

/* Writes "AUTH\t<id>\t<mech>\tservice=smtp\tlip=..\trip=..[\tsecured]
 * \tno-penalty[\tresp=<b64>]\n" into out. Returns the length, or -1 when
 * it does not fit or a field holds TAB, CR, LF or \001 (nothing is escaped
 * on this side: such a value is refused before it is sent). `resp` NULL:
 * no initial response; "" means an empty one ("resp=" then "="). */
long dovecot_auth_request(char *out, size_t outlen, unsigned id, const char *mech,
                          const char *lip, const char *rip, bool secured,
                          const char *resp);

/* A value we may put in a field: no TAB, CR, LF or \001. */
bool dovecot_value_ok(const char *s);

#endif
