/* deliver: puts an accepted message where it belongs, durably, before the
 * 250. Maildir now; relay to the provider's MTA later. Runs on the pool. */
#ifndef PORTCULLIS_DELIVER_H
#define PORTCULLIS_DELIVER_H

#include <event2/buffer.h>
#include <stdbool.h>

enum deliver_result {
    DELIVER_OK,
    DELIVER_TEMPFAIL,   /* 451 4.3.0 */
    DELIVER_NOSPACE,    /* 452 4.3.1 */
};

/* Writes `head` then `body` (LF line ends) to tmp/, fsyncs, renames into
 * new/ and fsyncs new/. Blocking: call on the pool. On failure leaves no
 * file in new/ and puts the reason in err. */
enum deliver_result maildir_deliver(const char *maildir, const char *hostname,
                                    const char *id, const char *head, size_t headlen,
                                    struct evbuffer *body, char *err, size_t errlen);
/* Creates <maildir>/{tmp,new,cur} and removes what a crash left in tmp/. */
bool maildir_prepare(const char *maildir, char *err, size_t errlen);

#endif
