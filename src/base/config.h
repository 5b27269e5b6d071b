/* config: the INI file (via inih) -> one immutable struct config. Pure.
 * A reload builds a new one; sessions keep a reference to the one they
 * started with. */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/addr.h"

enum listen_mode { LISTEN_STARTTLS, LISTEN_TLS, LISTEN_PLAIN };

struct listen_addr {
    struct addr addr;
    uint16_t port;
    enum listen_mode mode;
    char text[ADDR_STRLEN + 16];   /* as written, for logs */
};

enum store_backend { STORE_SQLITE, STORE_REDIS };
enum delivery_mode { DELIVER_MAILDIR, DELIVER_RELAY };
enum auth_backend { AUTH_FILE, AUTH_DOVECOT };
/* Postfix's TLS security levels for the next hop. */
enum relay_tls { RELAY_TLS_NONE, RELAY_TLS_MAY, RELAY_TLS_ENCRYPT, RELAY_TLS_VERIFY };
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_BANS 16
#define CONFIG_MAX_PERMANENT_AFTER 16
#define CONFIG_PATH_MAX 1024
#define CONFIG_MAX_RESOLVERS 8

/* A nameserver for the reverse DNS lookups. */
struct resolver_addr {
    struct addr addr;
    uint16_t port;
};

struct config {
    atomic_int refs;
    char path[CONFIG_PATH_MAX];          /* the file itself */
    char dir[CONFIG_PATH_MAX];           /* its folder: base of relative paths */

    /* [server] */
    char hostname[256];
    struct listen_addr listen[CONFIG_MAX_LISTEN];
    int nlisten;
    int workers;                         /* resolved: never "auto" here */
    long max_clients;
    int64_t max_message_size;
    long max_recipients;
    int64_t timeout_command_ms;
    int64_t timeout_data_ms;
    int64_t timeout_handshake_ms;        /* PROXY header, each TLS handshake */
    bool proxy_protocol;
    struct cidr_list proxy_from;
    char user[64];
    bool reverse_dns;
    struct resolver_addr resolver[CONFIG_MAX_RESOLVERS];
    int nresolver;                       /* 0: the system's, /etc/resolv.conf */

    /* [tls] */
    char tls_cert[CONFIG_PATH_MAX];      /* absolute, or "" */
    char tls_key[CONFIG_PATH_MAX];
    bool require_tls_for_auth;
    struct cidr_list plain_auth_from;

    /* [auth] */
    enum auth_backend auth_backend;
    char users[CONFIG_PATH_MAX];
    char dovecot_socket[CONFIG_PATH_MAX]; /* absolute path, or HOST:PORT */
    bool mech_plain, mech_login;
    int64_t failure_delay_ms;
    int64_t auth_cache_ttl_ms;           /* 0: every AUTH runs the hash */

    /* [guard] */
    long auth_fail_limit;
    int64_t auth_fail_window_ms;
    long unauth_limit;
    int64_t unauth_window_ms;
    long conn_rate_limit;
    int64_t conn_rate_window_ms;
    long concurrency_limit;
    int64_t ban_ms[CONFIG_MAX_BANS];
    int nbans;
    long permanent_after;                /* 0: never permanent */
    int64_t offense_memory_ms;
    int ipv4_prefix, ipv6_prefix;
    struct cidr_list allow;
    char reject_text[256];
    char reject_line[560];               /* "554 <hostname> <reject_text>\r\n" */
    size_t reject_line_len;
    int64_t history_retention_ms;
    long escalate_count;
    int ipv4_escalate_prefix, ipv6_escalate_prefix;   /* 0, or not shorter than the counting prefix: never */
    long max_tracked;
    bool repeat_counts_once;
    long account_fail_limit;
    int64_t account_fail_window_ms;      /* 0: account locks off */
    int64_t account_lock_ms;
    int64_t familiar_for_ms;
    long max_accounts;                   /* accounts tracked at once (guard/account.h) */

    /* [store] */
    enum store_backend store;
    char store_path[CONFIG_PATH_MAX];
    char redis[CONFIG_PATH_MAX];         /* "host:port" or "unix:/path" */
    char redis_password[256];
    long redis_db;
    char redis_prefix[128];

    /* [delivery] */
    enum delivery_mode delivery;
    char maildir[CONFIG_PATH_MAX];
    char relay[CONFIG_PATH_MAX];         /* smtp://H:P, lmtp://H:P, lmtp:unix:/abs */
    enum relay_tls relay_tls;
    char relay_ca[CONFIG_PATH_MAX];
    bool relay_forward;
    int64_t relay_timeout_ms;

    /* [control] */
    char control_socket[CONFIG_PATH_MAX];
    char control_http[128];
    char http_token_file[CONFIG_PATH_MAX];
    char public_http[128];
    /* Both parsed ("" leaves port 0); mode LISTEN_TLS or LISTEN_PLAIN. */
    struct listen_addr http_listen, public_listen;

    /* [log] */
    enum log_level log_level;
    enum log_format log_format;
};

/* Where both programs look without -c: $PORTCULLIS_CONF when set, else
 * CONFIG_DEFAULT_PATH (where the systemd unit points). */
#define CONFIG_DEFAULT_PATH "/etc/portcullis/portcullis.conf"
const char *config_default_path(void);

/* Reads and validates `path`. On error returns NULL and writes
 * "FILE:LINE: [section] key: what is wrong" into err. The result has one
 * reference. */
struct config *config_load(const char *path, char *err, size_t errlen);
/* The same, but goes on after a problem and calls report() with each one
 * ("FILE:LINE: [section] key: problem", in the order of the file, then
 * the rules between keys): `portcullisd -t` lists them all. NULL when
 * there was any. */
struct config *config_load_report(const char *path, void (*report)(void *ctx, const char *problem),
                                  void *ctx);
/* The embedded defaults, with paths relative to `dir`. */
struct config *config_defaults(const char *dir);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* The duration of the k-th block (k from 1); -1 means permanent. */
int64_t config_ban_ms(const struct config *c, int k);

/* "IP:PORT" or "[V6]:PORT" (numeric; the port is required), as the
 * relay and dovecot_socket keys are checked. */
bool config_host_port(const char *w, struct addr *a, uint16_t *port);

#endif
