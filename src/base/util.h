/* util: small helpers shared by the daemon, portcullisctl and the tests. */
#ifndef PORTCULLIS_UTIL_H
#define PORTCULLIS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME): block times are
 * shown to people and shared between nodes, so they are wall-clock. */
int64_t util_now_ms(void);
/* Monotonic milliseconds, for timeouts and rates inside one process. */
int64_t util_mono_ms(void);

/* "45s", "10m", "2h", "30d" -> milliseconds. Returns -1 on a bad value.
 * A bare number is seconds. */
int64_t util_parse_duration(const char *s);
/* "512K", "25M", "1G", "1000" -> bytes. Returns -1 on a bad value. */
int64_t util_parse_size(const char *s);
/* "yes"/"no" (also true/false, on/off, 1/0). Returns -1 on a bad value. */
int util_parse_bool(const char *s);
/* A whole number in [min, max]; returns false on anything else. */
bool util_parse_long(const char *s, long min, long max, long *out);

/* RFC 3339 UTC with milliseconds: 2026-11-22T23:59:59.123Z (24 bytes + NUL). */
#define UTIL_RFC3339_LEN 32
void util_rfc3339(int64_t ms, char out[UTIL_RFC3339_LEN]);
/* RFC 5322 date for headers: "Mon, 23 Nov 2026 01:02:03 +0000". */
void util_rfc5322_date(int64_t ms, char *out, size_t outlen);

/* Copies at most size-1 bytes and always terminates, never cutting a UTF-8
 * character in two (the JSON and logs it ends up in must stay valid).
 * Returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);
/* The longest length <= max of s that ends on a UTF-8 character boundary. */
size_t util_utf8_cut(const char *s, size_t max);
/* The length (2-4) of the well-formed UTF-8 character of more than one
 * byte at s (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF);
 * 0 if there is none. */
size_t util_utf8_char(const char *s);
bool util_strcaseprefix(const char *s, const char *prefix);

/* A host name fit for a Received: header and a log: letter-digit-hyphen
 * labels of 1 to 63 characters (no hyphen at either end) joined by single
 * dots, 253 characters at most, no trailing dot, and a last label that is
 * not all digits (a PTR record saying "127.0.0.1" names no host). A PTR
 * record can hold any bytes; only what passes this is ever copied out. */
#define UTIL_DNS_NAME_MAX 253
bool util_dns_name_valid(const char *name);

/* Random bytes from OpenSSL; aborts if the RNG fails (nothing sane to do). */
void util_random(void *buf, size_t len);
/* A queue id / block id: 16 uppercase hex digits, unique enough across nodes. */
#define UTIL_ID_LEN 17
void util_new_id(char out[UTIL_ID_LEN]);

#endif
