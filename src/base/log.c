#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "base/util.h"

static _Atomic int cur_level = LOG_INFO;
static _Atomic int cur_format = LOG_LOGFMT;

void log_configure(enum log_level level, enum log_format format)
{
    atomic_store(&cur_level, (int)level);
    atomic_store(&cur_format, (int)format);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load(&cur_level);
}

struct line {
    char buf[4096];
    size_t n;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 2 - l->n;   /* keep room for "\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->n, s, n);
    l->n += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (; *v; v++)
        if ((unsigned char)*v <= ' ' || *v == '"' || *v == '=' || *v == '\\' || (unsigned char)*v >= 0x7f)
            return true;
    return false;
}

static bool is_number(const char *v)
{
    if (*v == '-')
        v++;
    if (*v == '\0' || (*v == '0' && v[1] != '\0'))
        return false;
    for (; *v; v++)
        if (*v < '0' || *v > '9')
            return false;
    return true;
}

/* Escapes for both formats: a log line must stay one line, and a JSON
 * line valid UTF-8, whatever a client or a PTR record sent (user names,
 * HELO names, host names). A byte that is not part of a well-formed UTF-8
 * character is written as \u00XX, its value. */
static void put_escaped(struct line *l, const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        char esc[8];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && (k = util_utf8_char(v)) == 0)) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_(l, esc);
        } else if (c >= 0x80) {
            put(l, v, k);
            v += k - 1;
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

void log_event(enum log_level level, const char *event, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (!log_enabled(level))
        return;
    bool json = atomic_load(&cur_format) == LOG_JSON;
    struct line l = {.n = 0};
    char ts[UTIL_RFC3339_LEN];
    util_rfc3339(util_now_ms(), ts);
    if (json) {
        puts_(&l, "{\"ts\":\"");
        puts_(&l, ts);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, names[level]);
        puts_(&l, "\",\"event\":\"");
        put_escaped(&l, event);
        puts_(&l, "\"");
    } else {
        puts_(&l, "ts=");
        puts_(&l, ts);
        puts_(&l, " level=");
        puts_(&l, names[level]);
        puts_(&l, " event=");
        puts_(&l, event);
    }
    va_list ap;
    va_start(ap, event);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        const char *v = va_arg(ap, const char *);
        if (v == NULL || *v == '\0')
            continue;
        if (json) {
            puts_(&l, ",\"");
            puts_(&l, k);
            puts_(&l, "\":");
            bool num = is_number(v);
            if (!num)
                puts_(&l, "\"");
            put_escaped(&l, v);
            if (!num)
                puts_(&l, "\"");
        } else {
            puts_(&l, " ");
            puts_(&l, k);
            puts_(&l, "=");
            if (needs_quotes(v)) {
                puts_(&l, "\"");
                put_escaped(&l, v);
                puts_(&l, "\"");
            } else {
                puts_(&l, v);
            }
        }
    }
    va_end(ap);
    if (json)
        l.buf[l.n++] = '}';
    l.buf[l.n++] = '\n';
    ssize_t w = write(STDERR_FILENO, l.buf, l.n);
    (void)w;
}
