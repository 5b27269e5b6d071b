/* selfserve: the self-service page's answer (SPEC §10) for the caller's
 * own address: HTML, JSON or plain text, from the status document. It
 * tells the state, the reason in plain words, since and until, the last
 * block's window and what to do; never the counters, the limits, who
 * lifted it and why, or the node. Pure (jansson). */
#ifndef PORTCULLIS_SELFSERVE_H
#define PORTCULLIS_SELFSERVE_H

#include <jansson.h>
#include <stddef.h>

enum selfserve_format { SELFSERVE_HTML, SELFSERVE_JSON, SELFSERVE_TEXT };

/* "?format=json" and "?format=text"; anything else is HTML. */
enum selfserve_format selfserve_format_of(const char *query);

/* The reason of a block as a sentence for a hosting provider. */
const char *selfserve_reason_words(const char *reason);

/* The answer's body (malloc'd, *len bytes) and its Content-Type, from the
 * `status` document of the caller's address; NULL when out of memory. */
char *selfserve_render(const json_t *status, enum selfserve_format f, size_t *len,
                       const char **content_type);

#endif
