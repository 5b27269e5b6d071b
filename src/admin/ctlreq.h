/* ctlreq: one control-socket request line -> a checked request, or the
 * error text the daemon answers with; and the reply line. Pure (jansson,
 * no server, no I/O): control.c serves what it returns, the unit tests and
 * fuzz/fuzz_control.c reach every check without a socket, portcullisctl
 * uses the same command names and address check. */
#ifndef PORTCULLIS_CTLREQ_H
#define PORTCULLIS_CTLREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "base/addr.h"
#include "guard/account.h"
#include "guard/guard.h"

/* A request line is at most this long (without its LF); a longer one is
 * answered with CTLREQ_TOO_LONG and the connection closed. */
#define CTLREQ_MAX 65536
#define CTLREQ_TOO_LONG "{\"ok\":false,\"error\":\"request too long\"}\n"

/* Room for every error text ctlreq_parse() writes (the quoted part of a
 * bad address is cut to 200 bytes). */
#define CTLREQ_ERR_MAX 256

/* The longest temporary block, 100 years: "until" stays far from overflow. */
#define CTLREQ_DURATION_MAX (100LL * 36525 * 864 * 1000)

enum ctlreq_cmd {
    CTLREQ_STATUS, CTLREQ_HISTORY, CTLREQ_LIST, CTLREQ_BLOCK, CTLREQ_UNBLOCK,
    CTLREQ_STATS, CTLREQ_RELOAD, CTLREQ_ACCOUNT, CTLREQ_UNLOCK,
};
#define CTLREQ_NCMD (CTLREQ_UNLOCK + 1)

enum ctlreq_filter { CTLREQ_ALL, CTLREQ_PERMANENT, CTLREQ_TEMPORARY };

struct ctlreq {
    enum ctlreq_cmd cmd;
    /* status, history, block, unblock. */
    char ip[ADDR_STRLEN + 8];      /* as given: status shows it back */
    struct addr addr;              /* as parsed; see ctlreq_prefix() */
    /* account, unlock: the account name as given, 1 .. 255 bytes of UTF-8
     * without control characters (normalised where it is looked up). */
    char name[ACCOUNT_NAME_MAX];
    /* list: "filter", absent (or not a string) = all. */
    enum ctlreq_filter filter;
    /* block: 1 .. CTLREQ_DURATION_MAX, or -1 for permanent. */
    int64_t duration_ms;
    /* "by" and "reason", cut on a character boundary to what a block
     * record keeps (lifted_by, note / lift_reason), so the log line says
     * what the store has. Absent (or not strings): "portcullisctl", "". */
    char by[sizeof ((struct guard_block *)0)->lifted_by];
    char reason[sizeof ((struct guard_block *)0)->note];
};

/* Parses and checks one request line (len bytes, no LF). Returns false
 * with the reply's error text in err: not a JSON object, unknown command,
 * a bad "ip", "duration_ms" or "filter". Keys a command does not use are
 * ignored. */
bool ctlreq_parse(const char *line, size_t len, struct ctlreq *r, char err[CTLREQ_ERR_MAX]);

/* What the request is about: an address stands for its counting prefix
 * (v4bits/v6bits), a CIDR prefix for itself. */
struct addr ctlreq_prefix(const struct ctlreq *r, int v4bits, int v6bits);

/* "status" -> CTLREQ_STATUS; false for anything else (also NULL). */
bool ctlreq_command(const char *name, enum ctlreq_cmd *out);
/* status, history, block and unblock need an "ip". */
bool ctlreq_takes_ip(enum ctlreq_cmd c);
/* account and unlock need a "name". */
bool ctlreq_takes_name(enum ctlreq_cmd c);
/* An account name argument: false with the error text in err when it is
 * missing, empty, too long, not UTF-8 or holds a control character. */
bool ctlreq_name(const char *name, char *err, size_t errlen);
const char *ctlreq_filter_name(enum ctlreq_filter f);

/* An "ip" argument: an address or a CIDR prefix (NULL: missing). Returns
 * false with "not an address or prefix: ..." in err otherwise. */
bool ctlreq_ip(const char *ip, struct addr *out, char *err, size_t errlen);

/* The reply line without its LF: {"ok":true,"result":RESULT} when result
 * is not NULL (taken over), else {"ok":false,"error":ERR} ("failed" when
 * err is NULL). The caller frees it; NULL when out of memory. */
char *ctlreq_reply(json_t *result, const char *err);

#endif
