/* Unit tests for src/config.h: the INI file, every key of SPEC §2, errors
 * with FILE:LINE and the key, relative paths, listen modes, the ban ladder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/config.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static char tmpdir[PATH_MAX];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/portcullis-unit-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static void rm_rf(const char *dir)
{
    char cmd[PATH_MAX + 32];
    if (strncmp(dir, "/tmp/portcullis-unit-config-", 28) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int teardown_dir(void **state)
{
    (void)state;
    rm_rf(tmpdir);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* Writes `text` to <tmpdir>/<name> and returns the full path in out. */
static void conf_path(const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", tmpdir, name);
}

static struct config *load_text(const char *text, char *path, size_t pathlen,
                                char *err, size_t errlen)
{
    conf_path("p.conf", path, pathlen);
    write_file(path, text);
    err[0] = 0;
    return config_load(path, err, errlen);
}

static void join(char *out, size_t outlen, const char *a, const char *b)
{
    snprintf(out, outlen, "%s/%s", a, b);
}

/* ---- defaults ---------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    struct config *c = config_defaults("/srv/pc");
    assert_non_null(c);
    char want[CONFIG_PATH_MAX];

    assert_true(c->hostname[0] != 0);          /* the host name */
    assert_int_equal(c->nlisten, 1);
    assert_int_equal(c->listen[0].addr.family, AF_INET);
    assert_int_equal(c->listen[0].addr.b[0], 127);
    assert_int_equal(c->listen[0].addr.b[3], 1);
    assert_int_equal(c->listen[0].port, 2525);
    assert_int_equal(c->listen[0].mode, LISTEN_STARTTLS);
    assert_true(c->workers >= 1);
    assert_int_equal(c->max_clients, 50000);
    assert_int_equal(c->max_message_size, 25 * 1024 * 1024);
    /* SPEC §2's account rules, and their table's bound */
    assert_true(c->repeat_counts_once);
    assert_int_equal(c->account_fail_limit, 30);
    assert_int_equal(c->account_fail_window_ms, 3600000);
    assert_int_equal(c->account_lock_ms, 3600000);
    assert_int_equal(c->familiar_for_ms, 30LL * 86400000);
    assert_int_equal(c->max_accounts, 100000);
    assert_int_equal(c->max_recipients, 100);
    assert_int_equal(c->timeout_command_ms, 5 * MIN);
    assert_int_equal(c->timeout_data_ms, 10 * MIN);
    assert_false(c->proxy_protocol);
    assert_int_equal(c->proxy_from.n, 1);
    assert_int_equal(c->proxy_from.v[0].bits, 32);
    assert_string_equal(c->user, "");
    assert_false(c->reverse_dns);
    assert_int_equal(c->nresolver, 0);         /* /etc/resolv.conf */

    assert_string_equal(c->tls_cert, "");
    assert_string_equal(c->tls_key, "");
    assert_true(c->require_tls_for_auth);
    assert_int_equal(c->plain_auth_from.n, 2);

    join(want, sizeof want, "/srv/pc", "users");
    assert_string_equal(c->users, want);
    assert_true(c->mech_plain);
    assert_true(c->mech_login);
    assert_int_equal(c->failure_delay_ms, 1 * SEC);

    assert_int_equal(c->auth_fail_limit, 5);
    assert_int_equal(c->auth_fail_window_ms, 10 * MIN);
    assert_int_equal(c->unauth_limit, 10);
    assert_int_equal(c->unauth_window_ms, 10 * MIN);
    assert_int_equal(c->conn_rate_limit, 200);
    assert_int_equal(c->conn_rate_window_ms, 2 * MIN);
    assert_int_equal(c->concurrency_limit, 20);
    assert_int_equal(c->nbans, 3);
    assert_int_equal(c->ban_ms[0], 15 * MIN);
    assert_int_equal(c->ban_ms[1], 1 * HOUR);
    assert_int_equal(c->ban_ms[2], 24 * HOUR);
    assert_int_equal(c->permanent_after, 4);
    assert_int_equal(c->offense_memory_ms, 30 * DAY);
    assert_int_equal(c->ipv4_prefix, 32);
    assert_int_equal(c->ipv6_prefix, 64);
    assert_int_equal(c->allow.n, 0);
    assert_string_equal(c->reject_text, "ESMTP not accepting connections");
    assert_int_equal(c->history_retention_ms, 365 * DAY);

    assert_int_equal(c->store, STORE_SQLITE);
    join(want, sizeof want, "/srv/pc", "var/portcullis.db");
    assert_string_equal(c->store_path, want);
    assert_string_equal(c->redis, "127.0.0.1:6379");
    assert_string_equal(c->redis_prefix, "portcullis:");

    assert_int_equal(c->delivery, DELIVER_MAILDIR);
    join(want, sizeof want, "/srv/pc", "var/mail");
    assert_string_equal(c->maildir, want);
    assert_string_equal(c->relay, "smtp://127.0.0.1:10025");

    join(want, sizeof want, "/srv/pc", "var/portcullis.sock");
    assert_string_equal(c->control_socket, want);
    assert_string_equal(c->control_http, "");

    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->log_format, LOG_LOGFMT);
    config_unref(c);
}

