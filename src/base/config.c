#include "base/config.h"

#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "base/util.h"

enum ktype { K_STR, K_PATH, K_DUR, K_SIZE, K_BOOL, K_LONG, K_CIDR, K_SPECIAL };

struct key {
    const char *section, *name;
    enum ktype type;
    size_t off;       /* into struct config */
    size_t len;       /* K_STR/K_PATH buffer size */
    long min, max;    /* K_LONG; K_DUR/K_SIZE minimum in ms/bytes */
};

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define N(field) offsetof(struct config, field), 0

static const struct key keys[] = {
    {"server", "hostname", K_STR, F(hostname), 0, 0},
    {"server", "listen", K_SPECIAL, N(listen), 0, 0},
    {"server", "workers", K_SPECIAL, N(workers), 0, 0},
    {"server", "max_clients", K_LONG, N(max_clients), 1, 10000000},
    {"server", "max_message_size", K_SIZE, N(max_message_size), 1024, 0},
    {"server", "max_recipients", K_LONG, N(max_recipients), 1, 100000},
    {"server", "timeout_command", K_DUR, N(timeout_command_ms), 1, 0},
    {"server", "timeout_data", K_DUR, N(timeout_data_ms), 1, 0},
    {"server", "timeout_handshake", K_DUR, N(timeout_handshake_ms), 1, 0},
    {"server", "proxy_protocol", K_BOOL, N(proxy_protocol), 0, 0},
    {"server", "proxy_from", K_CIDR, N(proxy_from), 0, 0},
    {"server", "user", K_STR, F(user), 0, 0},
    {"server", "reverse_dns", K_BOOL, N(reverse_dns), 0, 0},
    {"server", "resolver", K_SPECIAL, N(resolver), 0, 0},
    {"tls", "cert", K_PATH, F(tls_cert), 0, 0},
    {"tls", "key", K_PATH, F(tls_key), 0, 0},
    {"tls", "require_tls_for_auth", K_BOOL, N(require_tls_for_auth), 0, 0},
    {"tls", "plain_auth_from", K_CIDR, N(plain_auth_from), 0, 0},
    {"auth", "users", K_PATH, F(users), 0, 0},
    {"auth", "backend", K_SPECIAL, N(auth_backend), 0, 0},
    {"auth", "dovecot_socket", K_SPECIAL, N(dovecot_socket), 0, 0},
    {"auth", "mechanisms", K_SPECIAL, N(mech_plain), 0, 0},
    {"auth", "failure_delay", K_DUR, N(failure_delay_ms), 0, 0},
    {"auth", "cache_ttl", K_DUR, N(auth_cache_ttl_ms), 0, 0},
    {"guard", "auth_fail_limit", K_LONG, N(auth_fail_limit), 1, 1000000},
    {"guard", "auth_fail_window", K_DUR, N(auth_fail_window_ms), 1, 0},
    {"guard", "unauth_limit", K_LONG, N(unauth_limit), 1, 1000000},
    {"guard", "unauth_window", K_DUR, N(unauth_window_ms), 1, 0},
    {"guard", "conn_rate_limit", K_LONG, N(conn_rate_limit), 1, 100000000},
    {"guard", "conn_rate_window", K_DUR, N(conn_rate_window_ms), 1, 0},
    {"guard", "concurrency_limit", K_LONG, N(concurrency_limit), 1, 10000000},
    {"guard", "ban_durations", K_SPECIAL, N(ban_ms), 0, 0},
    {"guard", "permanent_after", K_LONG, N(permanent_after), 0, CONFIG_MAX_PERMANENT_AFTER},
    {"guard", "offense_memory", K_DUR, N(offense_memory_ms), 1, 0},
    {"guard", "ipv4_prefix", K_LONG, N(ipv4_prefix), 8, 32},
    {"guard", "ipv6_prefix", K_LONG, N(ipv6_prefix), 16, 128},
    {"guard", "allow", K_CIDR, N(allow), 0, 0},
    {"guard", "reject_text", K_STR, F(reject_text), 0, 0},
    {"guard", "history_retention", K_DUR, N(history_retention_ms), 1, 0},
    {"guard", "escalate_count", K_LONG, N(escalate_count), 2, 1000000},
    {"guard", "ipv4_escalate_prefix", K_LONG, N(ipv4_escalate_prefix), 0, 31},
    {"guard", "ipv6_escalate_prefix", K_LONG, N(ipv6_escalate_prefix), 0, 127},
    {"guard", "max_tracked", K_LONG, N(max_tracked), 100, 100000000},
    {"guard", "repeat_counts_once", K_BOOL, N(repeat_counts_once), 0, 0},
    {"guard", "account_fail_limit", K_LONG, N(account_fail_limit), 1, 1000000},
    {"guard", "account_fail_window", K_DUR, N(account_fail_window_ms), 0, 0},
    {"guard", "account_lock", K_DUR, N(account_lock_ms), 1, 0},
    {"guard", "familiar_for", K_DUR, N(familiar_for_ms), 1, 0},
    {"guard", "max_accounts", K_LONG, N(max_accounts), 100, 100000000},
    {"store", "backend", K_SPECIAL, N(store), 0, 0},
    {"store", "path", K_PATH, F(store_path), 0, 0},
    {"store", "redis", K_SPECIAL, N(redis), 0, 0},
    {"store", "redis_password", K_STR, F(redis_password), 0, 0},
    {"store", "redis_db", K_LONG, N(redis_db), 0, 1000},
    {"store", "redis_prefix", K_STR, F(redis_prefix), 0, 0},
    {"delivery", "mode", K_SPECIAL, N(delivery), 0, 0},
    {"delivery", "maildir", K_PATH, F(maildir), 0, 0},
    {"delivery", "relay", K_SPECIAL, N(relay), 0, 0},
    {"delivery", "relay_tls", K_SPECIAL, N(relay_tls), 0, 0},
    {"delivery", "relay_ca", K_PATH, F(relay_ca), 0, 0},
    {"delivery", "relay_forward", K_BOOL, N(relay_forward), 0, 0},
    {"delivery", "relay_timeout", K_DUR, N(relay_timeout_ms), 1, 0},
    {"control", "socket", K_PATH, F(control_socket), 0, 0},
    {"control", "http", K_STR, F(control_http), 0, 0},
    {"control", "http_token_file", K_PATH, F(http_token_file), 0, 0},
    {"control", "public_http", K_STR, F(public_http), 0, 0},
    {"log", "level", K_SPECIAL, N(log_level), 0, 0},
    {"log", "format", K_SPECIAL, N(log_format), 0, 0},
};

