/* pool: a few threads for work that blocks (crypt, fsync, SQLite). A job
 * runs `work` on a pool thread, then `done` back on the event base that
 * submitted it, so a session is only ever touched by its own worker. */
#ifndef PORTCULLIS_POOL_H
#define PORTCULLIS_POOL_H

#include <event2/event.h>
#include <stdbool.h>

struct pool;
typedef void (*pool_fn)(void *arg);

struct pool *pool_new(int threads);
/* Finishes the queued jobs and stops the threads; jobs submitted after it
 * run in the caller (their done still goes through the mailbox). */
void pool_stop(struct pool *p);
void pool_free(struct pool *p);     /* pool_stop, then frees */

/* A per-event-base mailbox that `done` callbacks are delivered through. */
struct pool_mailbox;
struct pool_mailbox *pool_mailbox_new(struct event_base *base);
void pool_mailbox_free(struct pool_mailbox *m);
/* Has m dones waiting for its event base? */
bool pool_mailbox_pending(struct pool_mailbox *m);

/* Runs work(arg) on the pool, then done(arg) on m's event base. */
void pool_submit(struct pool *p, struct pool_mailbox *m, pool_fn work, pool_fn done, void *arg);
/* Runs fn(arg) on m's event base (from any thread). */
void pool_post(struct pool_mailbox *m, pool_fn fn, void *arg);

#endif
