#include "smtp/rdns.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "base/util.h"

/*
 * Lifetime. evdns calls a request's callback exactly once, always from its
 * event loop and never from inside evdns_base_resolve_*: with the answer,
 * or with DNS_ERR_CANCEL after evdns_cancel_request (or with the answer
 * anyway if it was already queued when we cancelled). So while `req` is
 * set, evdns holds a pointer to us and we may not free ourselves; the
 * callback clears `req` first thing. Once the verdict is out or the owner
 * cancelled, `done` is NULL and the next callback just frees.
 */
struct rdns {
    struct evdns_base *dns;
    struct evdns_request *req;   /* in flight: evdns owes us a callback */
    struct event *deadline;
    struct addr client;
    rdns_done_fn done;           /* NULL: reported or cancelled */
    void *arg;
    char ptr[256];               /* what the PTR said; evdns names fit */
};

struct evdns_base *rdns_base_new(struct event_base *base, const struct config *c,
                                 char *err, size_t errlen)
{
    /* Without lookups in flight evdns keeps no event on the loop. */
    int flags = EVDNS_BASE_DISABLE_WHEN_INACTIVE;
    if (c->nresolver == 0)
        flags |= EVDNS_BASE_INITIALIZE_NAMESERVERS;
    struct evdns_base *dns = evdns_base_new(base, flags);
    if (dns == NULL) {
        snprintf(err, errlen, "[server] resolver: cannot set up the resolver%s",
                 c->nresolver == 0 ? " from /etc/resolv.conf" : "");
        return NULL;
    }
    for (int i = 0; i < c->nresolver; i++) {
        const struct resolver_addr *r = &c->resolver[i];
        struct sockaddr_storage ss;
        socklen_t len = addr_to_sockaddr(&r->addr, r->port, &ss);
        if (evdns_base_nameserver_sockaddr_add(dns, (struct sockaddr *)&ss, len, 0) != 0) {
            char ip[ADDR_STRLEN];
            addr_format(&r->addr, false, ip);
            snprintf(err, errlen, "[server] resolver: cannot use %s port %u", ip, r->port);
            evdns_base_free(dns, 0);
            return NULL;
        }
    }
    /* Ours, not resolv.conf's: they bound how long a lookup may take. */
    if (evdns_base_set_option(dns, "timeout:", RDNS_TIMEOUT_S) != 0 ||
        evdns_base_set_option(dns, "attempts:", RDNS_ATTEMPTS) != 0) {
        snprintf(err, errlen, "[server] resolver: cannot set the timeouts");
        evdns_base_free(dns, 0);
        return NULL;
    }
    return dns;
}

/* Reported or cancelled: free now, or when evdns hands the request back. */
static void release(struct rdns *r)
{
    r->done = NULL;
    if (r->deadline != NULL) {
        event_free(r->deadline);
        r->deadline = NULL;
    }
    if (r->req != NULL)
        evdns_cancel_request(r->dns, r->req);
    else
        free(r);
}

static void report(struct rdns *r, const char *name, const char *why)
{
    r->done(r->arg, name, why, r->ptr[0] != '\0' ? r->ptr : NULL);
    release(r);
}

void rdns_cancel(struct rdns *r)
{
    release(r);
}

/* Callback entry: false when nobody waits for this lookup any more. */
static bool still_wanted(struct rdns *r)
{
    r->req = NULL;
    if (r->done != NULL)
        return true;
    free(r);
    return false;
}

static const char *why_failed(int result)
{
    switch (result) {
    case DNS_ERR_NOTEXIST: return "nxdomain";
    case DNS_ERR_NODATA:   return "nodata";
    case DNS_ERR_TIMEOUT:  return "timeout";
    default:               return "error";
    }
}

static void on_forward(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    (void)ttl;
    struct rdns *r = arg;
    if (!still_wanted(r))
        return;
    if (result == DNS_ERR_TIMEOUT || (result != DNS_ERR_NONE && result != DNS_ERR_NOTEXIST &&
                                      result != DNS_ERR_NODATA)) {
        report(r, NULL, why_failed(result));
        return;
    }
    /* A name that does not resolve, or not to this client, could be
     * anyone's claim: Postfix's "hostname does not resolve to address". */
    size_t width = r->client.family == AF_INET ? 4 : 16;
    bool want = r->client.family == AF_INET ? type == DNS_IPv4_A : type == DNS_IPv6_AAAA;
    if (result == DNS_ERR_NONE && want && addresses != NULL)
        for (int i = 0; i < count; i++)
            if (memcmp((const char *)addresses + (size_t)i * width, r->client.b, width) == 0) {
                report(r, r->ptr, NULL);
                return;
            }
    report(r, NULL, "mismatch");
}

static void on_ptr(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    (void)ttl;
    struct rdns *r = arg;
    if (!still_wanted(r))
        return;
    if (result != DNS_ERR_NONE || type != DNS_PTR || count < 1 || addresses == NULL) {
        report(r, NULL, result != DNS_ERR_NONE ? why_failed(result) : "nodata");
        return;
    }
    const char *name = *(char **)addresses;
    size_t n = strlen(name);
    if (n >= sizeof r->ptr)
        n = sizeof r->ptr - 1;
    memcpy(r->ptr, name, n);
    r->ptr[n] = '\0';
    if (!util_dns_name_valid(name)) {
        report(r, NULL, "bad_name");
        return;
    }
    /* No search list: the name must resolve as it stands. */
    if (r->client.family == AF_INET)
        r->req = evdns_base_resolve_ipv4(r->dns, r->ptr, DNS_QUERY_NO_SEARCH, on_forward, r);
    else
        r->req = evdns_base_resolve_ipv6(r->dns, r->ptr, DNS_QUERY_NO_SEARCH, on_forward, r);
    if (r->req == NULL)
        report(r, NULL, "error");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    report(arg, NULL, "timeout");
}

struct rdns *rdns_start(struct evdns_base *dns, struct event_base *base,
                        const struct addr *client, rdns_done_fn done, void *arg)
{
    struct rdns *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->dns = dns;
    r->client = *client;
    r->done = done;
    r->arg = arg;
    if ((r->deadline = evtimer_new(base, on_deadline, r)) == NULL) {
        free(r);
        return NULL;
    }
    if (client->family == AF_INET) {
        struct in_addr in;
        memcpy(&in, client->b, 4);
        r->req = evdns_base_resolve_reverse(dns, &in, DNS_QUERY_NO_SEARCH, on_ptr, r);
    } else {
        struct in6_addr in6;
        memcpy(&in6, client->b, 16);
        r->req = evdns_base_resolve_reverse_ipv6(dns, &in6, DNS_QUERY_NO_SEARCH, on_ptr, r);
    }
    if (r->req == NULL) {
        event_free(r->deadline);
        free(r);
        return NULL;
    }
    struct timeval tv = {RDNS_DEADLINE_MS / 1000, (RDNS_DEADLINE_MS % 1000) * 1000};
    evtimer_add(r->deadline, &tv);
    return r;
}
