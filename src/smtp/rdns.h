/* rdns: the client's name for logs and Received:, looked up on the worker's
 * own event loop with evdns and confirmed forward, as Postfix does (FCrDNS):
 * PTR of the address, then A (IPv4) or AAAA (IPv6) of that name; the name
 * counts only if one of those addresses is the client's. Nothing here
 * blocks, and every lookup ends within RDNS_DEADLINE_MS. */
#ifndef PORTCULLIS_RDNS_H
#define PORTCULLIS_RDNS_H

#include <stddef.h>
#include <event2/dns.h>
#include <event2/event.h>
#include "base/addr.h"
#include "base/config.h"

/* Per query: evdns waits RDNS_TIMEOUT_S for an answer and sends it
 * RDNS_ATTEMPTS times; the whole lookup (PTR, then A/AAAA) gives up after
 * RDNS_DEADLINE_MS whatever the resolver does. */
#define RDNS_TIMEOUT_S "2"
#define RDNS_ATTEMPTS "2"
#define RDNS_DEADLINE_MS 5000

/* One worker's resolver: c's `resolver` list, or /etc/resolv.conf when it
 * is empty. NULL with a message in err on failure. */
struct evdns_base *rdns_base_new(struct event_base *base, const struct config *c,
                                 char *err, size_t errlen);

struct rdns;

/* The verdict, called once on the loop of the base the lookup started on.
 * name: the confirmed name, or NULL ("unknown"); why: NULL when confirmed,
 * else "timeout", "nxdomain", "nodata", "bad_name", "mismatch" or "error";
 * ptr: what the PTR record said (NULL if nothing), for logs only: it may
 * be any bytes. The lookup is gone once this returns. */
typedef void (*rdns_done_fn)(void *arg, const char *name, const char *why, const char *ptr);

/* Starts the lookup of `client`; NULL if it could not start. */
struct rdns *rdns_start(struct evdns_base *dns, struct event_base *base,
                        const struct addr *client, rdns_done_fn done, void *arg);
/* The owner is going away: `done` is never called; the memory goes when
 * evdns gives the request back. Only before `done` has run. */
void rdns_cancel(struct rdns *r);

#endif
