/* portcullisctl: the admin tool. Talks JSON to the daemon's control socket;
 * `passwd` edits the users file itself and asks the daemon to reload it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "base/addr.h"
#include "base/config.h"
#include "admin/ctlreq.h"
#include "auth/users.h"
#include "base/util.h"

#define REPLY_MAX (64 * 1024 * 1024)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static bool json_out;

/* --help: to stdout, exit 0; a usage error: to stderr, exit 2. */
static void usage_to(FILE *f)
{
    fputs("usage: portcullisctl [-c FILE] [--json] COMMAND\n"
          "  status IP                         clear, or blocked until when and why\n"
          "  history IP                        every block of the address, newest first\n"
          "  list [--permanent|--temporary]    blocks in force\n"
          "  block IP [--for DURATION | --permanent] [--reason TEXT]\n"
          "  unblock IP [--reason TEXT]\n"
          "  stats                             counters of the running daemon\n"
          "  account NAME                      an account's lock, failures and familiar addresses\n"
          "  unlock NAME [--reason TEXT]       lift an account's lock\n"
          "  passwd ADDRESS                    add or change a user; password on stdin\n"
          "  reload                            reload configuration and users (as SIGHUP)\n"
          "IP is an address (standing for its prefix) or a CIDR prefix.\n"
          "FILE defaults to $PORTCULLIS_CONF, else " CONFIG_DEFAULT_PATH ".\n", f);
}

static void usage(void)
{
    usage_to(stderr);
}

static int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("portcullisctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Sends one request and returns the "result" of the reply, or NULL with
 * the exit code in *code. A refusal by the daemon is printed after
 * `subject` (what the request was about, e.g. "10.9.9.9 (prefix
 * 10.9.9.9/32)") when there is one. */
static json_t *call(const struct config *c, json_t *req, const char *subject, int *code)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    util_strlcpy(sun.sun_path, c->control_socket, sizeof sun.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        *code = die(EXIT_FAIL, "daemon not running at %s (%s)", c->control_socket, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char *text = json_dumps(req, JSON_COMPACT);
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    free(text);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    while (ok) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0) {
            ok = false;
            break;
        }
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *b = cap <= REPLY_MAX ? realloc(buf, cap) : NULL;
            if (b == NULL) {
                ok = false;
                break;
            }
            buf = b;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0) {
            ok = false;
            break;
        }
        len += (size_t)r;
        if (memchr(buf + len - r, '\n', (size_t)r) != NULL)
            break;
    }
    close(fd);
    if (!ok) {
        free(buf);
        *code = die(EXIT_FAIL, "no reply from the daemon at %s", c->control_socket);
        return NULL;
    }
    json_error_t jerr;
    json_t *reply = json_loadb(buf, len, 0, &jerr);
    free(buf);
    if (!json_is_object(reply)) {
        json_decref(reply);
        *code = die(EXIT_FAIL, "the daemon's reply is not JSON");
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        const char *e = json_string_value(json_object_get(reply, "error"));
        if (subject != NULL)
            *code = die(EXIT_FAIL, "%s: %s", subject, e ? e : "failed");
        else
            *code = die(EXIT_FAIL, "%s", e ? e : "failed");
        json_decref(reply);
        return NULL;
    }
    json_t *result = json_incref(json_object_get(reply, "result"));
    json_decref(reply);
    *code = EXIT_OK;
    return result;
}

/* ---- text output ------------------------------------------------------- */

static const char *s(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "-";
}

/* One block, worded by what became of it: in force until when, or when it
 * ended and how (ran out, or lifted early by whom, and what had been
 * planned), so that a lifted block never reads as if it ran its course
 * and a lifted permanent one never reads as permanent. */
