/* The account store (src/store/accounts.h), the same tests for both
 * backends: repeats, a lock from failures, familiar prefixes, unlock,
 * history, and what a restarted daemon (SQLite) or another node (Redis)
 * sees of it.
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"
#include "store/accounts.h"

struct fixture {
    struct config *c;
    struct accounts *a;
    char dir[64];
};

static struct addr A(const char *s)
{
    struct addr a;
    if (!addr_parse(s, true, &a))
        fail_msg("addr_parse(\"%s\") failed", s);
    return a;
}

/* A wrong password, fingerprinted as the session does it. */
static void failed(struct accounts *a, const struct config *c, const char *user, const char *pass,
                   const struct addr *p, int64_t now, struct accounts_failure *out)
{
    accounts_failed(a, c, user, accounts_fingerprint(a, user, pass), true, p, now, out);
}

static struct accounts *open_node(struct fixture *f, const char *node)
{
    char err[256];
    struct accounts *a = accounts_open(f->c, node, err, sizeof err);
    if (a == NULL)
        fail_msg("accounts_open: %s", err);
    return a;
}

static int setup(void **state, enum store_backend backend)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/portcullis-accounts-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char var[96];
    snprintf(var, sizeof var, "%s/var", f->dir);
    assert_int_equal(mkdir(var, 0700), 0);      /* the block store makes it in the daemon */
    f->c = config_defaults(f->dir);
    f->c->store = backend;
    f->c->account_fail_limit = 3;
    f->c->account_fail_window_ms = 600000;
    f->c->account_lock_ms = 3600000;
    if (backend == STORE_REDIS) {
        util_strlcpy(f->c->redis, getenv("PORTCULLIS_TEST_REDIS"), sizeof f->c->redis);
        char id[UTIL_ID_LEN];
        util_new_id(id);
        snprintf(f->c->redis_prefix, sizeof f->c->redis_prefix, "unit:%s:", id);
    }
    f->a = open_node(f, "node1");
    *state = f;
    return 0;
}

static int setup_sqlite(void **state) { return setup(state, STORE_SQLITE); }
static int setup_redis(void **state) { return setup(state, STORE_REDIS); }

static int teardown(void **state)
{
    struct fixture *f = *state;
    accounts_close(f->a);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    config_unref(f->c);
    free(f);
    return 0;
}

/* Reopened: a restarted daemon (SQLite) or a second node (Redis). */
static struct accounts *other(struct fixture *f)
{
    if (f->c->store == STORE_SQLITE) {
        accounts_close(f->a);
        f->a = open_node(f, "node1");
        return f->a;
    }
    return open_node(f, "node2");
}

static void done_with(struct fixture *f, struct accounts *b)
{
    if (b != f->a)
        accounts_close(b);
}

static void test_repeats(void **state)
{
    struct fixture *f = *state;
    struct addr p = A("192.0.2.1");
    int64_t now = util_now_ms();
    struct accounts_failure r;
    failed(f->a, f->c, "alice@x", "stale", &p, now, &r);
    assert_false(r.repeat);
    for (int i = 1; i <= 4; i++) {
        failed(f->a, f->c, "Alice@X", "stale", &p, now + i, &r);
        assert_true(r.repeat);
        assert_false(r.locked);
    }
    assert_int_equal(accounts_repeats(f->a, f->c, &p, now + 10), 4);
    /* The repeats did not count toward the account. */
    struct account_status st;
    accounts_status(f->a, f->c, "alice@x", now + 10, &st);
    assert_int_equal(st.failures, 1);
    /* Off: every failure counts. */
    f->c->repeat_counts_once = false;
    failed(f->a, f->c, "alice@x", "stale", &p, now + 20, &r);
    assert_false(r.repeat);
    f->c->repeat_counts_once = true;
}

