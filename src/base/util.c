#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/rand.h>

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A non-negative number followed by one unit from `units`; the number may
 * not overflow once multiplied. */
static int64_t parse_scaled(const char *s, const char *const *names,
                            const int64_t *mult, size_t n, int64_t bare)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    int64_t m = bare;
    if (*end != '\0') {
        m = -1;
        for (size_t i = 0; i < n; i++)
            if (strcmp(end, names[i]) == 0)
                m = mult[i];
        if (m < 0)
            return -1;
    }
    if (v > (unsigned long long)(INT64_MAX / m))
        return -1;
    return (int64_t)v * m;
}

int64_t util_parse_duration(const char *s)
{
    static const char *const names[] = {"ms", "s", "m", "h", "d"};
    static const int64_t mult[] = {1, 1000, 60000, 3600000, 86400000};
    return parse_scaled(s, names, mult, ARRAY_LEN(names), 1000);
}

int64_t util_parse_size(const char *s)
{
    static const char *const names[] = {"K", "M", "G", "k", "m", "g"};
    static const int64_t mult[] = {1024, 1048576, 1073741824, 1024, 1048576, 1073741824};
    return parse_scaled(s, names, mult, ARRAY_LEN(names), 1);
}

int util_parse_bool(const char *s)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

bool util_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void util_rfc3339(int64_t ms, char out[UTIL_RFC3339_LEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, UTIL_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void util_rfc5322_date(int64_t ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    /* C locale names, whatever the environment says. */
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

size_t util_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return n;
    /* s[max] is the first byte left out: if it continues a character,
     * that character started inside the kept part; drop it whole. */
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

size_t util_utf8_char(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;    /* the second byte's range */
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3, lo = p[0] == 0xE0 ? 0xA0 : 0x80, hi = p[0] == 0xED ? 0x9F : 0xBF;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4, lo = p[0] == 0xF0 ? 0x90 : 0x80, hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);
    if (size > 0) {
        size_t k = n < size - 1 ? n : util_utf8_cut(src, size - 1);
        memcpy(dst, src, k);
        dst[k] = '\0';
    }
    return n;
}

bool util_strcaseprefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool util_dns_name_valid(const char *name)
{
    size_t n = strlen(name), label = 0;
    bool digits_only = true;
    if (n == 0 || n > UTIL_DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '.' || ch == '\0') {
            if (label == 0 || label > 63 || name[i - 1] == '-')
                return false;
            if (ch == '\0')
                break;
            label = 0;
            digits_only = true;
            continue;
        }
        bool digit = ch >= '0' && ch <= '9';
        bool letter = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!digit && !letter && ch != '-')
            return false;
        if (ch == '-' && label == 0)
            return false;
        if (!digit)
            digits_only = false;
        label++;
    }
    return !digits_only;
}

void util_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1)
        abort();
}

void util_new_id(char out[UTIL_ID_LEN])
{
    uint64_t v;
    util_random(&v, sizeof v);
    snprintf(out, UTIL_ID_LEN, "%016llX", (unsigned long long)v);
}