static void test_ref_unref(void **state)
{
    (void)state;
    struct config *c = config_defaults("/tmp");
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 2);
    config_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    config_unref(c);
}

/* ---- a good file with every key ----------------------------------------- */

static const char GOOD[] =
    "; every key of SPEC section 2, none at its default\n"
    "[server]\n"
    "hostname = mx.unit.test\n"
    "listen = 127.0.0.1:2525 [::1]:2465/tls 0.0.0.0:2587/plain 127.0.0.2:2526/starttls\n"
    "workers = 3\n"
    "max_clients = 1234\n"
    "max_message_size = 512K\n"
    "max_recipients = 7\n"
    "timeout_command = 45s\n"
    "timeout_data = 2h\n"
    "proxy_protocol = yes\n"
    "proxy_from = 10.0.0.0/8 192.168.1.1/32 2001:db8::/32\n"
    "user = nobody\n"
    "reverse_dns = yes\n"
    "resolver = 127.0.0.1:5353\n"
    "\n"
    "[tls]\n"
    "cert = tls/cert.pem\n"
    "key = /dev/null\n"
    "require_tls_for_auth = no\n"
    "plain_auth_from = 192.0.2.0/24\n"
    "\n"
    "[auth]\n"
    "users = etc/users.txt\n"
    "mechanisms = PLAIN\n"
    "failure_delay = 200ms\n"
    "\n"
    "[guard]\n"
    "auth_fail_limit = 3\n"
    "auth_fail_window = 1m\n"
    "unauth_limit = 4\n"
    "unauth_window = 30s\n"
    "conn_rate_limit = 50\n"
    "conn_rate_window = 10s\n"
    "concurrency_limit = 6\n"
    "ban_durations = 2s 4s 1h 30d\n"
    "permanent_after = 6\n"
    "offense_memory = 2d\n"
    "ipv4_prefix = 24\n"
    "ipv6_prefix = 48\n"
    "allow = 198.51.100.0/24, 2001:db8:ffff::/48\n"
    "reject_text = go away\n"
    "history_retention = 7d\n"
    "\n"
    "[store]\n"
    "backend = redis\n"
    "path = data/guard.db\n"
    "redis = unix:/run/redis.sock\n"
    "redis_prefix = pc1:\n"
    "\n"
    "[delivery]\n"
    "mode = maildir\n"
    "maildir = /var/mail/abs\n"
    "relay = lmtp://127.0.0.1:24\n"
    "\n"
    "[control]\n"
    "socket = run/ctl.sock\n"
    "http = 127.0.0.1:8025\n"
    "http_token_file = token\n"
    "\n"
    "[log]\n"
    "level = debug\n"
    "format = json\n";

static void make_aux_files(void)
{
    char p[PATH_MAX];
    const char *dirs[] = { "tls", "etc", "data", "run", "var" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        join(p, sizeof p, tmpdir, dirs[i]);
        mkdir(p, 0700);
    }
    join(p, sizeof p, tmpdir, "tls/cert.pem");
    write_file(p, "not really a certificate\n");
    join(p, sizeof p, tmpdir, "etc/users.txt");
    write_file(p, "a@example.test:$6$x$y\n");
    join(p, sizeof p, tmpdir, "users");
    write_file(p, "a@example.test:$6$x$y\n");
    join(p, sizeof p, tmpdir, "token");
    write_file(p, "sekrit\n");
}

