#include "admin/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/log.h"
#include "base/util.h"

/* ---- JSON of the records --------------------------------------------- */

static json_t *time_or_null(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char t[UTIL_RFC3339_LEN];
    util_rfc3339(ms, t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    if (s[0] == '\0')
        return json_null();
    json_t *v = json_string(s);
    /* Not UTF-8 (a record written by something else): say so rather than
     * drop the key. */
    return v != NULL ? v : json_string("(not valid UTF-8)");
}

static json_t *block_json(const struct guard_block *b, int64_t now)
{
    char prefix[ADDR_STRLEN], id[17];
    addr_format(&b->prefix, true, prefix);
    store_id_format(b->id, id);
    enum block_state st = b->state;
    /* Ran out but the expiry is not recorded yet: say what is true. */
    if (st == BLOCK_ACTIVE && b->expires_at != 0 && b->expires_at <= now)
        st = BLOCK_EXPIRED;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "address", json_string(prefix));
    json_object_set_new(o, "state", json_string(block_state_name(st)));
    json_object_set_new(o, "reason", json_string(guard_reason_name(b->reason)));
    json_object_set_new(o, "started_at", time_or_null(b->started_at));
    json_object_set_new(o, "expires_at", time_or_null(b->expires_at));
    json_object_set_new(o, "lifted_at", time_or_null(b->lifted_at));
    json_object_set_new(o, "lifted_by", str_or_null(b->lifted_by));
    json_object_set_new(o, "lift_reason", str_or_null(b->lift_reason));
    json_object_set_new(o, "first_event_at", time_or_null(b->first_event_at));
    json_object_set_new(o, "last_event_at", time_or_null(b->last_event_at));
    json_object_set_new(o, "events", json_integer(b->events));
    json_object_set_new(o, "node", str_or_null(b->node));
    json_object_set_new(o, "note", str_or_null(b->note));
    return o;
}

/* A record the store should have; if it lacks it (a write failed, Redis
 * is away), what the guard holds in memory still answers. */
static json_t *block_by_id(struct server *s, uint64_t id, const struct addr *prefix,
                           bool permanent, int64_t now)
{
    struct guard_block b;
    if (s->store->ops->get(s->store, id, &b))
        return block_json(&b, now);
    struct guard_status gs;
    struct config *c = server_config(s);
    guard_status(s->guard, c, prefix, now, &gs);
    config_unref(c);
    memset(&b, 0, sizeof b);
    b.id = id;
    b.prefix = *prefix;
    b.state = permanent ? BLOCK_PERMANENT : BLOCK_ACTIVE;
    if (gs.blocked && gs.block_id == id) {
        b.reason = gs.block_reason;
        b.started_at = gs.block_started;
        b.expires_at = gs.block_until == INT64_MAX ? 0 : gs.block_until;
    }
    util_strlcpy(b.node, "(not in the store)", sizeof b.node);
    return block_json(&b, now);
}

/* ---- requests -------------------------------------------------------- */

/* One request, checked by ctlreq_parse(); what is left to go wrong here
 * needs the server (the store, the guard, a reload). */
struct req {
    const struct admin *a;
    struct server *srv;
    struct config *cfg;
    const struct ctlreq *q;
    struct admin_answer *out;
    int64_t now;
};

/* Returns NULL, the handlers' way to fail. */
static json_t *fail(struct req *r, enum admin_fail how, const char *why)
{
    r->out->fail = how;
    util_strlcpy(r->out->err, why, sizeof r->out->err);
    return NULL;
}

static struct addr req_prefix(const struct req *r)
{
    return ctlreq_prefix(r->q, r->cfg->ipv4_prefix, r->cfg->ipv6_prefix);
}

static void newest_cb(void *ctx, const struct guard_block *b)
{
    *(struct guard_block *)ctx = *b;
}