static void print_block(json_t *b, const char *indent)
{
    const char *state = s(b, "state"), *addr = s(b, "address"), *why = s(b, "reason");
    bool permanent = !json_is_string(json_object_get(b, "expires_at"));
    if (strcmp(state, "blocked") == 0) {
        printf("%s%s blocked (%s) since %s, until %s\n", indent, addr, why, s(b, "started_at"),
               s(b, "expires_at"));
    } else if (strcmp(state, "permanent") == 0) {
        printf("%s%s blocked permanently (%s) since %s\n", indent, addr, why, s(b, "started_at"));
    } else if (strcmp(state, "expired") == 0) {
        printf("%s%s block (%s) from %s, ended %s when it expired\n", indent, addr, why,
               s(b, "started_at"), s(b, "expires_at"));
    } else if (strcmp(state, "lifted") == 0) {
        printf("%s%s block (%s) from %s, ended %s when %s lifted it", indent, addr, why,
               s(b, "started_at"), s(b, "lifted_at"), s(b, "lifted_by"));
        if (json_is_string(json_object_get(b, "lift_reason")) && *s(b, "lift_reason"))
            printf(" (\"%s\")", s(b, "lift_reason"));
        if (permanent)
            printf("; it was permanent\n");
        else
            printf("; it was to run until %s\n", s(b, "expires_at"));
    } else {
        printf("%s%s %s (%s) since %s\n", indent, addr, state, why, s(b, "started_at"));
    }
    if (json_is_string(json_object_get(b, "first_event_at")))
        printf("%s  offending window %s .. %s, %lld events\n", indent, s(b, "first_event_at"),
               s(b, "last_event_at"), (long long)json_integer_value(json_object_get(b, "events")));
    if (json_is_string(json_object_get(b, "note")))
        printf("%s  note: %s\n", indent, s(b, "note"));
    printf("%s  node %s, id %s\n", indent, s(b, "node"), s(b, "id"));
}

static void print_status(json_t *r)
{
    const char *state = s(r, "state");
    json_t *b = json_object_get(r, "block");
    printf("%s (prefix %s): ", s(r, "address"), s(r, "prefix"));
    if (strcmp(state, "clear") == 0)
        printf("clear\n");
    else if (strcmp(state, "permanent") == 0)
        printf("blocked permanently\n");
    else
        printf("blocked until %s\n", s(b, "expires_at"));
    if (json_is_object(b)) {
        printf("block in force:\n");
        print_block(b, "  ");
    }
    json_t *last = json_object_get(r, "last_block");
    if (json_is_object(last)) {
        printf("last block:\n");
        print_block(last, "  ");
    } else {
        printf("last block: none on record\n");
    }
    json_t *c = json_object_get(r, "counters");
    printf("counters now: auth_failures=%lld unauth_attempts=%lld connections=%lld concurrent=%lld\n",
           (long long)json_integer_value(json_object_get(c, "auth_failures")),
           (long long)json_integer_value(json_object_get(c, "unauth_attempts")),
           (long long)json_integer_value(json_object_get(c, "connections")),
           (long long)json_integer_value(json_object_get(c, "concurrent")));
    printf("blocks within offense_memory: %lld\n", (long long)json_integer_value(json_object_get(r, "offenses")));
    json_int_t rep = json_integer_value(json_object_get(r, "repeats"));
    /* The support desk's question: a stale password, or a guesser? */
    if (rep > 0)
        printf("%lld of the failures were the same wrong password repeated \u2014 typically a "
               "stale password in a mail program or contact form (counted once)\n", (long long)rep);
    else
        printf("repeated failures: none\n");
}

static void print_lock(json_t *l, const char *indent)
{
    const char *state = s(l, "state");
    printf("%s%s %s (%s) since %s, %s %s\n", indent, s(l, "account"), state, s(l, "reason"),
           s(l, "started_at"), strcmp(state, "locked") == 0 ? "until" : "ran until",
           s(l, "expires_at"));
    if (json_is_string(json_object_get(l, "first_event_at")))
        printf("%s  failures from all addresses %s .. %s, %lld in all\n", indent,
               s(l, "first_event_at"), s(l, "last_event_at"),
               (long long)json_integer_value(json_object_get(l, "events")));
    if (json_is_string(json_object_get(l, "lifted_at")))
        printf("%s  lifted %s by %s: %s\n", indent, s(l, "lifted_at"), s(l, "lifted_by"),
               s(l, "lift_reason"));
    printf("%s  node %s, id %s\n", indent, s(l, "node"), s(l, "id"));
}

static void print_account(json_t *r)
{
    json_t *lock = json_object_get(r, "lock");
    if (json_is_object(lock))
        printf("%s: locked until %s for unfamiliar addresses (those that logged in within "
               "familiar_for still may)\n", s(r, "account"), s(lock, "expires_at"));
    else
        printf("%s: clear\n", s(r, "account"));
    printf("failed logins now (all addresses, within account_fail_window): %lld\n",
           (long long)json_integer_value(json_object_get(r, "failures")));
    printf("familiar addresses (prefixes that logged in within familiar_for): %lld\n",
           (long long)json_integer_value(json_object_get(r, "familiar")));
    json_t *locks = json_object_get(r, "locks"), *l;
    size_t i;
    printf("locks, newest first:\n");
    if (json_array_size(locks) == 0)
        printf("  none on record\n");
    json_array_foreach(locks, i, l) print_lock(l, "  ");
}