static void test_good_file(void **state)
{
    (void)state;
    make_aux_files();
    char path[PATH_MAX], err[512], want[PATH_MAX];
    struct config *c = load_text(GOOD, path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);

    assert_string_equal(c->path, path);
    assert_string_equal(c->dir, tmpdir);

    assert_string_equal(c->hostname, "mx.unit.test");
    assert_int_equal(c->nlisten, 4);
    assert_int_equal(c->listen[0].addr.family, AF_INET);
    assert_int_equal(c->listen[0].port, 2525);
    assert_int_equal(c->listen[0].mode, LISTEN_STARTTLS);
    assert_int_equal(c->listen[1].addr.family, AF_INET6);
    assert_int_equal(c->listen[1].addr.b[15], 1);
    assert_int_equal(c->listen[1].port, 2465);
    assert_int_equal(c->listen[1].mode, LISTEN_TLS);
    assert_int_equal(c->listen[2].addr.family, AF_INET);
    assert_int_equal(c->listen[2].addr.b[0], 0);
    assert_int_equal(c->listen[2].port, 2587);
    assert_int_equal(c->listen[2].mode, LISTEN_PLAIN);
    assert_int_equal(c->listen[3].addr.b[3], 2);
    assert_int_equal(c->listen[3].port, 2526);
    assert_int_equal(c->listen[3].mode, LISTEN_STARTTLS);
    for (int i = 0; i < 4; i++)
        assert_true(c->listen[i].text[0] != 0);
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->max_clients, 1234);
    assert_int_equal(c->max_message_size, 512 * 1024);
    assert_int_equal(c->max_recipients, 7);
    assert_int_equal(c->timeout_command_ms, 45 * SEC);
    assert_int_equal(c->timeout_data_ms, 2 * HOUR);
    assert_true(c->proxy_protocol);
    assert_int_equal(c->proxy_from.n, 3);
    assert_int_equal(c->proxy_from.v[0].bits, 8);
    assert_int_equal(c->proxy_from.v[2].family, AF_INET6);
    assert_string_equal(c->user, "nobody");
    assert_true(c->reverse_dns);
    assert_int_equal(c->nresolver, 1);
    assert_int_equal(c->resolver[0].port, 5353);

    join(want, sizeof want, tmpdir, "tls/cert.pem");
    assert_string_equal(c->tls_cert, want);
    assert_string_equal(c->tls_key, "/dev/null");
    assert_false(c->require_tls_for_auth);
    assert_int_equal(c->plain_auth_from.n, 1);
    assert_int_equal(c->plain_auth_from.v[0].bits, 24);

    join(want, sizeof want, tmpdir, "etc/users.txt");
    assert_string_equal(c->users, want);
    assert_true(c->mech_plain);
    assert_false(c->mech_login);
    assert_int_equal(c->failure_delay_ms, 200);

    assert_int_equal(c->auth_fail_limit, 3);
    assert_int_equal(c->auth_fail_window_ms, 1 * MIN);
    assert_int_equal(c->unauth_limit, 4);
    assert_int_equal(c->unauth_window_ms, 30 * SEC);
    assert_int_equal(c->conn_rate_limit, 50);
    assert_int_equal(c->conn_rate_window_ms, 10 * SEC);
    assert_int_equal(c->concurrency_limit, 6);
    assert_int_equal(c->nbans, 4);
    assert_int_equal(c->ban_ms[0], 2 * SEC);
    assert_int_equal(c->ban_ms[1], 4 * SEC);
    assert_int_equal(c->ban_ms[2], 1 * HOUR);
    assert_int_equal(c->ban_ms[3], 30 * DAY);
    assert_int_equal(c->permanent_after, 6);
    assert_int_equal(c->offense_memory_ms, 2 * DAY);
    assert_int_equal(c->ipv4_prefix, 24);
    assert_int_equal(c->ipv6_prefix, 48);
    assert_int_equal(c->allow.n, 2);
    assert_int_equal(c->allow.v[0].family, AF_INET);
    assert_int_equal(c->allow.v[0].bits, 24);
    assert_int_equal(c->allow.v[1].family, AF_INET6);
    assert_int_equal(c->allow.v[1].bits, 48);
    assert_string_equal(c->reject_text, "go away");
    assert_int_equal(c->history_retention_ms, 7 * DAY);

    assert_int_equal(c->store, STORE_REDIS);
    join(want, sizeof want, tmpdir, "data/guard.db");
    assert_string_equal(c->store_path, want);
    assert_string_equal(c->redis, "unix:/run/redis.sock");
    assert_string_equal(c->redis_prefix, "pc1:");

    assert_int_equal(c->delivery, DELIVER_MAILDIR);
    assert_string_equal(c->maildir, "/var/mail/abs");
    assert_string_equal(c->relay, "lmtp://127.0.0.1:24");

    join(want, sizeof want, tmpdir, "run/ctl.sock");
    assert_string_equal(c->control_socket, want);
    assert_string_equal(c->control_http, "127.0.0.1:8025");
    join(want, sizeof want, tmpdir, "token");
    assert_string_equal(c->http_token_file, want);

    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_int_equal(c->log_format, LOG_JSON);
    config_unref(c);
}

/* An empty file is all defaults, with paths relative to the file's folder. */
static void test_empty_file_is_defaults(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512], want[PATH_MAX];
    struct config *c = load_text("; nothing\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->auth_fail_limit, 5);
    assert_int_equal(c->max_message_size, 25 * 1024 * 1024);
    assert_int_equal(c->nlisten, 1);
    assert_int_equal(c->listen[0].port, 2525);
    join(want, sizeof want, tmpdir, "users");
    assert_string_equal(c->users, want);
    join(want, sizeof want, tmpdir, "var/portcullis.db");
    assert_string_equal(c->store_path, want);
    join(want, sizeof want, tmpdir, "var/mail");
    assert_string_equal(c->maildir, want);
    join(want, sizeof want, tmpdir, "var/portcullis.sock");
    assert_string_equal(c->control_socket, want);
    config_unref(c);
}

/* Loaded by a relative name from another working directory, the paths are
 * still those of the file's folder, and absolute. */