/* Called once per problem with "FILE:LINE: [section] key: problem". */
typedef void (*config_report_fn)(void *ctx, const char *problem);

struct parse_ctx {
    struct config *c;
    const char *path;        /* as the caller wrote it, for messages */
    char msg[512];           /* the current problem, without file:line */
    FILE *f;
    int line;                /* of the line inih is working on */
    int next_line;
    char section[64];        /* as the reader last saw it */
    bool in_key;             /* a key line came before: indented lines continue it */
    char unknown[64];        /* the unknown section already reported */
    int problems;
    config_report_fn report;
    void *report_ctx;
};

static void problem(struct parse_ctx *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct parse_ctx *p, int line, const char *fmt, ...)
{
    char what[768], full[1024 + CONFIG_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(full, sizeof full, "%s:%d: %s", p->path, line, what);
    else
        snprintf(full, sizeof full, "%s: %s", p->path, what);
    p->problems++;
    p->report(p->report_ctx, full);
}

static bool set_path(const struct config *c, char *dst, size_t len, const char *v)
{
    if (*v == '\0' || *v == '/')
        return util_strlcpy(dst, v, len) < len;
    return (size_t)snprintf(dst, len, "%s/%s", c->dir, v) < len;
}

/* "IP", "IP:PORT", "V6", "[V6]" or "[V6]:PORT": a port after an IPv6
 * address needs the brackets. default_port 0: the port is required. */
static bool parse_host_port(const char *w, long default_port, struct addr *a, uint16_t *port)
{
    char host[ADDR_STRLEN];
    const char *ps = NULL;
    size_t hostlen;
    if (w[0] == '[') {
        const char *close = strchr(w, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        hostlen = (size_t)(close - w - 1);
        w++;
        if (close[1] == ':')
            ps = close + 2;
    } else {
        const char *colon = strchr(w, ':');
        /* One colon: IPv4 with a port. More: a bare IPv6 address. */
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            hostlen = (size_t)(colon - w);
            ps = colon + 1;
        } else {
            hostlen = strlen(w);
        }
    }
    if (hostlen == 0 || hostlen >= sizeof host)
        return false;
    memcpy(host, w, hostlen);
    host[hostlen] = '\0';
    long p = default_port;
    if (ps != NULL ? !util_parse_long(ps, 1, 65535, &p) : p == 0)
        return false;
    if (!addr_parse(host, false, a))
        return false;
    *port = (uint16_t)p;
    return true;
}

static bool parse_listen_one(const char *w, struct listen_addr *l)
{
    char buf[ADDR_STRLEN + 32];
    if (util_strlcpy(buf, w, sizeof buf) >= sizeof buf)
        return false;
    util_strlcpy(l->text, w, sizeof l->text);
    l->mode = LISTEN_STARTTLS;
    char *slash = strrchr(buf, '/');
    if (slash != NULL) {
        if (strcmp(slash, "/starttls") == 0)
            l->mode = LISTEN_STARTTLS;
        else if (strcmp(slash, "/tls") == 0)
            l->mode = LISTEN_TLS;
        else if (strcmp(slash, "/plain") == 0)
            l->mode = LISTEN_PLAIN;
        else
            return false;
        *slash = '\0';
    }
    return parse_host_port(buf, 0, &l->addr, &l->port);
}

bool config_host_port(const char *w, struct addr *a, uint16_t *port)
{
    return parse_host_port(w, 0, a, port);
}

/* A nameserver: the port defaults to 53. */
static bool parse_resolver_one(const char *w, struct resolver_addr *r)
{
    return parse_host_port(w, 53, &r->addr, &r->port);
}

/* Calls one(p, word, i) for each word of a list value ("a b, c"), at most
 * max of them. Returns how many, or -1 with the message in p->msg (a value
 * too long to split, too many words, or what `one` said). */
static int each_word(struct parse_ctx *p, const char *v, int max, const char *what,
                     bool (*one)(struct parse_ctx *p, const char *w, int i))
{
    char buf[2048];
    if (util_strlcpy(buf, v, sizeof buf) >= sizeof buf)
        return snprintf(p->msg, sizeof p->msg, "too long"), -1;
    int n = 0;
    for (char *save, *w = strtok_r(buf, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
        if (n == max)
            return snprintf(p->msg, sizeof p->msg, "more than %d %s", max, what), -1;
        if (!one(p, w, n++))
            return -1;
    }
    return n;
}

static bool listen_word(struct parse_ctx *p, const char *w, int i)
{
    if (parse_listen_one(w, &p->c->listen[i]))
        return true;
    snprintf(p->msg, sizeof p->msg,
             "'%s' is not ADDR:PORT or [V6]:PORT with an optional /starttls, /tls or /plain", w);
    return false;
}

static bool resolver_word(struct parse_ctx *p, const char *w, int i)
{
    if (parse_resolver_one(w, &p->c->resolver[i]))
        return true;
    snprintf(p->msg, sizeof p->msg, "'%s' is not a nameserver address: IP, IP:PORT or [V6]:PORT", w);
    return false;
}

static bool mechanism_word(struct parse_ctx *p, const char *w, int i)
{
    (void)i;
    if (strcasecmp(w, "PLAIN") == 0)
        p->c->mech_plain = true;
    else if (strcasecmp(w, "LOGIN") == 0)
        p->c->mech_login = true;
    else
        return snprintf(p->msg, sizeof p->msg, "unknown mechanism '%s' (PLAIN, LOGIN)", w), false;
    return true;
}

static bool ban_word(struct parse_ctx *p, const char *w, int i)
{
    int64_t ms = util_parse_duration(w);
    if (ms <= 0)
        return snprintf(p->msg, sizeof p->msg, "'%s' is not a duration like 15m", w), false;
    p->c->ban_ms[i] = ms;
    return true;
}

static bool parse_special(struct parse_ctx *p, const struct key *k, const char *v)
{
    struct config *c = p->c;
    const char *name = k->name;
    if (strcmp(name, "listen") == 0) {
        int n = each_word(p, v, CONFIG_MAX_LISTEN, "addresses", listen_word);
        if (n == 0)
            snprintf(p->msg, sizeof p->msg, "no address given");
        if (n <= 0)
            return false;
        c->nlisten = n;
        return true;
    }
    if (strcmp(name, "resolver") == 0) {
        int n = each_word(p, v, CONFIG_MAX_RESOLVERS, "nameservers", resolver_word);
        if (n < 0)
            return false;
        c->nresolver = n;    /* none: the system's resolvers */
        return true;
    }
    if (strcmp(name, "workers") == 0) {
        long w;
        if (strcmp(v, "auto") == 0) {
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            c->workers = cores > 0 ? (int)(cores > 64 ? 64 : cores) : 1;
            return true;
        }
        if (!util_parse_long(v, 1, 256, &w))
            return snprintf(p->msg, sizeof p->msg, "'%s' is not 'auto' or a number from 1 to 256", v), false;
        c->workers = (int)w;
        return true;
    }
    if (strcmp(name, "mechanisms") == 0) {
        c->mech_plain = c->mech_login = false;
        int n = each_word(p, v, 8, "mechanisms", mechanism_word);
        if (n == 0)
            snprintf(p->msg, sizeof p->msg, "none given (PLAIN, LOGIN)");
        return n > 0;
    }
    if (strcmp(name, "ban_durations") == 0) {
        int n = each_word(p, v, CONFIG_MAX_BANS, "durations", ban_word);
        if (n == 0)
            snprintf(p->msg, sizeof p->msg, "at least one duration is needed");
        if (n <= 0)
            return false;
        c->nbans = n;
        return true;
    }
    if (strcmp(name, "backend") == 0 && strcmp(k->section, "auth") == 0) {
        if (strcmp(v, "file") == 0)
            c->auth_backend = AUTH_FILE;
        else if (strcmp(v, "dovecot") == 0)
            c->auth_backend = AUTH_DOVECOT;
        else
            return snprintf(p->msg, sizeof p->msg, "'%s' is not file or dovecot", v), false;
        return true;
    }
    if (strcmp(name, "dovecot_socket") == 0) {
        /* A path has a slash; anything else must be HOST:PORT. */
        struct listen_addr la;
        if (strchr(v, '/') != NULL ? set_path(c, c->dovecot_socket, sizeof c->dovecot_socket, v)
                                   : parse_listen_one(v, &la) &&
                                     util_strlcpy(c->dovecot_socket, v, sizeof c->dovecot_socket) <
                                         sizeof c->dovecot_socket)
            return true;
        return snprintf(p->msg, sizeof p->msg, "'%s' is not a socket path or HOST:PORT", v), false;
    }
    if (strcmp(name, "relay") == 0) {
        struct listen_addr la;
        char hp[sizeof c->relay];
        /* HOST:PORT after the scheme, without a /mode suffix. */
        if ((strncmp(v, "smtp://", 7) == 0 || strncmp(v, "lmtp://", 7) == 0) &&
            util_strlcpy(hp, v + 7, sizeof hp) < sizeof hp && strchr(hp, '/') == NULL &&
            parse_listen_one(hp, &la))
            return util_strlcpy(c->relay, v, sizeof c->relay) < sizeof c->relay;
        if (strncmp(v, "lmtp:unix:", 10) == 0 && v[10] != '\0') {
            char path[CONFIG_PATH_MAX];
            if (set_path(c, path, sizeof path, v + 10) &&
                (size_t)snprintf(c->relay, sizeof c->relay, "lmtp:unix:%s", path) < sizeof c->relay)
                return true;
        }
        return snprintf(p->msg, sizeof p->msg,
                        "'%s' is not smtp://HOST:PORT, lmtp://HOST:PORT or lmtp:unix:/path", v), false;
    }
    if (strcmp(name, "relay_tls") == 0) {
        static const char *const lv[] = {"none", "may", "encrypt", "verify"};
        for (size_t i = 0; i < ARRAY_LEN(lv); i++)
            if (strcmp(v, lv[i]) == 0)
                return c->relay_tls = (enum relay_tls)i, true;
        return snprintf(p->msg, sizeof p->msg, "'%s' is not none, may, encrypt or verify", v), false;
    }
    if (strcmp(name, "backend") == 0) {
        if (strcmp(v, "sqlite") == 0)
            c->store = STORE_SQLITE;
        else if (strcmp(v, "redis") == 0)
            c->store = STORE_REDIS;
        else
            return snprintf(p->msg, sizeof p->msg, "'%s' is not sqlite or redis", v), false;
        return true;
    }
    if (strcmp(name, "redis") == 0) {
        if (strncmp(v, "unix:", 5) == 0) {
            char path[CONFIG_PATH_MAX];
            if (!set_path(c, path, sizeof path, v + 5) || v[5] == '\0')
                return snprintf(p->msg, sizeof p->msg, "bad unix socket path"), false;
            snprintf(c->redis, sizeof c->redis, "unix:%s", path);
            return true;
        }
        struct listen_addr la;
        if (!parse_listen_one(v, &la) || strchr(v, '/') != NULL)
            return snprintf(p->msg, sizeof p->msg, "'%s' is not HOST:PORT or unix:/path", v), false;
        util_strlcpy(c->redis, v, sizeof c->redis);
        return true;
    }
    if (strcmp(name, "mode") == 0) {
        if (strcmp(v, "maildir") == 0)
            c->delivery = DELIVER_MAILDIR;
        else if (strcmp(v, "relay") == 0)
            c->delivery = DELIVER_RELAY;
        else
            return snprintf(p->msg, sizeof p->msg, "'%s' is not maildir or relay", v), false;
        return true;
    }
    if (strcmp(name, "level") == 0) {
        static const char *const lv[] = {"debug", "info", "warn", "error"};
        for (size_t i = 0; i < ARRAY_LEN(lv); i++)
            if (strcmp(v, lv[i]) == 0)
                return c->log_level = (enum log_level)i, true;
        return snprintf(p->msg, sizeof p->msg, "'%s' is not debug, info, warn or error", v), false;
    }
    if (strcmp(name, "format") == 0) {
        if (strcmp(v, "logfmt") == 0)
            c->log_format = LOG_LOGFMT;
        else if (strcmp(v, "json") == 0)
            c->log_format = LOG_JSON;
        else
            return snprintf(p->msg, sizeof p->msg, "'%s' is not logfmt or json", v), false;
        return true;
    }
    return snprintf(p->msg, sizeof p->msg, "unhandled key"), false;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *p = user;
    struct config *c = p->c;
    const struct key *k = NULL;
    p->msg[0] = '\0';
    bool known_section = false;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = true;
        if (strcmp(keys[i].name, name) == 0)
            k = &keys[i];
    }
    if (!known_section) {
        /* Once per section, not once per key in it. */
        if (strcmp(p->unknown, section) != 0)
            problem(p, p->line, "[%s] %s: unknown section [%s]", section, name, section);
        util_strlcpy(p->unknown, section, sizeof p->unknown);
        return 1;
    }
    if (k == NULL) {
        problem(p, p->line, "[%s] %s: unknown key", section, name);
        return 1;
    }
    char *field = (char *)c + k->off;
    char why[400] = "";
    bool ok = true;
    switch (k->type) {
    case K_STR:
        ok = util_strlcpy(field, value, k->len) < k->len;
        if (!ok)
            snprintf(why, sizeof why, "longer than %zu characters", k->len - 1);
        break;
    case K_PATH:
        ok = set_path(c, field, k->len, value);
        if (!ok)
            snprintf(why, sizeof why, "path too long");
        break;
    case K_DUR: {
        int64_t ms = util_parse_duration(value);
        ok = ms >= k->min;
        if (ok)
            *(int64_t *)(void *)field = ms;
        else
            snprintf(why, sizeof why, "'%s' is not a duration like 45s, 10m, 2h or 30d%s", value,
                     k->min > 0 ? " (above zero)" : "");
        break;
    }
    case K_SIZE: {
        int64_t sz = util_parse_size(value);
        ok = sz >= k->min;
        if (ok)
            *(int64_t *)(void *)field = sz;
        else
            snprintf(why, sizeof why, "'%s' is not a size like 512K or 25M (at least %ld bytes)", value, k->min);
        break;
    }
    case K_BOOL: {
        int b = util_parse_bool(value);
        ok = b >= 0;
        if (ok)
            *(bool *)field = b;
        else
            snprintf(why, sizeof why, "'%s' is not yes or no", value);
        break;
    }
    case K_LONG: {
        long v;
        ok = util_parse_long(value, k->min, k->max, &v);
        if (!ok)
            snprintf(why, sizeof why, "'%s' is not a whole number from %ld to %ld", value, k->min, k->max);
        else if (k->off == offsetof(struct config, ipv4_prefix) ||
                 k->off == offsetof(struct config, ipv6_prefix) ||
                 k->off == offsetof(struct config, ipv4_escalate_prefix) ||
                 k->off == offsetof(struct config, ipv6_escalate_prefix))
            *(int *)(void *)field = (int)v;
        else
            *(long *)(void *)field = v;
        break;
    }
    case K_CIDR: {
        char e[200];
        ok = cidr_list_parse(value, (struct cidr_list *)(void *)field, e, sizeof e);
        if (!ok)
            snprintf(why, sizeof why, "%s", e);
        break;
    }
    case K_SPECIAL:
        ok = parse_special(p, k, value);
        if (!ok)
            util_strlcpy(why, p->msg, sizeof why);
        break;
    }
    /* Go on after a problem: -t lists every one (inih keeps reading). */
    if (!ok)
        problem(p, p->line, "[%s] %s: %s", section, name, why);
    return 1;
}

/* What inih will say is not `key = value`: a line that is neither blank,
 * a comment, a [section], a key nor the continuation of one. */
static bool bad_syntax(struct parse_ctx *p, const char *line)
{
    const char *t = line + strspn(line, " \t\r\n");
    if (*t == '\0' || *t == ';' || *t == '#')
        return false;
    if (*t == '[') {
        const char *close = strchr(t, ']');
        if (close == NULL)
            return true;
        snprintf(p->section, sizeof p->section, "%.*s", (int)(close - t - 1), t + 1);
        p->in_key = false;
        return false;
    }
    if (t > line && p->in_key)
        return false;    /* inih's multi-line value */
    if (strcspn(t, "=:") == strlen(t))
        return true;
    p->in_key = true;
    return false;
}

/* inih's line reader: counts lines, so that every problem has its own. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_ctx *p = stream;
    if (fgets(str, num, p->f) == NULL)
        return NULL;
    p->line = p->next_line;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] == '\n') {
        p->next_line++;
        if (bad_syntax(p, str))
            problem(p, p->line, "syntax error (expected [section] or key = value)");
    }
    return str;
}

/* What follows from other settings: the 554 line the fast path sends. */
static void config_derive(struct config *c)
{
    c->reject_line_len = (size_t)snprintf(c->reject_line, sizeof c->reject_line, "554 %s %s\r\n",
                                          c->hostname, c->reject_text);
}

struct config *config_defaults(const char *dir)
{
    struct config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    util_strlcpy(c->dir, dir, sizeof c->dir);
    if (gethostname(c->hostname, sizeof c->hostname - 1) != 0 || c->hostname[0] == '\0')
        util_strlcpy(c->hostname, "localhost", sizeof c->hostname);
    parse_listen_one("127.0.0.1:2525", &c->listen[0]);
    c->nlisten = 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->workers = cores > 0 ? (int)(cores > 64 ? 64 : cores) : 1;
    c->max_clients = 50000;
    c->max_message_size = 25 * 1048576;
    c->max_recipients = 100;
    c->timeout_command_ms = 5 * 60000;
    c->timeout_data_ms = 10 * 60000;
    c->timeout_handshake_ms = 20000;
    char e[64];
    cidr_list_parse("127.0.0.1/32", &c->proxy_from, e, sizeof e);
    c->require_tls_for_auth = true;
    cidr_list_parse("127.0.0.0/8 ::1/128", &c->plain_auth_from, e, sizeof e);
    set_path(c, c->users, sizeof c->users, "users");
    c->auth_backend = AUTH_FILE;
    util_strlcpy(c->dovecot_socket, "/run/dovecot/auth-client", sizeof c->dovecot_socket);
    c->mech_plain = c->mech_login = true;
    c->failure_delay_ms = 1000;
    c->auth_fail_limit = 5;
    c->auth_fail_window_ms = 10 * 60000;
    c->unauth_limit = 10;
    c->unauth_window_ms = 10 * 60000;
    c->conn_rate_limit = 200;
    c->conn_rate_window_ms = 2 * 60000;
    c->concurrency_limit = 20;
    c->ban_ms[0] = 15 * 60000;
    c->ban_ms[1] = 3600000;
    c->ban_ms[2] = 24 * 3600000;
    c->nbans = 3;
    c->permanent_after = 4;
    c->offense_memory_ms = 30LL * 86400000;
    c->ipv4_prefix = 32;
    c->ipv6_prefix = 64;
    util_strlcpy(c->reject_text, "ESMTP not accepting connections", sizeof c->reject_text);
    c->history_retention_ms = 365LL * 86400000;
    c->escalate_count = 8;
    c->ipv4_escalate_prefix = 0;
    c->ipv6_escalate_prefix = 48;
    c->max_tracked = 1000000;
    c->repeat_counts_once = true;
    c->account_fail_limit = 30;
    c->account_fail_window_ms = 3600000;
    c->account_lock_ms = 3600000;
    c->familiar_for_ms = 30LL * 86400000;
    c->max_accounts = 100000;
    c->store = STORE_SQLITE;
    set_path(c, c->store_path, sizeof c->store_path, "var/portcullis.db");
    util_strlcpy(c->redis, "127.0.0.1:6379", sizeof c->redis);
    util_strlcpy(c->redis_prefix, "portcullis:", sizeof c->redis_prefix);
    c->delivery = DELIVER_MAILDIR;
    set_path(c, c->maildir, sizeof c->maildir, "var/mail");
    util_strlcpy(c->relay, "smtp://127.0.0.1:10025", sizeof c->relay);
    c->relay_tls = RELAY_TLS_MAY;
    c->relay_forward = true;
    c->relay_timeout_ms = 60000;
    set_path(c, c->control_socket, sizeof c->control_socket, "var/portcullis.sock");
    c->log_level = LOG_INFO;
    c->log_format = LOG_LOGFMT;
    c->auth_cache_ttl_ms = 60000;
    config_derive(c);
    return c;
}

static void config_free(struct config *c)
{
    cidr_list_free(&c->proxy_from);
    cidr_list_free(&c->plain_auth_from);
    cidr_list_free(&c->allow);
    free(c);
}

/* The line where `key` of `section` is set (the last one wins, as in the
 * parse), or 0 when it is not in the file. inih does not tell handlers the
 * line, and rules between keys are checked after the parse. */
static int key_line(const char *path, const char *section, const char *key)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[4096], cur[64] = "";
    int n = 0, found = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        n++;
        char *p = line + strspn(line, " \t");
        if (*p == '[') {
            size_t len = strcspn(p + 1, "]");
            snprintf(cur, sizeof cur, "%.*s", (int)len, p + 1);
        } else if (strcmp(cur, section) == 0 && strncmp(p, key, strlen(key)) == 0 &&
                   strchr(" \t=:", p[strlen(key)]) != NULL) {
            found = n;
        }
    }
    fclose(f);
    return found;
}

