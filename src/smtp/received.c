#include "smtp/received.h"

#include <stdio.h>
#include "base/util.h"

size_t received_header(const struct received_info *r, char *out, size_t outlen)
{
    char date[64];
    util_rfc5322_date(r->at, date, sizeof date);
    bool tls = r->tls != NULL && r->tls[0] != '\0';
    int n = snprintf(out, outlen,
                     "Received: from %s (%s%s[%s])\n\tby %s (Portcullis) with %s id %s"
                     "%s%s%s"      /* (using TLS...) */
                     "%s%s%s"      /* (authenticated user ...) */
                     ";\n\t%s\n",
                     r->helo, r->name != NULL ? r->name : "", r->name != NULL ? " " : "", r->ip,
                     r->hostname, r->proto, r->id,
                     tls ? "\n\t(using " : "", tls ? r->tls : "", tls ? ")" : "",
                     r->user ? "\n\t(authenticated user " : "", r->user ? r->user : "",
                     r->user ? ")" : "", date);
    return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}