static void test_relative_config_name(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512], want[PATH_MAX], cwd[PATH_MAX];
    conf_path("rel.conf", path, sizeof path);
    write_file(path, "[auth]\nusers = u.txt\n[store]\npath = db/x.db\n");
    char sub[PATH_MAX];
    join(sub, sizeof sub, tmpdir, "sub");
    mkdir(sub, 0700);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(sub), 0);
    struct config *c = config_load("../rel.conf", err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (c == NULL)
        fail_msg("config_load(../rel.conf) failed: %s", err);
    assert_true(c->users[0] == '/');
    assert_true(c->store_path[0] == '/');
    /* <tmpdir>/sub/../u.txt or <tmpdir>/u.txt: either names the same file */
    char real_dir[PATH_MAX], real_cdir[PATH_MAX];
    assert_non_null(realpath(tmpdir, real_dir));
    assert_non_null(realpath(c->dir, real_cdir));
    assert_string_equal(real_cdir, real_dir);
    const char *base = strrchr(c->users, '/');
    assert_string_equal(base, "/u.txt");
    char udir[PATH_MAX];
    snprintf(udir, sizeof udir, "%.*s", (int)(base - c->users), c->users);
    char real_udir[PATH_MAX];
    assert_non_null(realpath(udir, real_udir));
    assert_string_equal(real_udir, real_dir);
    join(want, sizeof want, c->dir, "db/x.db");
    assert_string_equal(c->store_path, want);
    config_unref(c);
}

static void test_listen_forms(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text(
        "[server]\n"
        "listen = [2001:db8::25]:587/starttls [::]:465/tls 192.0.2.1:25/plain\n"
        "[tls]\n"
        "cert = /dev/null\n"
        "key = /dev/null\n",
        path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nlisten, 3);
    assert_int_equal(c->listen[0].addr.family, AF_INET6);
    assert_int_equal(c->listen[0].addr.b[0], 0x20);
    assert_int_equal(c->listen[0].addr.b[15], 0x25);
    assert_int_equal(c->listen[0].port, 587);
    assert_int_equal(c->listen[0].mode, LISTEN_STARTTLS);
    assert_int_equal(c->listen[1].addr.family, AF_INET6);
    assert_int_equal(c->listen[1].port, 465);
    assert_int_equal(c->listen[1].mode, LISTEN_TLS);
    assert_int_equal(c->listen[2].addr.family, AF_INET);
    assert_int_equal(c->listen[2].port, 25);
    assert_int_equal(c->listen[2].mode, LISTEN_PLAIN);
    config_unref(c);
}