/* A rule that involves more than one key, broken: names the key at fault
 * and the line it is set on (0 when it is not in the file). */
static void rule_broken(struct parse_ctx *p, const char *sec, const char *key, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void rule_broken(struct parse_ctx *p, const char *sec, const char *key, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    problem(p, key_line(p->c->path, sec, key), "[%s] %s: %s", sec, key, what);
}

static void config_check(struct parse_ctx *p)
{
    struct config *c = p->c;
    bool has_cert = c->tls_cert[0] != '\0', has_key = c->tls_key[0] != '\0';
    if (has_cert != has_key)
        rule_broken(p, "tls", has_cert ? "cert" : "key", "give both cert and key, or neither");
    for (int i = 0; i < c->nlisten; i++)
        if (c->listen[i].mode == LISTEN_TLS && !has_cert)
            rule_broken(p, "server", "listen", "'%s' needs [tls] cert and key", c->listen[i].text);
    /* The HTTP listeners, whose form depends on [tls]: ADDR:PORT, plain
     * HTTP unless it ends in /tls (HTTPS with the [tls] certificate). */
    struct {
        const char *key, *v;
        struct listen_addr *out;
    } http[] = {{"http", c->control_http, &c->http_listen},
                {"public_http", c->public_http, &c->public_listen}};
    for (size_t i = 0; i < ARRAY_LEN(http); i++) {
        if (http[i].v[0] == '\0')
            continue;
        if (!parse_listen_one(http[i].v, http[i].out) || strstr(http[i].v, "/starttls") != NULL) {
            rule_broken(p, "control", http[i].key,
                        "'%s' is not ADDR:PORT or [V6]:PORT with an optional /tls", http[i].v);
            continue;
        }
        if (http[i].out->mode == LISTEN_STARTTLS)
            http[i].out->mode = LISTEN_PLAIN;
        if (http[i].out->mode == LISTEN_TLS && !has_cert)
            rule_broken(p, "control", http[i].key, "'%s' needs [tls] cert and key", http[i].v);
    }
    if (c->control_http[0] != '\0' && c->http_token_file[0] == '\0')
        rule_broken(p, "control", "http", "needs http_token_file (the API's bearer tokens)");
}

struct config *config_load_report(const char *path, config_report_fn report, void *ctx)
{
    struct parse_ctx p = {.path = path, .report = report, .report_ctx = ctx, .next_line = 1};
    char abs[CONFIG_PATH_MAX];
    if (realpath(path, abs) == NULL) {
        problem(&p, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char dirbuf[CONFIG_PATH_MAX];
    util_strlcpy(dirbuf, abs, sizeof dirbuf);
    struct config *c = config_defaults(dirname(dirbuf));
    if (c == NULL) {
        problem(&p, 0, "out of memory");
        return NULL;
    }
    util_strlcpy(c->path, abs, sizeof c->path);
    p.c = c;
    if ((p.f = fopen(abs, "r")) == NULL) {
        problem(&p, 0, "cannot read: %s", strerror(errno));
        config_free(c);
        return NULL;
    }
    int line = ini_parse_stream(read_line, &p, on_key, &p);
    fclose(p.f);
    if (line != 0 && p.problems == 0)   /* inih saw what we did not */
        problem(&p, line, "syntax error (expected [section] or key = value)");
    config_derive(c);
    config_check(&p);
    if (p.problems > 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct first_problem {
    char *err;
    size_t len;
    bool seen;
};

static void keep_first(void *ctx, const char *msg)
{
    struct first_problem *f = ctx;
    if (!f->seen)
        snprintf(f->err, f->len, "%s", msg);
    f->seen = true;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    struct first_problem f = {err, errlen, false};
    return config_load_report(path, keep_first, &f);
}

const char *config_default_path(void)
{
    const char *env = getenv("PORTCULLIS_CONF");
    return env != NULL && env[0] != '\0' ? env : CONFIG_DEFAULT_PATH;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void config_unref(struct config *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        config_free(c);
}

int64_t config_ban_ms(const struct config *c, int k)
{
    if (c->permanent_after > 0 && k >= c->permanent_after)
        return -1;
    if (k < 1)
        k = 1;
    return c->ban_ms[k <= c->nbans ? k - 1 : c->nbans - 1];
}