static void test_lock_familiar_unlock(void **state)
{
    struct fixture *f = *state;
    struct addr home = A("203.0.113.0/32"), bots[3] = {A("198.51.100.1"), A("198.51.100.2"),
                                                      A("198.51.100.3")};
    struct addr stranger = A("198.51.100.99");
    int64_t now = util_now_ms();
    accounts_succeeded(f->a, f->c, "bob@x", &home, now);
    struct accounts_failure r;
    for (int i = 0; i < 3; i++) {
        char pw[16];
        snprintf(pw, sizeof pw, "guess%d", i);
        failed(f->a, f->c, "bob@x", pw, &bots[i], now + i, &r);
        assert_int_equal(r.locked, i == 2);
    }
    assert_string_equal(r.lock.account, "bob@x");
    assert_int_equal(r.lock.events, 3);
    assert_int_equal(r.lock.expires_at, now + 2 + 3600000);
    uint64_t id = r.lock.id;
    assert_false(accounts_may_try(f->a, f->c, "BOB@x", &stranger, now + 10));
    assert_true(accounts_may_try(f->a, f->c, "bob@x", &home, now + 10));

    /* Restarted, or seen from another node: the same lock and familiar set. */
    struct accounts *b = other(f);
    assert_false(accounts_may_try(b, f->c, "bob@x", &stranger, now + 20));
    assert_true(accounts_may_try(b, f->c, "bob@x", &home, now + 20));
    struct account_status st;
    accounts_status(b, f->c, "bob@x", now + 20, &st);
    assert_true(st.locked);
    assert_int_equal(st.lock_id, id);
    assert_int_equal(st.familiar, 1);
    assert_int_equal(st.failures, 0);

    struct account_lock lifted;
    const char *err;
    assert_true(accounts_unlock(b, f->c, "bob@x", now + 30, "support", "ticket 1", &lifted, &err));
    assert_int_equal(lifted.id, id);
    assert_false(accounts_unlock(b, f->c, "bob@x", now + 31, "support", "again", &lifted, &err));
    assert_string_equal(err, "not locked");
    assert_true(accounts_may_try(b, f->c, "bob@x", &stranger, now + 40));
    done_with(f, b);
    /* The first node (or the restarted one) agrees. */
    assert_true(accounts_may_try(f->a, f->c, "bob@x", &stranger, now + 50));
}

struct hist {
    int n;
    struct account_lock v[4];
};

static void hist_cb(void *ctx, const struct account_lock *l)
{
    struct hist *h = ctx;
    if (h->n < 4)
        h->v[h->n] = *l;
    h->n++;
}

static void test_history(void **state)
{
    struct fixture *f = *state;
    int64_t now = util_now_ms();
    struct accounts_failure r;
    char pw[16];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3; i++) {
            struct addr p = A(round ? "192.0.2.20" : "192.0.2.10");
            snprintf(pw, sizeof pw, "g%d%d", round, i);
            failed(f->a, f->c, "carol@x", pw, &p, now + round * 1000 + i, &r);
        }
        assert_true(r.locked);
        struct account_lock lifted;
        const char *err;
        assert_true(accounts_unlock(f->a, f->c, "carol@x", now + round * 1000 + 500, "desk",
                                    "ok", &lifted, &err));
    }
    struct hist h = {0};
    assert_true(accounts_history(f->a, "CAROL@x", 0, hist_cb, &h));
    assert_int_equal(h.n, 2);
    assert_true(h.v[0].started_at > h.v[1].started_at);          /* newest first */
    assert_int_equal(h.v[0].state, LOCK_LIFTED);
    assert_string_equal(h.v[0].lifted_by, "desk");
    assert_string_equal(h.v[0].lift_reason, "ok");
    assert_int_equal(h.v[1].reason, ACCOUNT_FAILURES);
    assert_int_equal(h.v[1].events, 3);
    struct hist one = {0};
    assert_true(accounts_history(f->a, "carol@x", 1, hist_cb, &one));
    assert_int_equal(one.n, 1);
}

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_repeats, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_lock_familiar_unlock, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup_sqlite, teardown),
    };
    const struct CMUnitTest redis_tests[] = {
        cmocka_unit_test_setup_teardown(test_repeats, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_lock_familiar_unlock, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_history, setup_redis, teardown),
    };
    int rc = cmocka_run_group_tests_name("accounts_sqlite", sqlite_tests, NULL, NULL);
    if (getenv("PORTCULLIS_TEST_REDIS") != NULL)
        rc |= cmocka_run_group_tests_name("accounts_redis", redis_tests, NULL, NULL);
    else
        printf("accounts_redis: skipped (set PORTCULLIS_TEST_REDIS=HOST:PORT)\n");
    return rc;
}