static void test_resolver_forms(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text(
        "[server]\n"
        "resolver = 192.0.2.53 127.0.0.1:5353 [2001:db8::53]:5300 ::1 [::2]\n",
        path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nresolver, 5);
    assert_int_equal(c->resolver[0].addr.family, AF_INET);
    assert_int_equal(c->resolver[0].addr.b[0], 192);
    assert_int_equal(c->resolver[0].addr.b[3], 53);
    assert_int_equal(c->resolver[0].port, 53);
    assert_int_equal(c->resolver[1].addr.family, AF_INET);
    assert_int_equal(c->resolver[1].addr.b[0], 127);
    assert_int_equal(c->resolver[1].port, 5353);
    assert_int_equal(c->resolver[2].addr.family, AF_INET6);
    assert_int_equal(c->resolver[2].addr.b[0], 0x20);
    assert_int_equal(c->resolver[2].addr.b[15], 0x53);
    assert_int_equal(c->resolver[2].port, 5300);
    assert_int_equal(c->resolver[3].addr.family, AF_INET6);
    assert_int_equal(c->resolver[3].addr.b[15], 1);
    assert_int_equal(c->resolver[3].port, 53);
    assert_int_equal(c->resolver[4].addr.family, AF_INET6);
    assert_int_equal(c->resolver[4].addr.b[15], 2);
    assert_int_equal(c->resolver[4].port, 53);
    config_unref(c);

    /* Empty: back to the system's resolvers. */
    c = load_text("[server]\nresolver = 127.0.0.1\nresolver =\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nresolver, 0);
    config_unref(c);

    /* Eight at most. */
    c = load_text("[server]\nresolver = 10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 "
                  "10.0.0.7 10.0.0.8\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nresolver, CONFIG_MAX_RESOLVERS);
    config_unref(c);
}

static void test_workers_auto(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text("[server]\nworkers = auto\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_true(c->workers >= 1);
    config_unref(c);
}

static void test_mechanisms(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text("[auth]\nmechanisms = LOGIN\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_false(c->mech_plain);
    assert_true(c->mech_login);
    config_unref(c);
    c = load_text("[auth]\nmechanisms = login plain\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load (lower case mechanisms) failed: %s", err);
    assert_true(c->mech_plain);
    assert_true(c->mech_login);
    config_unref(c);
}

static void test_permanent_after_zero(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text("[guard]\npermanent_after = 0\nallow =\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->permanent_after, 0);
    assert_int_equal(c->allow.n, 0);
    config_unref(c);
}

/* ---- errors ------------------------------------------------------------- */

struct bad_case {
    const char *section;   /* written on line 3 */
    const char *line;      /* written on line 4 */
    const char *key;       /* must be named in the error */
};

static const struct bad_case BAD[] = {
    { "server", "timeout_command = 5x", "timeout_command" },
    { "server", "timeout_data = -10m", "timeout_data" },
    { "auth", "failure_delay = soon", "failure_delay" },
    { "server", "max_message_size = 25Q", "max_message_size" },
    { "server", "max_message_size = -1M", "max_message_size" },
    { "server", "proxy_protocol = maybe", "proxy_protocol" },
    { "server", "reverse_dns = yess", "reverse_dns" },
    { "server", "resolver = dns.example.test", "resolver" },
    { "server", "resolver = 127.0.0.1:0", "resolver" },
    { "server", "resolver = 127.0.0.1:65536", "resolver" },
    { "server", "resolver = 127.0.0.1:", "resolver" },
    { "server", "resolver = 127.0.0.1:53x", "resolver" },
    { "server", "resolver = 256.1.1.1", "resolver" },
    { "server", "resolver = 10.0.0.0/8", "resolver" },
    { "server", "resolver = [::1", "resolver" },
    { "server", "resolver = [::1]53", "resolver" },
    { "server", "resolver = []:53", "resolver" },
    { "server", "resolver = 127.0.0.1 bogus", "resolver" },
    { "server", "resolver = 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9", "resolver" },
    { "tls", "require_tls_for_auth = 2", "require_tls_for_auth" },
    { "server", "frobnicate = 1", "frobnicate" },
    { "guard", "auth_fail_limt = 5", "auth_fail_limt" },
    { "server", "listen = 127.0.0.1", "listen" },
    { "server", "listen = 127.0.0.1:99999", "listen" },
    { "server", "listen = 127.0.0.1:0x19", "listen" },
    { "server", "listen = 127.0.0.1:25/bogus", "listen" },
    { "server", "listen = 256.0.0.1:25", "listen" },
    { "server", "listen = [::1]", "listen" },
    { "server", "listen = ::1:25", "listen" },       /* a port after IPv6 needs [] */
    { "server", "listen = [::1]25", "listen" },
    { "server", "listen = :25", "listen" },
    { "server", "listen = 127.0.0.1:25 [::1:26", "listen" },
    { "guard", "allow = 10.0.0.0/33", "allow" },
    { "guard", "allow = 10.0.0.0/8 bogus", "allow" },
    { "tls", "plain_auth_from = garbage", "plain_auth_from" },
    { "server", "proxy_from = 1.2.3/8", "proxy_from" },
    { "guard", "ipv4_prefix = 33", "ipv4_prefix" },
    { "guard", "ipv6_prefix = 129", "ipv6_prefix" },
    { "guard", "ipv4_prefix = -1", "ipv4_prefix" },
    { "guard", "auth_fail_limit = -1", "auth_fail_limit" },
    { "guard", "unauth_limit = -3", "unauth_limit" },
    { "guard", "conn_rate_limit = -1", "conn_rate_limit" },
    { "guard", "concurrency_limit = -5", "concurrency_limit" },
    { "guard", "permanent_after = -1", "permanent_after" },
    { "guard", "auth_fail_limit = five", "auth_fail_limit" },
    { "server", "max_recipients = -5", "max_recipients" },
    { "server", "max_clients = -1", "max_clients" },
    { "server", "workers = many", "workers" },
    { "server", "workers = -2", "workers" },
    { "guard", "ban_durations = 15m bogus 24h", "ban_durations" },
    { "guard", "ban_durations = ", "ban_durations" },
    { "guard", "offense_memory = 30x", "offense_memory" },
    { "guard", "history_retention = forever", "history_retention" },
    { "auth", "mechanisms = PLAIN CRAM-MD5", "mechanisms" },
    { "auth", "mechanisms = ", "mechanisms" },
    { "auth", "mechanisms = PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN PLAIN", "mechanisms" },
    { "guard", "ban_durations = 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 11m 12m 13m 14m 15m 16m 17m", "ban_durations" },
    { "store", "backend = mysql", "backend" },
    { "delivery", "mode = pigeon", "mode" },
    { "log", "level = loud", "level" },
    { "log", "format = xml", "format" },
};

/* Loads a file whose line 4 is `line` in [section]; NULL if it was refused
 * with FILE:4 and the key in the message, else what went wrong in msg. */
static const char *bad_problem(const char *section, const char *line, const char *key,
                               char *msg, size_t msglen)
{
    char text[1024], path[PATH_MAX], err[1024], where[PATH_MAX + 16];
    snprintf(text, sizeof text, "; bad value on line 4\n\n[%s]\n%s\n", section, line);
    struct config *c = load_text(text, path, sizeof path, err, sizeof err);
    snprintf(where, sizeof where, "%s:4", path);
    if (c != NULL) {
        config_unref(c);
        snprintf(msg, msglen, "[%s] \"%s\" was accepted", section, line);
    } else if (strstr(err, where) == NULL || strstr(err, key) == NULL) {
        snprintf(msg, msglen, "[%s] \"%s\": error \"%s\" lacks \"%s\" or the key \"%s\"",
                 section, line, err, where, key);
    } else {
        return NULL;
    }
    return msg;
}

static void check_bad(const char *section, const char *line, const char *key)
{
    char msg[2048];
    if (bad_problem(section, line, key, msg, sizeof msg) != NULL)
        fail_msg("%s", msg);
}

static void test_bad_values(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        char msg[2048];
        if (bad_problem(BAD[i].section, BAD[i].line, BAD[i].key, msg, sizeof msg) != NULL) {
            print_error("%s\n", msg);
            failures++;
        }
    }
    if (failures)
        fail_msg("%d bad value(s) not refused with FILE:LINE and key", failures);
}

/* The same checks, one test each for the cases the brief names, so that a
 * failure report points at the exact case. */
static void test_bad_duration(void **state) { (void)state; check_bad("server", "timeout_command = 5x", "timeout_command"); }
static void test_bad_size(void **state) { (void)state; check_bad("server", "max_message_size = 25Q", "max_message_size"); }
static void test_bad_bool(void **state) { (void)state; check_bad("server", "proxy_protocol = maybe", "proxy_protocol"); }
static void test_unknown_key(void **state) { (void)state; check_bad("server", "frobnicate = 1", "frobnicate"); }
static void test_bad_listen(void **state) { (void)state; check_bad("server", "listen = 127.0.0.1:25/bogus", "listen"); }
static void test_bad_cidr(void **state) { (void)state; check_bad("guard", "allow = 10.0.0.0/33", "allow"); }
static void test_ipv4_prefix_33(void **state) { (void)state; check_bad("guard", "ipv4_prefix = 33", "ipv4_prefix"); }
static void test_negative_limit(void **state) { (void)state; check_bad("guard", "auth_fail_limit = -1", "auth_fail_limit"); }
/* The account table's bound: a handful is no table, and no bound is none. */
static void test_max_accounts_bounds(void **state)
{
    (void)state;
    check_bad("guard", "max_accounts = 99", "max_accounts");
    check_bad("guard", "max_accounts = 100000001", "max_accounts");
    check_bad("guard", "repeat_counts_once = sometimes", "repeat_counts_once");
    check_bad("guard", "account_fail_window = forever", "account_fail_window");
}

static void test_unknown_section(void **state)
{
    (void)state;
    char path[PATH_MAX], err[1024], w3[PATH_MAX + 16], w4[PATH_MAX + 16];
    struct config *c = load_text("; unknown section\n\n[nosuch]\nfoo = 1\n", path, sizeof path, err, sizeof err);
    if (c != NULL) {
        config_unref(c);
        fail_msg("[nosuch] was accepted");
    }
    snprintf(w3, sizeof w3, "%s:3", path);
    snprintf(w4, sizeof w4, "%s:4", path);
    if (strstr(err, w3) == NULL && strstr(err, w4) == NULL)
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err, w3, w4);
    if (strstr(err, "nosuch") == NULL)
        fail_msg("error \"%s\" does not name the section", err);
}

/* Relay mode (SPEC §7) loads with every relay key; a bad relay address
 * names its line. */
static void test_delivery_relay(void **state)
{
    (void)state;
    char path[PATH_MAX], err[1024], where[PATH_MAX + 16];
    struct config *c = load_text("; relay\n\n[delivery]\nmode = relay\nrelay = lmtp://127.0.0.1:24\n"
                                 "relay_tls = verify\nrelay_forward = no\nrelay_timeout = 5s\n",
                                 path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("mode = relay refused: %s", err);
    assert_int_equal(c->delivery, DELIVER_RELAY);
    assert_string_equal(c->relay, "lmtp://127.0.0.1:24");
    assert_int_equal(c->relay_tls, RELAY_TLS_VERIFY);
    assert_false(c->relay_forward);
    assert_int_equal(c->relay_timeout_ms, 5000);
    config_unref(c);

    c = load_text("; relay\n\n[delivery]\nmode = relay\nrelay = smtp://mx.example:25\n",
                  path, sizeof path, err, sizeof err);
    assert_null(c);
    snprintf(where, sizeof where, "%s:5", path);
    if (strstr(err, where) == NULL || strstr(err, "relay") == NULL)
        fail_msg("a bad relay refused with \"%s\": want \"%s\" and \"relay\"", err, where);
}

/* A rule over more than one key still points at a line: the listener that
 * needs a certificate. */
static void test_tls_listener_without_cert(void **state)
{
    (void)state;
    char path[PATH_MAX], err[1024], where[PATH_MAX + 16];
    struct config *c = load_text("; no cert\n\n[server]\nlisten = 127.0.0.1:2465/tls\n",
                                 path, sizeof path, err, sizeof err);
    if (c != NULL) {
        config_unref(c);
        fail_msg("a /tls listener without [tls] cert and key was accepted");
    }
    snprintf(where, sizeof where, "%s:4", path);
    if (strstr(err, where) == NULL || strstr(err, "listen") == NULL)
        fail_msg("error \"%s\": want \"%s\" and \"listen\"", err, where);
}

/* [control] http and public_http: ADDR:PORT with an optional /tls (which
 * needs the certificate); http needs its token file. Each error names its
 * line and key. */
static void test_http_listeners(void **state)
{
    (void)state;
    char path[PATH_MAX], err[1024], where[PATH_MAX + 16];
    struct config *c = load_text("[control]\nhttp = 127.0.0.1:8025\nhttp_token_file = t\n"
                                 "public_http = [::1]:8080/plain\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("refused: %s", err);
    assert_int_equal(c->http_listen.port, 8025);
    assert_int_equal(c->http_listen.mode, LISTEN_PLAIN);
    assert_int_equal(c->public_listen.port, 8080);
    assert_int_equal(c->public_listen.addr.family, AF_INET6);
    assert_int_equal(c->public_listen.mode, LISTEN_PLAIN);
    config_unref(c);

    static const struct {
        const char *text, *key, *words;
        int line;
    } bad[] = {
        {"[control]\nhttp = 127.0.0.1:8025\n", "http", "http_token_file", 2},
        {"[control]\nhttp_token_file = t\nhttp = localhost:80\n", "http", "ADDR:PORT", 3},
        {"[control]\nhttp_token_file = t\nhttp = 127.0.0.1:8025/starttls\n", "http", "/tls", 3},
        {"[control]\nhttp_token_file = t\nhttp = 127.0.0.1:8025/tls\n", "http", "needs [tls] cert", 3},
        {"[control]\n\npublic_http = 0.0.0.0\n", "public_http", "ADDR:PORT", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = load_text(bad[i].text, path, sizeof path, err, sizeof err);
        if (c != NULL) {
            config_unref(c);
            fail_msg("accepted: %s", bad[i].text);
        }
        snprintf(where, sizeof where, "%s:%d", path, bad[i].line);
        if (strstr(err, where) == NULL || strstr(err, bad[i].key) == NULL ||
            strstr(err, bad[i].words) == NULL)
            fail_msg("error \"%s\": want \"%s\", \"%s\" and \"%s\"", err, where, bad[i].key,
                     bad[i].words);
    }
}

static void test_cert_without_key(void **state)
{
    (void)state;
    char path[PATH_MAX], err[1024];
    struct config *c = load_text("; cert only\n\n[tls]\ncert = /dev/null\n",
                                 path, sizeof path, err, sizeof err);
    if (c != NULL) {
        config_unref(c);
        fail_msg("[tls] cert without key was accepted");
    }
    if (strstr(err, path) == NULL || strstr(err, "key") == NULL)
        fail_msg("error \"%s\": want the file and \"key\"", err);
}

static void test_error_format(void **state)
{
    (void)state;
    /* "FILE:LINE: [section] key: what is wrong" */
    char path[PATH_MAX], err[1024], want[PATH_MAX + 64];
    struct config *c = load_text("[server]\nhostname = a\n\n[guard]\nipv4_prefix = 33\n",
                                 path, sizeof path, err, sizeof err);
    assert_null(c);
    snprintf(want, sizeof want, "%s:5: [guard] ipv4_prefix: ", path);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, want);
    assert_true(strlen(err) > strlen(want));
}

/* ---- every problem at once (portcullisd -t) ----------------------------- */

struct problems {
    int n;
    char line[8][512];
};

static void collect(void *ctx, const char *problem)
{
    struct problems *p = ctx;
    if (p->n < 8)
        snprintf(p->line[p->n], sizeof p->line[0], "%s", problem);
    p->n++;
}

static void test_report_every_problem(void **state)
{
    (void)state;
    char path[PATH_MAX], want[PATH_MAX + 128];
    conf_path("many.conf", path, sizeof path);
    write_file(path, "[server]\n"                 /* 1 */
                     "max_recipients = lots\n"    /* 2 */
                     "hostname = fine.example\n"  /* 3 */
                     "not a key value line\n"     /* 4 */
                     "[frob]\n"                   /* 5 */
                     "a = 1\n"                    /* 6: once for the section */
                     "b = 2\n"                    /* 7 */
                     "[log]\n"                    /* 8 */
                     "; a comment\n"              /* 9 */
                     "level = loud\n"             /* 10 */
                     "[guard]\n"                  /* 11 */
                     "no_such_key = 3\n"          /* 12 */
                     "[tls]\n"                    /* 13 */
                     "cert = /x.pem\n");          /* 14: needs key too */
    struct problems p = {0};
    assert_null(config_load_report(path, collect, &p));
    assert_int_equal(p.n, 6);
    const char *expect[] = {
        "%s:2: [server] max_recipients: 'lots' is not a whole number",
        "%s:4: syntax error",
        "%s:6: [frob] a: unknown section [frob]",
        "%s:10: [log] level: 'loud' is not debug",
        "%s:12: [guard] no_such_key: unknown key",
        "%s:14: [tls] cert: give both cert and key, or neither",
    };
    for (int i = 0; i < 6; i++) {
        snprintf(want, sizeof want, expect[i], path);
        if (strncmp(p.line[i], want, strlen(want)) != 0)
            fail_msg("problem %d: \"%s\", expected it to start \"%s\"", i, p.line[i], want);
    }
    /* config_load says the first of them, as before */
    char err[512];
    assert_null(config_load(path, err, sizeof err));
    assert_string_equal(err, p.line[0]);
}

static void test_report_nothing_when_good(void **state)
{
    (void)state;
    char path[PATH_MAX];
    conf_path("good.conf", path, sizeof path);
    write_file(path, "[server]\nmax_recipients = 7\n  ; indented comment\n\n[log]\nlevel = warn\n");
    struct problems p = {0};
    struct config *c = config_load_report(path, collect, &p);
    assert_non_null(c);
    assert_int_equal(p.n, 0);
    assert_int_equal(c->max_recipients, 7);
    config_unref(c);
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[1024] = "";
    char path[PATH_MAX];
    conf_path("does-not-exist.conf", path, sizeof path);
    struct config *c = config_load(path, err, sizeof err);
    assert_null(c);
    if (strstr(err, path) == NULL)
        fail_msg("error \"%s\" does not name the file", err);
}

static void test_small_err_buffer(void **state)
{
    (void)state;
    char path[PATH_MAX];
    char err[16];
    memset(err, 'Z', sizeof err);
    conf_path("p.conf", path, sizeof path);
    write_file(path, "[guard]\nipv4_prefix = 33\n");
    assert_null(config_load(path, err, sizeof err));
    assert_true(memchr(err, 0, sizeof err) != NULL);   /* terminated, no overflow */
}

/* ---- the ban ladder ----------------------------------------------------- */

static void test_ban_ladder_defaults(void **state)
{
    (void)state;
    struct config *c = config_defaults("/tmp");
    assert_int_equal(config_ban_ms(c, 1), 15 * MIN);
    assert_int_equal(config_ban_ms(c, 2), 1 * HOUR);
    assert_int_equal(config_ban_ms(c, 3), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 4), -1);          /* permanent_after = 4 */
    assert_int_equal(config_ban_ms(c, 5), -1);
    assert_int_equal(config_ban_ms(c, 100), -1);
    config_unref(c);
}

static void test_ban_ladder_last_repeats(void **state)
{
    (void)state;
    struct config *c = config_defaults("/tmp");
    c->permanent_after = 0;                              /* never permanent */
    assert_int_equal(config_ban_ms(c, 1), 15 * MIN);
    assert_int_equal(config_ban_ms(c, 3), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 4), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 10), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 1000), 24 * HOUR);

    c->permanent_after = 6;
    assert_int_equal(config_ban_ms(c, 4), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 5), 24 * HOUR);
    assert_int_equal(config_ban_ms(c, 6), -1);
    assert_int_equal(config_ban_ms(c, 7), -1);

    c->permanent_after = 1;                              /* the first is permanent */
    assert_int_equal(config_ban_ms(c, 1), -1);
    config_unref(c);
}

