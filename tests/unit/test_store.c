/* The store interface (src/store.h), the same tests for both backends: the
 * guard's decisions written through store_put/lift/expire, read back by
 * get/history/load, and fed to a fresh guard as a restarted daemon would.
 *
 * SQLite always runs (a temporary database). Redis runs when
 * PORTCULLIS_TEST_REDIS=HOST:PORT names a server to use (the integration
 * suite starts one: tests/integration/test_store_backends.py); otherwise
 * its group is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard/guard.h"
#include "store/store.h"
#include "base/util.h"

struct fixture {
    struct config *c;
    struct store *s;
    struct guard *g;
    char dir[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool up;
};

static void on_shared(void *ctx, bool up)
{
    struct fixture *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->up = up;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void on_installed(void *ctx, const struct guard_block *b)
{
    struct fixture *f = ctx;
    guard_install(f->g, f->c, b, util_now_ms());
}

static void on_removed(void *ctx, uint64_t id, const struct addr *prefix)
{
    struct fixture *f = ctx;
    guard_remove(f->g, prefix, id);
}

static int setup(void **state, enum store_backend backend)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/portcullis-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->c = config_defaults(f->dir);
    f->c->store = backend;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->g = guard_new();
    if (backend == STORE_REDIS) {
        const char *where = getenv("PORTCULLIS_TEST_REDIS");
        util_strlcpy(f->c->redis, where, sizeof f->c->redis);
        /* A prefix of its own: runs never see each other's keys. */
        char id[UTIL_ID_LEN];
        util_new_id(id);
        snprintf(f->c->redis_prefix, sizeof f->c->redis_prefix, "unit:%s:", id);
    }
    struct store_hooks h = {f, on_installed, on_removed, NULL, on_shared};
    char err[256];
    f->s = store_open(f->c, &h, err, sizeof err);
    if (f->s == NULL)
        fail_msg("store_open: %s", err);
    if (backend == STORE_REDIS) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        pthread_mutex_lock(&f->mu);
        while (!f->up && pthread_cond_timedwait(&f->cv, &f->mu, &until) == 0)
            ;
        bool up = f->up;
        pthread_mutex_unlock(&f->mu);
        if (!up)
            fail_msg("redis at %s did not come up", f->c->redis);
    }
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup(state, STORE_SQLITE);
}