static json_t *do_status(struct req *r)
{
    struct addr p = req_prefix(r);
    struct guard_status gs;
    guard_status(r->srv->guard, r->cfg, &p, r->now, &gs);
    struct store *st = r->srv->store;
    struct store_counts sum;
    /* In a cluster the counts that matter are the sums over all nodes;
     * `concurrent` stays this node's own. */
    if (st->ops->counters != NULL && st->ops->counters(st, r->cfg, &p, &sum)) {
        gs.auth_failures = sum.auth_failures;
        gs.unauth_attempts = sum.unauth_attempts;
        gs.connections = sum.connections;
    }
    char prefix[ADDR_STRLEN];
    addr_format(&p, true, prefix);
    json_t *o = json_object();
    json_object_set_new(o, "address", json_string(r->q->ip));
    json_object_set_new(o, "prefix", json_string(prefix));
    json_object_set_new(o, "state", json_string(!gs.blocked ? "clear"
                                               : gs.state == BLOCK_PERMANENT ? "permanent" : "blocked"));
    json_object_set_new(o, "block", gs.blocked ? block_by_id(r->srv, gs.block_id, &gs.block_prefix,
                                                             gs.state == BLOCK_PERMANENT, r->now)
                                               : json_null());
    struct guard_block last;
    memset(&last, 0, sizeof last);
    r->srv->store->ops->history(r->srv->store, &p, 1, newest_cb, &last);
    json_object_set_new(o, "last_block", last.id ? block_json(&last, r->now) : json_null());
    json_t *c = json_object();
    json_object_set_new(c, "auth_failures", json_integer(gs.auth_failures));
    json_object_set_new(c, "unauth_attempts", json_integer(gs.unauth_attempts));
    json_object_set_new(c, "connections", json_integer(gs.connections));
    json_object_set_new(c, "concurrent", json_integer(gs.concurrent));
    json_object_set_new(o, "counters", c);
    json_object_set_new(o, "offenses", json_integer(gs.offenses));
    json_object_set_new(o, "repeats",
                        json_integer(accounts_repeats(r->srv->accounts, r->cfg, &p, r->now)));
    return o;
}

struct history_ctx {
    json_t *arr;
    int64_t now;
};

static void history_cb(void *ctx, const struct guard_block *b)
{
    struct history_ctx *h = ctx;
    json_array_append_new(h->arr, block_json(b, h->now));
}

static json_t *do_history(struct req *r)
{
    struct addr p = req_prefix(r);
    char prefix[ADDR_STRLEN];
    addr_format(&p, true, prefix);
    struct history_ctx h = {json_array(), r->now};
    if (!r->srv->store->ops->history(r->srv->store, &p, 0, history_cb, &h)) {
        json_decref(h.arr);
        return fail(r, ADMIN_FAILED, "the store could not be read");
    }
    json_t *o = json_object();
    json_object_set_new(o, "prefix", json_string(prefix));
    json_object_set_new(o, "blocks", h.arr);
    return o;
}

struct list_item {
    uint64_t id;
    struct addr prefix;
    int64_t until;
};

struct list_ctx {
    struct list_item *v;
    size_t n, cap;
    enum ctlreq_filter filter;
};

static void list_cb(void *ctx, uint64_t id, const struct addr *prefix, int64_t until)
{
    struct list_ctx *l = ctx;
    bool perm = until == INT64_MAX;
    if ((l->filter == CTLREQ_PERMANENT && !perm) || (l->filter == CTLREQ_TEMPORARY && perm))
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct list_item *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct list_item){id, *prefix, until};
}

static json_t *do_list(struct req *r)
{
    struct list_ctx l = {NULL, 0, 0, r->q->filter};
    guard_list(r->srv->guard, r->now, list_cb, &l);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++)
        json_array_append_new(arr, block_by_id(r->srv, l.v[i].id, &l.v[i].prefix,
                                               l.v[i].until == INT64_MAX, r->now));
    free(l.v);
    json_t *o = json_object();
    json_object_set_new(o, "blocks", arr);
    return o;
}

static json_t *do_block(struct req *r)
{
    struct addr p = req_prefix(r);
    struct guard_block made;
    if (!enforce_block(&r->srv->enforce, r->cfg, &p, r->q->duration_ms, r->now, r->q->by,
                       r->q->reason, &made))
        return fail(r, ADMIN_FAILED, "out of memory");
    struct store *st = r->srv->store;
    struct guard_block stored;
    return block_json(st->ops->get(st, made.id, &stored) ? &stored : &made, r->now);
}

static json_t *do_unblock(struct req *r)
{
    struct addr p = req_prefix(r);
    uint64_t id;
    if (!enforce_unblock(&r->srv->enforce, r->cfg, &p, r->now, r->q->by, r->q->reason, &id))
        return fail(r, ADMIN_NOT_FOUND, "not blocked");
    return block_by_id(r->srv, id, &p, false, r->now);
}