static void test_ban_ladder_from_file(void **state)
{
    (void)state;
    char path[PATH_MAX], err[512];
    struct config *c = load_text("[guard]\nban_durations = 2s 4s\npermanent_after = 3\n",
                                 path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nbans, 2);
    assert_int_equal(config_ban_ms(c, 1), 2 * SEC);
    assert_int_equal(config_ban_ms(c, 2), 4 * SEC);
    assert_int_equal(config_ban_ms(c, 3), -1);
    assert_int_equal(config_ban_ms(c, 4), -1);
    config_unref(c);

    c = load_text("[guard]\nban_durations = 5m\npermanent_after = 0\n", path, sizeof path, err, sizeof err);
    if (c == NULL)
        fail_msg("config_load failed: %s", err);
    assert_int_equal(c->nbans, 1);
    for (int k = 1; k <= 20; k++)
        assert_int_equal(config_ban_ms(c, k), 5 * MIN);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_empty_file_is_defaults),
        cmocka_unit_test(test_relative_config_name),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_resolver_forms),
        cmocka_unit_test(test_workers_auto),
        cmocka_unit_test(test_mechanisms),
        cmocka_unit_test(test_permanent_after_zero),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_http_listeners),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_size),
        cmocka_unit_test(test_bad_bool),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_section),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_bad_cidr),
        cmocka_unit_test(test_ipv4_prefix_33),
        cmocka_unit_test(test_negative_limit),
        cmocka_unit_test(test_max_accounts_bounds),
        cmocka_unit_test(test_delivery_relay),
        cmocka_unit_test(test_tls_listener_without_cert),
        cmocka_unit_test(test_cert_without_key),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_report_every_problem),
        cmocka_unit_test(test_report_nothing_when_good),
        cmocka_unit_test(test_small_err_buffer),
        cmocka_unit_test(test_ban_ladder_defaults),
        cmocka_unit_test(test_ban_ladder_last_repeats),
        cmocka_unit_test(test_ban_ladder_from_file),
    };
    return cmocka_run_group_tests_name("config", tests, setup_dir, teardown_dir);
}