static void print_blocks(json_t *arr, const char *none)
{
    size_t i;
    json_t *b;
    if (json_array_size(arr) == 0)
        printf("%s\n", none);
    json_array_foreach(arr, i, b) print_block(b, "");
}

static void print_stats(json_t *r)
{
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v) printf("%-40s %lld\n", k, (long long)json_integer_value(v));
}

/* ---- passwd ------------------------------------------------------------ */

static int do_passwd(const struct config *c, const char *address)
{
    if (strchr(address, ':') || strchr(address, ' ') || strchr(address, '\n') || !*address)
        return die(EXIT_USAGE, "not a user address: %s", address);
    char pass[1024];
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "Password for %s: ", address);
    if (fgets(pass, sizeof pass, stdin) == NULL)
        return die(EXIT_USAGE, "no password on standard input");
    pass[strcspn(pass, "\r\n")] = '\0';
    if (pass[0] == '\0')
        return die(EXIT_USAGE, "empty password");
    char hash[512];
    if (!users_hash_new(pass, hash, sizeof hash))
        return die(EXIT_FAIL, "cannot hash the password");
    memset(pass, 0, sizeof pass);

    /* Rewrite the file: every line as it was but this user's, then the
     * new one; temp file, fsync, rename, so a reader never sees half. */
    char tmp[CONFIG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", c->users);
    FILE *in = fopen(c->users, "r");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (out == NULL) {
        if (in)
            fclose(in);
        return die(EXIT_FAIL, "cannot write %s: %s", tmp, strerror(errno));
    }
    bool replaced = false;
    char *line = NULL;
    size_t cap = 0;
    size_t alen = strlen(address);
    while (in != NULL && getline(&line, &cap, in) >= 0) {
        if (strncasecmp(line, address, alen) == 0 && line[alen] == ':') {
            if (!replaced)
                fprintf(out, "%s:%s\n", address, hash);
            replaced = true;
            continue;
        }
        fputs(line, out);
        if (line[0] != '\0' && line[strlen(line) - 1] != '\n')
            fputc('\n', out);
    }
    free(line);
    if (in)
        fclose(in);
    if (!replaced)
        fprintf(out, "%s:%s\n", address, hash);
    if (fflush(out) != 0 || fsync(fileno(out)) != 0 || fclose(out) != 0 || rename(tmp, c->users) != 0) {
        unlink(tmp);
        return die(EXIT_FAIL, "cannot write %s: %s", c->users, strerror(errno));
    }
    fprintf(stderr, "%s %s in %s\n", replaced ? "changed" : "added", address, c->users);
    /* A running daemon takes it at once; a stopped one at its start. */
    json_t *req = json_pack("{s:s}", "cmd", "reload");
    int code;
    struct sockaddr_un sun;
    if (strlen(c->control_socket) < sizeof sun.sun_path && access(c->control_socket, F_OK) == 0) {
        json_t *r = call(c, req, NULL, &code);
        json_decref(r);
        if (code != EXIT_OK) {
            json_decref(req);
            return code;
        }
    }
    json_decref(req);
    return EXIT_OK;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *conf = config_default_path();
    const char *dur = NULL, *reason = NULL;
    bool permanent = false, temporary = false;
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"for", required_argument, NULL, 'f'},
        {"permanent", no_argument, NULL, 'p'}, {"temporary", no_argument, NULL, 'T'},
        {"reason", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* GNU getopt moves options after the command to the front, so both
     * "--json status IP" and "block IP --for 1h" read as they should. */
    int opt;
    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'j': json_out = true; break;
        case 'f': dur = optarg; break;
        case 'p': permanent = true; break;
        case 'T': temporary = true; break;
        case 'r': reason = optarg; break;
        case 'h': usage_to(stdout); return EXIT_OK;
        default: usage(); return EXIT_USAGE;
        }
    }
    char **words = argv + optind;
    int nw = argc - optind;
    if (nw > 4) {
        usage();
        return EXIT_USAGE;
    }
    if (nw == 0) {
        usage();
        return EXIT_USAGE;
    }
    const char *cmd = words[0];
    char err[1024];
    struct config *c = config_load(conf, err, sizeof err);
    if (c == NULL)
        return die(EXIT_FAIL, "%s", err);

    json_t *req = json_object();
    json_object_set_new(req, "cmd", json_string(cmd));
    int code = EXIT_OK;
    if (strcmp(cmd, "passwd") == 0) {
        code = nw == 2 ? do_passwd(c, words[1]) : (usage(), EXIT_USAGE);
        json_decref(req);
        config_unref(c);
        return code;
    }
    /* The daemon's own command table and address check (ctlreq.c), so a
     * bad request is a usage error here rather than a reply from there. */
    enum ctlreq_cmd kind = CTLREQ_STATS;
    bool known = ctlreq_command(cmd, &kind);
    char subject[2 * ADDR_STRLEN + 32];
    subject[0] = '\0';
    if (known && ctlreq_takes_ip(kind)) {
        if (nw != 2) {
            usage();
            code = EXIT_USAGE;
            goto out;
        }
        struct addr a;
        char ip_err[CTLREQ_ERR_MAX];
        if (!ctlreq_ip(words[1], &a, ip_err, sizeof ip_err)) {
            code = die(EXIT_USAGE, "%s", ip_err);
            goto out;
        }
        json_object_set_new(req, "ip", json_string(words[1]));
        /* "not blocked" alone leaves the reader guessing which prefix
         * was looked at: name the address and the prefix it stands for. */
        struct ctlreq q = {.addr = a};
        util_strlcpy(q.ip, words[1], sizeof q.ip);
        struct addr p = ctlreq_prefix(&q, c->ipv4_prefix, c->ipv6_prefix);
        char pt[ADDR_STRLEN];
        addr_format(&p, true, pt);
        if (strcmp(pt, words[1]) == 0)
            snprintf(subject, sizeof subject, "%s", pt);
        else
            snprintf(subject, sizeof subject, "%s (prefix %s)", words[1], pt);
    } else if (known && ctlreq_takes_name(kind)) {
        char name_err[CTLREQ_ERR_MAX];
        if (nw != 2) {
            usage();
            code = EXIT_USAGE;
            goto out;
        }
        if (!ctlreq_name(words[1], name_err, sizeof name_err)) {
            code = die(EXIT_USAGE, "%s", name_err);
            goto out;
        }
        json_object_set_new(req, "name", json_string(words[1]));
    } else if (!known || nw != 1) {
        usage();
        code = EXIT_USAGE;
        goto out;
    }
    if (kind == CTLREQ_LIST) {
        if (permanent && temporary) {
            code = die(EXIT_USAGE, "--permanent or --temporary, not both");
            goto out;
        }
        enum ctlreq_filter f = permanent ? CTLREQ_PERMANENT : temporary ? CTLREQ_TEMPORARY : CTLREQ_ALL;
        json_object_set_new(req, "filter", json_string(ctlreq_filter_name(f)));
    }
    if (kind == CTLREQ_BLOCK) {
        int64_t ms = config_ban_ms(c, 1);
        if (permanent && dur) {
            code = die(EXIT_USAGE, "--for or --permanent, not both");
            goto out;
        }
        if (dur && (ms = util_parse_duration(dur)) <= 0) {
            code = die(EXIT_USAGE, "not a duration like 15m, 2h or 30d: %s", dur);
            goto out;
        }
        json_object_set_new(req, "duration_ms", json_integer(permanent ? -1 : ms));
    }
    if (reason)
        json_object_set_new(req, "reason", json_string(reason));
    const char *who = getenv("SUDO_USER") ? getenv("SUDO_USER") : getenv("USER");
    struct passwd *pw = who ? NULL : getpwuid(getuid());
    if (pw != NULL)
        who = pw->pw_name;
    char by[96];
    snprintf(by, sizeof by, "portcullisctl:%s", who ? who : "?");
    json_object_set_new(req, "by", json_string(by));

    json_t *r = call(c, req, subject[0] ? subject : NULL, &code);
    if (r != NULL) {
        if (json_out) {
            char *t = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", t);
            free(t);
        } else if (kind == CTLREQ_STATUS) {
            print_status(r);
        } else if (kind == CTLREQ_HISTORY) {
            printf("history of %s, newest first:\n", s(r, "prefix"));
            print_blocks(json_object_get(r, "blocks"), "  no blocks on record");
        } else if (kind == CTLREQ_LIST) {
            print_blocks(json_object_get(r, "blocks"), "no blocks in force");
        } else if (kind == CTLREQ_STATS) {
            print_stats(r);
        } else if (kind == CTLREQ_BLOCK) {
            printf("blocked: ");
            print_block(r, "");
        } else if (kind == CTLREQ_UNBLOCK) {
            printf("lifted: ");
            print_block(r, "");
        } else if (kind == CTLREQ_ACCOUNT) {
            print_account(r);
        } else if (kind == CTLREQ_UNLOCK) {
            printf("lifted: ");
            print_lock(r, "");
        } else {
            printf("done\n");
        }
        json_decref(r);
    }
out:
    json_decref(req);
    config_unref(c);
    return code;
}