static json_t *do_stats(struct req *r)
{
    struct stats *s = &r->srv->stats;
    struct guard_stats gs;
    guard_stats(r->srv->guard, r->now, &gs);
    json_t *o = json_object();
#define STAT(name) json_object_set_new(o, #name, json_integer((json_int_t)atomic_load(&s->name)))
    STAT(connections);
    STAT(accepted);
    STAT(rejected_blocked);
    STAT(rejected_concurrency);
    STAT(rejected_busy);
    STAT(auth_ok);
    STAT(auth_fail);
    STAT(unauth_mail);
    STAT(messages);
    STAT(delivery_failures);
    STAT(proxy_errors);
#undef STAT
    json_object_set_new(o, "open_connections", json_integer(atomic_load(&r->srv->clients)));
    /* Names that cannot be misread: what was made since the start (by
     * reason, manual ones too) apart from what is in force now. */
    unsigned long made = 0;
    for (int i = GUARD_AUTH_FAILURES; i <= GUARD_ESCALATED; i++) {
        unsigned long n = atomic_load(&s->blocks_by[i]);
        char key[64];
        snprintf(key, sizeof key, "blocks_made_since_start_%s", guard_reason_name((enum guard_reason)i));
        json_object_set_new(o, key, json_integer((json_int_t)n));
        made += n;
    }
    json_object_set_new(o, "blocks_made_since_start", json_integer((json_int_t)made));
    json_object_set_new(o, "blocks_in_force", json_integer((json_int_t)gs.blocks));
    json_object_set_new(o, "blocks_in_force_temporary", json_integer((json_int_t)(gs.blocks - gs.permanent)));
    json_object_set_new(o, "blocks_in_force_permanent", json_integer((json_int_t)gs.permanent));
    /* The older names of the last two, which scripts may read. */
    json_object_set_new(o, "active_blocks", json_integer((json_int_t)gs.blocks));
    json_object_set_new(o, "permanent_blocks", json_integer((json_int_t)gs.permanent));
    json_object_set_new(o, "tracked_prefixes", json_integer((json_int_t)gs.entries));
    json_object_set_new(o, "guard_bytes", json_integer((json_int_t)gs.bytes));
    json_object_set_new(o, "bytes_per_prefix", json_integer((json_int_t)gs.entry_size));
    json_object_set_new(o, "evictions", json_integer((json_int_t)gs.evictions));
    json_object_set_new(o, "untracked", json_integer((json_int_t)gs.untracked));
    json_object_set_new(o, "index_prefixes", json_integer((json_int_t)gs.index_prefixes));
    json_object_set_new(o, "index_bytes", json_integer((json_int_t)gs.index_bytes));
    struct accounts_stats as;
    accounts_stats(r->srv->accounts, r->now, &as);
    json_object_set_new(o, "account_locks", json_integer((json_int_t)as.accounts.locks));
    json_object_set_new(o, "accounts_tracked", json_integer((json_int_t)as.accounts.accounts));
    json_object_set_new(o, "accounts_evicted", json_integer((json_int_t)as.accounts.evicted));
    json_object_set_new(o, "accounts_bytes", json_integer((json_int_t)as.accounts.bytes));
    json_object_set_new(o, "repeat_prefixes", json_integer((json_int_t)as.repeats.prefixes));
    json_object_set_new(o, "repeat_bytes", json_integer((json_int_t)as.repeats.bytes));
    json_object_set_new(o, "auth_repeats", json_integer((json_int_t)atomic_load(&s->auth_repeats)));
    json_object_set_new(o, "auth_locked", json_integer((json_int_t)atomic_load(&s->auth_locked)));
    json_object_set_new(o, "uptime_s", json_integer((r->now - r->srv->started_at) / 1000));
    return o;
}

/* ---- accounts (SPEC §5 account, unlock) ------------------------------ */

/* A LOCK: a BLOCK of an account. */
static json_t *lock_json(const struct account_lock *l, int64_t now)
{
    char id[17];
    store_id_format(l->id, id);
    enum lock_state st = l->state;
    if (st == LOCK_ACTIVE && l->expires_at <= now)
        st = LOCK_EXPIRED;           /* ran out, not recorded yet */
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "account", str_or_null(l->account));
    json_object_set_new(o, "state", json_string(lock_state_name(st)));
    json_object_set_new(o, "reason", json_string(account_reason_name(l->reason)));
    json_object_set_new(o, "started_at", time_or_null(l->started_at));
    json_object_set_new(o, "expires_at", time_or_null(l->expires_at));
    json_object_set_new(o, "lifted_at", time_or_null(l->lifted_at));
    json_object_set_new(o, "lifted_by", str_or_null(l->lifted_by));
    json_object_set_new(o, "lift_reason", str_or_null(l->lift_reason));
    json_object_set_new(o, "first_event_at", time_or_null(l->first_event_at));
    json_object_set_new(o, "last_event_at", time_or_null(l->last_event_at));
    json_object_set_new(o, "events", json_integer(l->events));
    json_object_set_new(o, "node", str_or_null(l->node));
    json_object_set_new(o, "note", str_or_null(l->note));
    return o;
}

struct locks_ctx {
    json_t *arr;
    int64_t now;
    uint64_t in_force;           /* its id, to find it among the records */
    json_t *lock;
};

static void locks_cb(void *ctx, const struct account_lock *l)
{
    struct locks_ctx *k = ctx;
    json_t *j = lock_json(l, k->now);
    if (l->id == k->in_force && k->lock == NULL)
        k->lock = json_incref(j);
    json_array_append_new(k->arr, j);
}

