/* addr: IPv4/IPv6 addresses and prefixes: parse, format, cut, match. Pure. */
#ifndef PORTCULLIS_ADDR_H
#define PORTCULLIS_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One address or prefix. IPv4 uses b[0..3]; IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are always stored as IPv4 so that dual-stack sockets and
 * PROXY headers count the same client the same way. Host bits beyond `bits`
 * are zero after addr_cut(); comparisons rely on that. */
struct addr {
    uint8_t family;   /* AF_INET or AF_INET6 */
    uint8_t bits;     /* prefix length: 32/128 for a single address */
    uint8_t b[16];
};

/* Longest text form: an IPv6 address, "/128" and NUL. */
#define ADDR_STRLEN 52

/* Parses "203.0.113.7", "2001:db8::1", "203.0.113.0/24", "[::1]". With
 * allow_prefix false, a "/len" is an error. Returns false on any bad input.
 * A prefix with host bits set is cut (203.0.113.7/24 -> 203.0.113.0/24). */
bool addr_parse(const char *s, bool allow_prefix, struct addr *out);
bool addr_from_sockaddr(const struct sockaddr *sa, struct addr *out);
/* The socket address of a (its address; the prefix length is ignored) and
 * port, in ss; returns its length. */
socklen_t addr_to_sockaddr(const struct addr *a, uint16_t port, struct sockaddr_storage *ss);
/* Zeroes the host bits past `bits` and sets a->bits; bits is clamped to the
 * family's width. */
void addr_cut(struct addr *a, int bits);
/* The counting key of a client: cut to v4bits or v6bits. */
struct addr addr_prefix_of(const struct addr *a, int v4bits, int v6bits);
/* "203.0.113.7" (with_len false), "203.0.113.0/24" (with_len true). */
void addr_format(const struct addr *a, bool with_len, char out[ADDR_STRLEN]);
bool addr_equal(const struct addr *x, const struct addr *y);
/* Is a inside net (net's bits)? Different families never match. */
bool addr_in(const struct addr *net, const struct addr *a);
uint64_t addr_hash(const struct addr *a);

/* A space- or comma-separated list of CIDR prefixes ("127.0.0.0/8 ::1/128"). */
struct cidr_list {
    size_t n;
    struct addr *v;
};
/* Returns false and names the bad word in err on a bad list; out is untouched then. */
bool cidr_list_parse(const char *s, struct cidr_list *out, char *err, size_t errlen);
bool cidr_list_match(const struct cidr_list *l, const struct addr *a);
void cidr_list_free(struct cidr_list *l);

#endif
