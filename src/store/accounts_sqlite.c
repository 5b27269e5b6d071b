/* Account locks and familiar logins in SQLite: the same file as the blocks,
 * tables of their own, a connection and a writer thread of their own (WAL
 * lets the two writers take turns; each waits up to 5 s for the other). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include "base/log.h"
#include "base/util.h"
#include "store/accounts_int.h"
#include "store/store.h"

enum acc_op { A_PUT, A_LIFT, A_EXPIRE, A_FAMILIAR, A_PRUNE, A_BARRIER };

struct acc_item {
    STAILQ_ENTRY(acc_item) link;
    enum acc_op op;
    struct account_lock l;     /* PUT; id, lifted_* (LIFT, EXPIRE); account (FAMILIAR) */
    struct addr prefix;        /* FAMILIAR */
    int64_t at, at2;           /* FAMILIAR: the login; PRUNE: locks, logins */
    bool *done;                /* BARRIER */
};

STAILQ_HEAD(acc_list, acc_item);

struct acc_sqlite {
    sqlite3 *wdb, *rdb;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    struct acc_list queue;
    bool stop, failing;
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS account_locks ("
    "  id TEXT PRIMARY KEY, account TEXT NOT NULL, reason TEXT NOT NULL,"
    "  state TEXT NOT NULL, started_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
    "  lifted_at INTEGER, lifted_by TEXT, lift_reason TEXT,"
    "  first_event_at INTEGER, last_event_at INTEGER, events INTEGER NOT NULL DEFAULT 0,"
    "  node TEXT, note TEXT);"
    "CREATE INDEX IF NOT EXISTS account_locks_account ON account_locks(account, started_at);"
    "CREATE INDEX IF NOT EXISTS account_locks_state ON account_locks(state);"
    "CREATE TABLE IF NOT EXISTS account_familiar ("
    "  account TEXT NOT NULL, family INTEGER NOT NULL, bits INTEGER NOT NULL,"
    "  addr BLOB NOT NULL, last_login INTEGER NOT NULL,"
    "  PRIMARY KEY (account, family, bits, addr));"
    "CREATE INDEX IF NOT EXISTS account_familiar_last ON account_familiar(last_login);";

#define LOCK_COLS "id, account, reason, state, started_at, expires_at, lifted_at, lifted_by," \
                  " lift_reason, first_event_at, last_event_at, events, node, note"

static void bind_time(sqlite3_stmt *st, int i, int64_t t)
{
    if (t == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, t);
}

static bool run(sqlite3_stmt *st)
{
    bool ok = st != NULL && sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    return sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK ? st : NULL;
}

static bool exec_item(sqlite3 *db, const struct acc_item *it)
{
    char id[17];
    store_id_format(it->l.id, id);
    sqlite3_stmt *st = NULL;
    switch (it->op) {
    case A_PUT: {
        const struct account_lock *l = &it->l;
        st = prep(db, "INSERT OR REPLACE INTO account_locks (" LOCK_COLS ") VALUES "
                      "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        if (st == NULL)
            return false;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, l->account, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, account_reason_name(l->reason), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, lock_state_name(l->state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, l->started_at);
        sqlite3_bind_int64(st, 6, l->expires_at);
        bind_time(st, 7, l->lifted_at);
        sqlite3_bind_text(st, 8, l->lifted_by, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 9, l->lift_reason, -1, SQLITE_TRANSIENT);
        bind_time(st, 10, l->first_event_at);
        bind_time(st, 11, l->last_event_at);
        sqlite3_bind_int64(st, 12, l->events);
        sqlite3_bind_text(st, 13, l->node, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 14, l->note, -1, SQLITE_TRANSIENT);
        return run(st);
    }
    case A_LIFT:
        st = prep(db, "UPDATE account_locks SET state='lifted', lifted_at=?2, lifted_by=?3,"
                      " lift_reason=?4 WHERE id=?1 AND state='locked'");
        if (st == NULL)
            return false;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, it->l.lifted_at);
        sqlite3_bind_text(st, 3, it->l.lifted_by, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, it->l.lift_reason, -1, SQLITE_TRANSIENT);
        return run(st);
    case A_EXPIRE:
        st = prep(db, "UPDATE account_locks SET state='expired' WHERE id=?1 AND state='locked'");
        if (st == NULL)
            return false;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        return run(st);
    case A_FAMILIAR:
        st = prep(db, "INSERT INTO account_familiar (account, family, bits, addr, last_login)"
                      " VALUES (?,?,?,?,?) ON CONFLICT (account, family, bits, addr)"
                      " DO UPDATE SET last_login = MAX(last_login, excluded.last_login)");
        if (st == NULL)
            return false;
        sqlite3_bind_text(st, 1, it->l.account, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 2, it->prefix.family);
        sqlite3_bind_int(st, 3, it->prefix.bits);
        sqlite3_bind_blob(st, 4, it->prefix.b, sizeof it->prefix.b, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, it->at);
        return run(st);
    case A_PRUNE:
        st = prep(db, "DELETE FROM account_locks WHERE state != 'locked' AND"
                      " COALESCE(lifted_at, expires_at) < ?");
        if (st == NULL)
            return false;
        sqlite3_bind_int64(st, 1, it->at);
        if (!run(st))
            return false;
        st = prep(db, "DELETE FROM account_familiar WHERE last_login < ?");
        if (st == NULL)
            return false;
        sqlite3_bind_int64(st, 1, it->at2);
        return run(st);
    case A_BARRIER:
        return true;
    }
    return false;
}

static void *writer_main(void *arg)
{
    struct acc_sqlite *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (STAILQ_EMPTY(&s->queue) && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        struct acc_list batch = STAILQ_HEAD_INITIALIZER(batch);
        STAILQ_CONCAT(&batch, &s->queue);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (STAILQ_EMPTY(&batch) && stop)
            return NULL;

        bool ok = sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
        struct acc_item *it;
        STAILQ_FOREACH(it, &batch, link) {
            if (ok)
                ok = exec_item(s->wdb, it);
        }
        ok = ok && sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
        if (!ok) {
            /* The locks hold from memory; only their record is lost. */
            if (!s->failing)
                log_event(LOG_ERROR, "store_error", "backend", "sqlite", "table", "accounts",
                          "error", sqlite3_errmsg(s->wdb), NULL);
            s->failing = true;
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
        } else if (s->failing) {
            s->failing = false;
            log_event(LOG_INFO, "store_ok", "backend", "sqlite", "table", "accounts", NULL);
        }

        pthread_mutex_lock(&s->mu);
        while ((it = STAILQ_FIRST(&batch)) != NULL) {
            STAILQ_REMOVE_HEAD(&batch, link);
            if (it->op == A_BARRIER)
                *it->done = true;
            free(it);
        }
        pthread_cond_broadcast(&s->done_cv);
    }
}

static struct acc_item *item_new(enum acc_op op)
{
    struct acc_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        abort();
    it->op = op;
    return it;
}

static void enqueue(struct acc_sqlite *s, struct acc_item *it)
{
    pthread_mutex_lock(&s->mu);
    STAILQ_INSERT_TAIL(&s->queue, it, link);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void barrier(struct acc_sqlite *s)
{
    bool done = false;
    struct acc_item *it = item_new(A_BARRIER);
    it->done = &done;
    enqueue(s, it);
    pthread_mutex_lock(&s->mu);
    while (!done)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void acc_sqlite_put(struct acc_sqlite *s, const struct account_lock *l)
{
    struct acc_item *it = item_new(A_PUT);
    it->l = *l;
    enqueue(s, it);
}

void acc_sqlite_lift(struct acc_sqlite *s, uint64_t id, int64_t at, const char *by, const char *why)
{
    struct acc_item *it = item_new(A_LIFT);
    it->l.id = id;
    it->l.lifted_at = at;
    util_strlcpy(it->l.lifted_by, by ? by : "", sizeof it->l.lifted_by);
    util_strlcpy(it->l.lift_reason, why ? why : "", sizeof it->l.lift_reason);
    enqueue(s, it);
}

void acc_sqlite_expire(struct acc_sqlite *s, uint64_t id, int64_t at)
{
    struct acc_item *it = item_new(A_EXPIRE);
    it->l.id = id;
    it->l.lifted_at = at;
    enqueue(s, it);
}

void acc_sqlite_familiar(struct acc_sqlite *s, const char *name, const struct addr *p, int64_t at)
{
    struct acc_item *it = item_new(A_FAMILIAR);
    util_strlcpy(it->l.account, name, sizeof it->l.account);
    it->prefix = *p;
    it->at = at;
    enqueue(s, it);
}

void acc_sqlite_prune(struct acc_sqlite *s, int64_t locks, int64_t logins)
{
    struct acc_item *it = item_new(A_PRUNE);
    it->at = locks;
    it->at2 = logins;
    enqueue(s, it);
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

static bool row_to_lock(sqlite3_stmt *st, struct account_lock *l)
{
    memset(l, 0, sizeof *l);
    char buf[64];
    col_text(st, 0, buf, sizeof buf);
    if (!store_id_parse(buf, &l->id))
        return false;
    col_text(st, 1, l->account, sizeof l->account);
    col_text(st, 2, buf, sizeof buf);
    if (!account_reason_parse(buf, &l->reason))
        return false;
    col_text(st, 3, buf, sizeof buf);
    if (!lock_state_parse(buf, &l->state))
        return false;
    l->started_at = sqlite3_column_int64(st, 4);
    l->expires_at = sqlite3_column_int64(st, 5);
    l->lifted_at = col_time(st, 6);
    col_text(st, 7, l->lifted_by, sizeof l->lifted_by);
    col_text(st, 8, l->lift_reason, sizeof l->lift_reason);
    l->first_event_at = col_time(st, 9);
    l->last_event_at = col_time(st, 10);
    l->events = (uint32_t)sqlite3_column_int64(st, 11);
    col_text(st, 12, l->node, sizeof l->node);
    col_text(st, 13, l->note, sizeof l->note);
    return true;
}

bool acc_sqlite_load(struct acc_sqlite *s, int64_t now, int64_t logins,
                     accounts_lock_cb lock_cb, acc_familiar_cb fam_cb, void *ctx)
{
    barrier(s);
    sqlite3_stmt *up = prep(s->wdb, "UPDATE account_locks SET state='expired'"
                                    " WHERE state='locked' AND expires_at <= ?");
    if (up != NULL) {
        sqlite3_bind_int64(up, 1, now);
        run(up);
    }
    sqlite3_stmt *st = prep(s->rdb, "SELECT " LOCK_COLS " FROM account_locks"
                                    " WHERE state='locked' ORDER BY started_at");
    if (st == NULL)
        return false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct account_lock l;
        if (row_to_lock(st, &l))
            lock_cb(ctx, &l);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return false;
    /* Oldest first: the table keeps the latest ACCOUNT_FAMILIAR_MAX. */
    st = prep(s->rdb, "SELECT account, family, bits, addr, last_login FROM account_familiar"
                      " WHERE last_login >= ? ORDER BY last_login");
    if (st == NULL)
        return false;
    sqlite3_bind_int64(st, 1, logins);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char name[ACCOUNT_NAME_MAX];
        struct addr p = {0};
        col_text(st, 0, name, sizeof name);
        p.family = (uint8_t)sqlite3_column_int(st, 1);
        p.bits = (uint8_t)sqlite3_column_int(st, 2);
        if (sqlite3_column_bytes(st, 3) != (int)sizeof p.b)
            continue;
        memcpy(p.b, sqlite3_column_blob(st, 3), sizeof p.b);
        fam_cb(ctx, name, &p, sqlite3_column_int64(st, 4));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

bool acc_sqlite_history(struct acc_sqlite *s, const char *name, int limit,
                        accounts_lock_cb cb, void *ctx)
{
    barrier(s);
    sqlite3_stmt *st = prep(s->rdb, "SELECT " LOCK_COLS " FROM account_locks WHERE account = ?"
                                    " ORDER BY started_at DESC LIMIT ?");
    if (st == NULL)
        return false;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct account_lock l;
        if (row_to_lock(st, &l))
            cb(ctx, &l);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

struct acc_sqlite *acc_sqlite_open(const char *path, char *err, size_t errlen)
{
    struct acc_sqlite *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    STAILQ_INIT(&s->queue);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    /* The block store's writer may hold the file: wait for it, up to 5 s. */
    if (sqlite3_open_v2(path, &s->wdb, flags, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->wdb, 5000) != SQLITE_OK ||
        sqlite3_exec(s->wdb, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->wdb, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, s->wdb ? sqlite3_errmsg(s->wdb) : "cannot open");
        sqlite3_close(s->wdb);
        sqlite3_close(s->rdb);
        free(s);
        return NULL;
    }
    sqlite3_busy_timeout(s->rdb, 5000);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        snprintf(err, errlen, "cannot start the account store thread");
        sqlite3_close(s->wdb);
        sqlite3_close(s->rdb);
        free(s);
        return NULL;
    }
    return s;
}

void acc_sqlite_close(struct acc_sqlite *s)
{
    if (s == NULL)
        return;
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