/* The records are the store's; a lock that is only in memory (its write
 * failed) is still shown as what it is. */
static json_t *do_account(struct req *r)
{
    struct accounts *ac = r->srv->accounts;
    char name[ACCOUNT_NAME_MAX];
    if (!account_name_normalise(r->q->name, name))
        return fail(r, ADMIN_BAD_REQUEST, "name is not an account name");
    struct account_status st;
    accounts_status(ac, r->cfg, name, r->now, &st);
    struct locks_ctx k = {json_array(), r->now, st.locked ? st.lock_id : 0, NULL};
    /* A support desk's view: the newest 100 locks are plenty. */
    if (!accounts_history(ac, name, 100, locks_cb, &k)) {
        json_decref(k.arr);
        return fail(r, ADMIN_FAILED, "the store could not be read");
    }
    if (st.locked && k.lock == NULL) {
        struct account_lock l = {.id = st.lock_id, .reason = st.lock_reason,
                                 .state = LOCK_ACTIVE, .started_at = st.lock_started,
                                 .expires_at = st.lock_until};
        util_strlcpy(l.account, name, sizeof l.account);
        util_strlcpy(l.node, "(not in the store)", sizeof l.node);
        k.lock = lock_json(&l, r->now);
        json_array_insert(k.arr, 0, k.lock);
    }
    json_t *o = json_object();
    json_object_set_new(o, "account", str_or_null(name));
    json_object_set_new(o, "state", json_string(st.locked ? "locked" : "clear"));
    json_object_set_new(o, "lock", k.lock != NULL ? k.lock : json_null());
    json_t *last = json_array_get(k.arr, 0);
    json_object_set_new(o, "last_lock", last != NULL ? json_incref(last) : json_null());
    json_object_set_new(o, "failures", json_integer(st.failures));
    json_object_set_new(o, "familiar", json_integer(st.familiar));
    json_object_set_new(o, "locks", k.arr);
    return o;
}

static void newest_lock_cb(void *ctx, const struct account_lock *l)
{
    *(struct account_lock *)ctx = *l;
}

static json_t *do_unlock(struct req *r)
{
    const char *by = r->q->by, *why = r->q->reason, *err;
    struct account_lock lifted;
    if (!accounts_unlock(r->srv->accounts, r->cfg, r->q->name, r->now, by, why, &lifted, &err))
        return fail(r, strcmp(err, "not locked") == 0 ? ADMIN_NOT_FOUND : ADMIN_FAILED, err);
    char id[17];
    store_id_format(lifted.id, id);
    const char *name = lifted.account[0] ? lifted.account : r->q->name;
    log_event(LOG_WARN, "account_unlock", "account", name, "lock", id, "by", by, "note", why,
              NULL);
    /* The record as the store now has it (lifted), else what we know. */
    struct account_lock rec = {0};
    accounts_history(r->srv->accounts, r->q->name, 1, newest_lock_cb, &rec);
    return lock_json(rec.id == lifted.id ? &rec : &lifted, r->now);
}

static json_t *do_reload(struct req *r)
{
    char err[CTLREQ_ERR_MAX];
    if (r->a->reload == NULL || !r->a->reload(r->srv, err, sizeof err))
        return fail(r, ADMIN_FAILED, r->a->reload ? err : "reload is not possible here");
    return json_object();
}

static json_t *(*const commands[CTLREQ_NCMD])(struct req *r) = {
    [CTLREQ_STATUS] = do_status, [CTLREQ_HISTORY] = do_history, [CTLREQ_LIST] = do_list,
    [CTLREQ_BLOCK] = do_block, [CTLREQ_UNBLOCK] = do_unblock, [CTLREQ_STATS] = do_stats,
    [CTLREQ_RELOAD] = do_reload, [CTLREQ_ACCOUNT] = do_account, [CTLREQ_UNLOCK] = do_unlock,
};

void admin_run(const struct admin *a, const struct ctlreq *q, struct admin_answer *out)
{
    memset(out, 0, sizeof *out);
    struct req r = {.a = a, .srv = a->srv, .q = q, .out = out, .now = util_now_ms()};
    r.cfg = server_config(a->srv);
    out->result = commands[q->cmd](&r);
    config_unref(r.cfg);
    if (out->result == NULL && out->fail == ADMIN_OK)
        fail(&r, ADMIN_FAILED, "failed");
}

char *admin_line(const struct admin *a, const char *line, size_t len)
{
    struct ctlreq q;
    struct admin_answer ans;
    if (!ctlreq_parse(line, len, &q, ans.err))
        return ctlreq_reply(NULL, ans.err);
    admin_run(a, &q, &ans);
    return ctlreq_reply(ans.result, ans.err);
}