static int setup_redis(void **state)
{
    return setup(state, STORE_REDIS);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->s->ops->close(f->s);
    guard_free(f->g);
    config_unref(f->c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return 0;
}

static struct addr A(const char *s)
{
    struct addr a;
    assert_true(addr_parse(s, true, &a));
    return a;
}

/* The guard decides (three failures at limit 3), the store records it. */
static struct guard_block impose(struct fixture *f, const char *ip, int64_t now)
{
    f->c->auth_fail_limit = 3;
    struct addr a = A(ip);
    struct guard_block b;
    assert_false(guard_offend(f->g, f->c, &a, GUARD_AUTH_FAILURES, now - 20, &b));
    assert_false(guard_offend(f->g, f->c, &a, GUARD_AUTH_FAILURES, now - 10, &b));
    assert_true(guard_offend(f->g, f->c, &a, GUARD_AUTH_FAILURES, now, &b));
    util_strlcpy(b.node, "unit", sizeof b.node);
    store_put(f->s, &b);
    return b;
}

/* The operator lifts b at `when`: the guard lets go, the store records it. */
static void lift(struct fixture *f, const struct guard_block *b, int64_t when, const char *reason)
{
    uint64_t id;
    assert_true(guard_unblock(f->g, &b->prefix, when, &id));
    assert_true(id == b->id);
    store_lift(f->s, id, when, "support", reason);
}

struct collect {
    struct guard_block v[16];
    int n;
};

static void collect_cb(void *ctx, const struct guard_block *b)
{
    struct collect *c = ctx;
    if (c->n < 16)
        c->v[c->n++] = *b;
}

static void test_put_then_get(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block b = impose(f, "192.0.2.10", now);
    struct guard_block got;
    assert_true(f->s->ops->get(f->s, b.id, &got));
    assert_true(addr_equal(&got.prefix, &b.prefix));
    assert_int_equal(got.reason, GUARD_AUTH_FAILURES);
    assert_int_equal(got.state, BLOCK_ACTIVE);
    assert_int_equal(got.started_at, now);
    assert_int_equal(got.expires_at, b.expires_at);
    assert_int_equal(got.first_event_at, now - 20);
    assert_int_equal(got.last_event_at, now);
    assert_int_equal(got.events, 3);
    assert_string_equal(got.node, "unit");
    assert_false(f->s->ops->get(f->s, b.id ^ 1, &got));
}

static void test_lift_keeps_the_record(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block b = impose(f, "192.0.2.11", now);
    lift(f, &b, now + 5, "ticket 4711: caf\xc3\xa9");
    struct guard_block got;
    assert_true(f->s->ops->get(f->s, b.id, &got));
    assert_int_equal(got.state, BLOCK_LIFTED);
    assert_int_equal(got.lifted_at, now + 5);
    assert_string_equal(got.lifted_by, "support");
    assert_string_equal(got.lift_reason, "ticket 4711: caf\xc3\xa9");
    /* An expiry after the lift changes nothing. */
    store_expire(f->s, b.id, now + 10);
    assert_true(f->s->ops->get(f->s, b.id, &got));
    assert_int_equal(got.state, BLOCK_LIFTED);
}

static void test_expire(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block b = impose(f, "192.0.2.12", now);
    store_expire(f->s, b.id, b.expires_at);
    struct guard_block got;
    assert_true(f->s->ops->get(f->s, b.id, &got));
    assert_int_equal(got.state, BLOCK_EXPIRED);
    assert_int_equal(got.lifted_at, 0);
}

static void test_history_newest_first_and_covering(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block first = impose(f, "198.51.100.7", now - 5000);
    lift(f, &first, now - 4000, "fixed");
    struct guard_block second = impose(f, "198.51.100.7", now);
    /* an operator's /24 covers the address; another address stays apart */
    struct guard_block wide, old;
    bool had;
    struct addr p24 = A("198.51.100.0/24");
    guard_block_manual(f->g, &p24, 3600000, now + 1, &wide, &old, &had);
    store_put(f->s, &wide);
    impose(f, "203.0.113.9", now);

    struct collect c = {.n = 0};
    struct addr one = A("198.51.100.7/32");
    assert_true(f->s->ops->history(f->s, &one, 0, collect_cb, &c));
    assert_int_equal(c.n, 3);
    assert_true(c.v[0].id == wide.id);
    assert_true(c.v[1].id == second.id);
    assert_true(c.v[2].id == first.id);
    assert_int_equal(c.v[2].state, BLOCK_LIFTED);

    struct collect lim = {.n = 0};
    assert_true(f->s->ops->history(f->s, &one, 1, collect_cb, &lim));
    assert_int_equal(lim.n, 1);
    assert_true(lim.v[0].id == wide.id);

    /* the /24 itself: its own block and the /32 blocks inside it */
    struct collect in = {.n = 0};
    assert_true(f->s->ops->history(f->s, &p24, 0, collect_cb, &in));
    assert_int_equal(in.n, 3);
}

/* history_retention: ended blocks older than the cut go, blocks in force
 * stay whatever their age. */
static void test_prune(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block gone = impose(f, "192.0.2.50", now - 10000);
    lift(f, &gone, now - 5000, "old");
    struct guard_block kept = impose(f, "192.0.2.51", now - 10000);
    store_prune(f->s, now);
    struct guard_block got;
    assert_false(f->s->ops->get(f->s, gone.id, &got));
    assert_true(f->s->ops->get(f->s, kept.id, &got));
    assert_int_equal(got.state, BLOCK_ACTIVE);
}

/* What a restarted daemon does: a fresh guard from the store, with the
 * block still in force and the ladder's memory intact. */
static void test_restart_restores_guard(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct guard_block b = impose(f, "192.0.2.40", now);
    struct guard *fresh = guard_new();
    struct guard *old = f->g;
    f->g = fresh;
    if (f->c->store == STORE_SQLITE) {
        struct collect c = {.n = 0};
        assert_true(f->s->ops->load(f->s, now - f->c->offense_memory_ms, now + 1, collect_cb, &c));
        for (int i = 0; i < c.n; i++)
            guard_install(fresh, f->c, &c.v[i], now + 1);
    } else {
        /* Redis hands every node its blocks through the hooks; a new
         * connection (another store) does the same as a restart. */
        struct store_hooks h = {f, on_installed, on_removed, NULL, NULL};
        char err[256];
        struct store *again = store_open(f->c, &h, err, sizeof err);
        assert_non_null(again);
        for (int i = 0; i < 200 && !guard_blocked(fresh, &b.prefix, now + 1); i++)
            usleep(10000);
        again->ops->close(again);
    }
    assert_true(guard_blocked(fresh, &b.prefix, now + 1));
    struct guard_status gs;
    guard_status(fresh, f->c, &b.prefix, now + 1, &gs);
    assert_true(gs.blocked);
    assert_true(gs.block_id == b.id);
    assert_int_equal(gs.offenses, 1);
    f->g = old;
    guard_free(fresh);
}

int main(void)
{
    /* Every test runs on both backends: one list, two setups. */
#define STORE_TESTS(setup) {                                                     \
        cmocka_unit_test_setup_teardown(test_put_then_get, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_lift_keeps_the_record, setup, teardown),  \
        cmocka_unit_test_setup_teardown(test_expire, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_history_newest_first_and_covering, setup, teardown), \
        cmocka_unit_test_setup_teardown(test_restart_restores_guard, setup, teardown), \
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),                  \
    }
    const struct CMUnitTest sqlite[] = STORE_TESTS(setup_sqlite);
    const struct CMUnitTest redis[] = STORE_TESTS(setup_redis);
    int failed = cmocka_run_group_tests_name("store_sqlite", sqlite, NULL, NULL);
    if (getenv("PORTCULLIS_TEST_REDIS") != NULL)
        failed += cmocka_run_group_tests_name("store_redis", redis, NULL, NULL);
    else
        printf("store_redis: skipped (set PORTCULLIS_TEST_REDIS=HOST:PORT)\n");
    return failed;
}
