/* The embedded store: SQLite in WAL mode. One writer thread drains a queue
 * of writes in batches (one transaction per batch); reads use their own
 * connection on the caller's thread, after waiting for the writes queued
 * before them. WAL with synchronous=NORMAL survives a crash of the process
 * (kill -9) without losing a committed write. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/log.h"
#include "store/store.h"
#include "base/util.h"

enum op { OP_PUT = STORE_PUT, OP_LIFT = STORE_LIFT, OP_EXPIRE = STORE_EXPIRE,
          OP_PRUNE = STORE_PRUNE, OP_BARRIER };

struct item {
    STAILQ_ENTRY(item) link;
    enum op op;
    struct guard_block b;      /* OP_PUT; id/lifted_* for OP_LIFT/EXPIRE; at for PRUNE */
    bool *done;                /* OP_BARRIER */
};
STAILQ_HEAD(item_list, item);

struct sqlite_store {
    struct store base;
    sqlite3 *wdb, *rdb;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    struct item_list queue;
    bool stop;
    bool failing;              /* the last write failed: logged once */
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS blocks ("
    "  id TEXT PRIMARY KEY, prefix TEXT NOT NULL, family INTEGER NOT NULL,"
    "  bits INTEGER NOT NULL, addr BLOB NOT NULL, reason TEXT NOT NULL,"
    "  state TEXT NOT NULL, started_at INTEGER NOT NULL, expires_at INTEGER,"
    "  lifted_at INTEGER, lifted_by TEXT, lift_reason TEXT,"
    "  first_event_at INTEGER, last_event_at INTEGER, events INTEGER NOT NULL DEFAULT 0,"
    "  node TEXT, note TEXT);"
    "CREATE INDEX IF NOT EXISTS blocks_state ON blocks(state);"
    "CREATE INDEX IF NOT EXISTS blocks_started ON blocks(started_at);"
    "CREATE INDEX IF NOT EXISTS blocks_family_started ON blocks(family, started_at);";

#define COLS "id, prefix, family, bits, addr, reason, state, started_at, expires_at, lifted_at," \
             " lifted_by, lift_reason, first_event_at, last_event_at, events, node, note"

static void bind_time(sqlite3_stmt *st, int i, int64_t t)
{
    if (t == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, t);
}

static bool exec_put(sqlite3 *db, const struct guard_block *b)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO blocks (" COLS ") VALUES "
                           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
        return false;
    char id[17], prefix[ADDR_STRLEN];
    store_id_format(b->id, id);
    addr_format(&b->prefix, true, prefix);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, b->prefix.family);
    sqlite3_bind_int(st, 4, b->prefix.bits);
    sqlite3_bind_blob(st, 5, b->prefix.b, sizeof b->prefix.b, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, guard_reason_name(b->reason), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, block_state_name(b->state), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, b->started_at);
    bind_time(st, 9, b->expires_at);
    bind_time(st, 10, b->lifted_at);
    sqlite3_bind_text(st, 11, b->lifted_by, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 12, b->lift_reason, -1, SQLITE_TRANSIENT);
    bind_time(st, 13, b->first_event_at);
    bind_time(st, 14, b->last_event_at);
    sqlite3_bind_int64(st, 15, b->events);
    sqlite3_bind_text(st, 16, b->node, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 17, b->note, -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

/* LIFT (id ?1, at ?2, by ?3, why ?4), EXPIRE (id ?1), PRUNE (before ?2). */
static bool exec_mark(sqlite3 *db, const struct item *it)
{
    sqlite3_stmt *st;
    const char *sql = it->op == OP_LIFT
        ? "UPDATE blocks SET state='lifted', lifted_at=?2, lifted_by=?3, lift_reason=?4 "
          "WHERE id=?1 AND state IN ('blocked','permanent')"
        : it->op == OP_EXPIRE
        ? "UPDATE blocks SET state='expired' WHERE id=?1 AND state='blocked'"
        : "DELETE FROM blocks WHERE state IN ('lifted','expired') AND "
          "COALESCE(lifted_at, expires_at) < ?2";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    char id[17];
    store_id_format(it->b.id, id);
    if (it->op != OP_PRUNE)
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (it->op != OP_EXPIRE)
        sqlite3_bind_int64(st, 2, it->b.lifted_at);
    if (it->op == OP_LIFT) {
        sqlite3_bind_text(st, 3, it->b.lifted_by, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, it->b.lift_reason, -1, SQLITE_TRANSIENT);
    }
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

static void *writer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (STAILQ_EMPTY(&s->queue) && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        struct item_list batch = STAILQ_HEAD_INITIALIZER(batch);
        STAILQ_CONCAT(&batch, &s->queue);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (STAILQ_EMPTY(&batch) && stop)
            return NULL;

        bool ok = sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
        struct item *it;
        STAILQ_FOREACH(it, &batch, link) {
            if (!ok)
                break;
            if (it->op == OP_PUT)
                ok = exec_put(s->wdb, &it->b);
            else if (it->op != OP_BARRIER)
                ok = exec_mark(s->wdb, it);
        }
        ok = ok && sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        if (!ok) {
            /* The blocks stay in force from memory; only their record is
             * lost. Said once until writes succeed again. */
            if (!s->failing)
                log_event(LOG_ERROR, "store_error", "backend", "sqlite", "error",
                          sqlite3_errmsg(s->wdb), NULL);
            s->failing = true;
            atomic_store(&s->base.down, true);
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        } else if (s->failing) {
            s->failing = false;
            atomic_store(&s->base.down, false);
            log_event(LOG_INFO, "store_ok", "backend", "sqlite", NULL);
        }

        pthread_mutex_lock(&s->mu);
        while ((it = STAILQ_FIRST(&batch)) != NULL) {
            STAILQ_REMOVE_HEAD(&batch, link);
            if (it->op == OP_BARRIER)
                *it->done = true;
            free(it);
        }
        pthread_cond_broadcast(&s->done_cv);
    }
}

static void enqueue(struct sqlite_store *s, struct item *it)
{
    pthread_mutex_lock(&s->mu);
    STAILQ_INSERT_TAIL(&s->queue, it, link);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static struct item *item_new(enum op op)
{
    struct item *it = calloc(1, sizeof *it);
    if (it == NULL)
        abort();
    it->op = op;
    return it;
}

/* Waits until every write queued so far is committed (or failed). */
static void barrier(struct sqlite_store *s)
{
    bool done = false;
    struct item *it = item_new(OP_BARRIER);
    it->done = &done;
    enqueue(s, it);
    pthread_mutex_lock(&s->mu);
    while (!done)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static void sq_write(struct store *base, const struct store_write *w)
{
    struct item *it = item_new((enum op)w->op);
    it->b = w->b;
    enqueue((struct sqlite_store *)base, it);
}

static int64_t col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t len)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    util_strlcpy(out, t ? (const char *)t : "", len);
}

static bool row_to_block(sqlite3_stmt *st, struct guard_block *b)
{
    memset(b, 0, sizeof b[0]);
    char buf[64];
    col_text(st, 0, buf, sizeof buf);
    if (!store_id_parse(buf, &b->id))
        return false;
    b->prefix.family = (uint8_t)sqlite3_column_int(st, 2);
    b->prefix.bits = (uint8_t)sqlite3_column_int(st, 3);
    if (sqlite3_column_bytes(st, 4) != (int)sizeof b->prefix.b)
        return false;
    memcpy(b->prefix.b, sqlite3_column_blob(st, 4), sizeof b->prefix.b);
    col_text(st, 5, buf, sizeof buf);
    if (!guard_reason_parse(buf, &b->reason))
        return false;
    col_text(st, 6, buf, sizeof buf);
    if (!block_state_parse(buf, &b->state))
        return false;
    b->started_at = sqlite3_column_int64(st, 7);
    b->expires_at = col_time(st, 8);
    b->lifted_at = col_time(st, 9);
    col_text(st, 10, b->lifted_by, sizeof b->lifted_by);
    col_text(st, 11, b->lift_reason, sizeof b->lift_reason);
    b->first_event_at = col_time(st, 12);
    b->last_event_at = col_time(st, 13);
    b->events = (uint32_t)sqlite3_column_int64(st, 14);
    col_text(st, 15, b->node, sizeof b->node);
    col_text(st, 16, b->note, sizeof b->note);
    return true;
}

static bool sq_load(struct store *base, int64_t since, int64_t now, store_block_cb cb, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    barrier(s);
    /* Blocks that ran out while no daemon was running. */
    sqlite3_stmt *up;
    if (sqlite3_prepare_v2(s->wdb, "UPDATE blocks SET state='expired' WHERE state='blocked' "
                           "AND expires_at IS NOT NULL AND expires_at <= ?", -1, &up, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(up, 1, now);
        sqlite3_step(up);
        sqlite3_finalize(up);
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->rdb, "SELECT " COLS " FROM blocks WHERE state IN ('blocked','permanent')"
                           " OR started_at > ? ORDER BY started_at", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_int64(st, 1, since);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct guard_block b;
        if (row_to_block(st, &b))
            cb(ctx, &b);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

static bool sq_history(struct store *base, const struct addr *prefix, int limit,
                       store_block_cb cb, void *ctx)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    barrier(s);
    sqlite3_stmt *st;
    /* Covering and covered prefixes are found by scanning the family's
     * rows newest first; the history of one deployment is small, and this
     * is the support desk's query, not the hot path. */
    if (sqlite3_prepare_v2(s->rdb, "SELECT " COLS " FROM blocks WHERE family = ? "
                           "ORDER BY started_at DESC", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_int(st, 1, prefix->family);
    int rc, n = 0;
    while ((limit == 0 || n < limit) && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct guard_block b;
        if (!row_to_block(st, &b))
            continue;
        if (addr_in(&b.prefix, prefix) || addr_in(prefix, &b.prefix)) {
            cb(ctx, &b);
            n++;
        }
    }
    sqlite3_finalize(st);
    return true;
}

static bool sq_get(struct store *base, uint64_t id, struct guard_block *out)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    barrier(s);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->rdb, "SELECT " COLS " FROM blocks WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return false;
    char hex[17];
    store_id_format(id, hex);
    sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(st) == SQLITE_ROW && row_to_block(st, out);
    sqlite3_finalize(st);
    return ok;
}

static void sq_close(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    sqlite3_close(s->wdb);
    sqlite3_close(s->rdb);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    free(s);
}

static const struct store_ops sqlite_ops = {
    sq_write, sq_load, sq_history, sq_get, sq_close, NULL, NULL,
};

/* mkdir -p of the folder holding `path`. */
static int make_parent(const char *path)
{
    char buf[CONFIG_PATH_MAX];
    util_strlcpy(buf, path, sizeof buf);
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

static struct store *sqlite_open(const struct config *c, const struct store_hooks *h,
                                 char *err, size_t errlen)
{
    (void)h;    /* one node: nothing to tell it */
    if (make_parent(c->store_path) != 0) {
        snprintf(err, errlen, "%s: cannot create its folder: %m", c->store_path);
        return NULL;
    }
    struct sqlite_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    STAILQ_INIT(&s->queue);
    s->base.ops = &sqlite_ops;
    /* FULLMUTEX: the start-up load marks expired blocks on the caller's
     * thread; everything else on this connection is the writer's. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    if (sqlite3_open_v2(c->store_path, &s->wdb, flags, NULL) != SQLITE_OK ||
        sqlite3_exec(s->wdb, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->wdb, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_open_v2(c->store_path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", c->store_path, s->wdb ? sqlite3_errmsg(s->wdb) : "cannot open");
        sqlite3_close(s->wdb);
        sqlite3_close(s->rdb);
        free(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->wdb, 5000);
    sqlite3_busy_timeout(s->rdb, 5000);
    chmod(c->store_path, 0600);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the store thread");
        sqlite3_close(s->wdb);
        sqlite3_close(s->rdb);
        free(s);
        return NULL;
    }
    return &s->base;
}

const struct store_backend_row store_sqlite = {STORE_SQLITE, sqlite_open};
