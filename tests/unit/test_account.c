/* Unit tests for src/guard/account.h: counting to the lock, the lock's
 * reset of the count, familiar prefixes (and their bound and expiry), lock
 * expiry, unlock, install/remove, cluster impose, the table's bound under
 * 100,000 names (never evicting a lock), sweep, name normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "guard/account.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* Midnight UTC: a multiple of every window here, so that bursts a few
 * seconds after it stay inside one period of the two-period counter. */
static const int64_t T0 = 1795219200000LL;

static struct addr A(const char *s)
{
    struct addr a;
    if (!addr_parse(s, true, &a))
        fail_msg("addr_parse(\"%s\") failed", s);
    return a;
}

static struct config *cfg(long limit)
{
    struct config *c = config_defaults("/tmp");
    assert_non_null(c);
    c->account_fail_limit = limit;
    c->account_fail_window_ms = HOUR;
    c->account_lock_ms = HOUR;
    c->familiar_for_ms = 30 * DAY;
    return c;
}

/* n failures one second apart from `start`; the 1-based index of the one
 * that locked (0: none). */
static int fail_n(struct account_table *t, const struct config *c, const char *name,
                  int64_t start, int n, struct account_lock *made)
{
    int hit = 0;
    for (int i = 0; i < n; i++) {
        struct account_lock l = {0};
        if (account_fail(t, c, name, start + i * SEC, &l) && hit == 0) {
            hit = i + 1;
            if (made)
                *made = l;
        }
    }
    return hit;
}

static void test_normalise(void **state)
{
    (void)state;
    char out[ACCOUNT_NAME_MAX];
    assert_true(account_name_normalise("Alice@Example.ORG", out));
    assert_string_equal(out, "alice@example.org");
    /* Only ASCII letters change: UTF-8 bytes pass as they are. */
    assert_true(account_name_normalise("J\xc3\x9cRGEN@x", out));
    assert_string_equal(out, "j\xc3\x9crgen@x");
    assert_false(account_name_normalise("", out));
    char long_name[ACCOUNT_NAME_MAX + 1];
    memset(long_name, 'a', ACCOUNT_NAME_MAX);
    long_name[ACCOUNT_NAME_MAX] = '\0';
    assert_false(account_name_normalise(long_name, out));
    long_name[ACCOUNT_NAME_MAX - 1] = '\0';
    assert_true(account_name_normalise(long_name, out));
}

static void test_lock_at_limit(void **state)
{
    (void)state;
    struct config *c = cfg(5);
    struct account_table *t = account_new(100);
    struct account_lock l = {0};
    struct addr stranger = A("198.51.100.9");
    assert_int_equal(fail_n(t, c, "alice@example.org", T0 + SEC, 4, NULL), 0);
    assert_true(account_may_try(t, c, "alice@example.org", &stranger, T0 + 10 * SEC));
    /* The fifth, under another spelling of the same name, locks. */
    assert_true(account_fail(t, c, "ALICE@example.org", T0 + 11 * SEC, &l));
    assert_string_equal(l.account, "alice@example.org");
    assert_int_equal(l.reason, ACCOUNT_FAILURES);
    assert_int_equal(l.state, LOCK_ACTIVE);
    assert_int_equal(l.events, 5);
    assert_int_equal(l.first_event_at, T0 + SEC);
    assert_int_equal(l.last_event_at, T0 + 11 * SEC);
    assert_int_equal(l.started_at, T0 + 11 * SEC);
    assert_int_equal(l.expires_at, T0 + 11 * SEC + HOUR);
    assert_int_not_equal(l.id, 0);
    assert_false(account_may_try(t, c, "alice@example.org", &stranger, T0 + 12 * SEC));
    /* Other accounts are not touched. */
    assert_true(account_may_try(t, c, "bob@example.org", &stranger, T0 + 12 * SEC));

    /* The lock reset the count. */
    struct account_status st;
    account_status(t, c, "alice@example.org", T0 + 12 * SEC, &st);
    assert_true(st.locked);
    assert_int_equal(st.lock_id, l.id);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.lock_until, l.expires_at);
    account_free(t);
    config_unref(c);
}

static void test_off(void **state)
{
    (void)state;
    struct config *c = cfg(2);
    c->account_fail_window_ms = 0;
    struct account_table *t = account_new(100);
    struct addr p = A("198.51.100.9");
    assert_int_equal(fail_n(t, c, "a@x", T0, 10, NULL), 0);
    assert_true(account_may_try(t, c, "a@x", &p, T0 + MIN));
    account_free(t);
    config_unref(c);
}

static void test_familiar(void **state)
{
    (void)state;
    struct config *c = cfg(3);
    c->account_lock_ms = 2 * DAY;
    struct account_table *t = account_new(100);
    struct addr home = A("203.0.113.0/24"), office = A("192.0.2.7/32"),
                stranger = A("198.51.100.9/32");
    assert_int_equal(account_familiar(t, "Alice@example.org", &home, T0 - 29 * DAY), 0);
    account_familiar(t, "alice@example.org", &office, T0 - DAY);
    assert_int_equal(fail_n(t, c, "alice@example.org", T0 + SEC, 3, NULL), 3);
    assert_true(account_may_try(t, c, "alice@example.org", &home, T0 + MIN));
    assert_true(account_may_try(t, c, "alice@example.org", &office, T0 + MIN));
    assert_false(account_may_try(t, c, "alice@example.org", &stranger, T0 + MIN));

    /* Familiar for familiar_for after the login, not a millisecond more. */
    assert_true(account_may_try(t, c, "alice@example.org", &home, T0 + DAY - 1));
    assert_false(account_may_try(t, c, "alice@example.org", &home, T0 + DAY));

    struct account_status st;
    account_status(t, c, "alice@example.org", T0 + DAY, &st);
    assert_int_equal(st.familiar, 1);
    struct addr got[4];
    int64_t when[4];
    assert_int_equal(account_familiar_list(t, c, "alice@example.org", T0, got, when, 4), 2);
    assert_true(addr_equal(&got[0], &office));    /* most recent first */
    assert_int_equal(when[0], T0 - DAY);
    assert_true(addr_equal(&got[1], &home));
    account_free(t);
    config_unref(c);
}

static void test_familiar_bound(void **state)
{
    (void)state;
    struct config *c = cfg(3);
    struct account_table *t = account_new(100);
    char ip[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof ip, "10.0.%d.%d", i >> 8, i & 255);
        struct addr p = A(ip);
        account_familiar(t, "a@x", &p, T0 + i * SEC);
    }
    struct account_status st;
    account_status(t, c, "a@x", T0 + 1000 * SEC, &st);
    assert_int_equal(st.familiar, ACCOUNT_FAMILIAR_MAX);
    /* The latest logins are kept, the oldest forgotten. */
    struct addr last = A("10.0.3.231"), first = A("10.0.0.0");   /* 999, 0 */
    struct addr got[ACCOUNT_FAMILIAR_MAX + 1];
    size_t n = account_familiar_list(t, c, "a@x", T0 + 1000 * SEC, got, NULL, ACCOUNT_FAMILIAR_MAX + 1);
    assert_int_equal(n, ACCOUNT_FAMILIAR_MAX);
    assert_true(addr_equal(&got[0], &last));
    for (size_t i = 0; i < n; i++)
        assert_false(addr_equal(&got[i], &first));
    /* Logging in again moves a known prefix up, without a second slot. */
    struct addr old = got[n - 1];
    assert_true(account_familiar(t, "a@x", &old, T0 + 2000 * SEC) > 0);
    n = account_familiar_list(t, c, "a@x", T0 + 2000 * SEC, got, NULL, ACCOUNT_FAMILIAR_MAX);
    assert_int_equal(n, ACCOUNT_FAMILIAR_MAX);
    assert_true(addr_equal(&got[0], &old));
    account_free(t);
    config_unref(c);
}

struct seen {
    int n;
    uint64_t id;
    char name[64];
    int64_t at;
};

static void on_expired(void *ctx, uint64_t id, const char *name, int64_t at)
{
    struct seen *s = ctx;
    s->n++;
    s->id = id;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->at = at;
}

static void test_lock_expiry(void **state)
{
    (void)state;
    struct config *c = cfg(3);
    struct account_table *t = account_new(100);
    struct account_lock l = {0};
    struct addr p = A("198.51.100.9");
    assert_int_equal(fail_n(t, c, "a@x", T0 + SEC, 3, &l), 3);
    int64_t until = l.expires_at;
    assert_false(account_may_try(t, c, "a@x", &p, until - 1));
    assert_int_equal(account_expire(t, until - 1, NULL, NULL), 0);
    assert_true(account_may_try(t, c, "a@x", &p, until));

    struct seen seen = {0};
    assert_int_equal(account_expire(t, until + 5, on_expired, &seen), 1);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.id, l.id);
    assert_string_equal(seen.name, "a@x");
    assert_int_equal(seen.at, until);
    assert_int_equal(account_expire(t, until + 6, on_expired, &seen), 0);

    /* Counting started afresh: three more lock again. */
    assert_int_equal(fail_n(t, c, "a@x", until + MIN, 3, &l), 3);
    account_free(t);
    config_unref(c);
}

static void test_unlock_install_remove(void **state)
{
    (void)state;
    struct config *c = cfg(3);
    struct account_table *t = account_new(100);
    struct account_lock l = {0};
    struct addr p = A("198.51.100.9");
    uint64_t id = 0;
    assert_false(account_unlock(t, "a@x", T0, &id));
    assert_int_equal(fail_n(t, c, "a@x", T0 + SEC, 3, &l), 3);
    assert_true(account_unlock(t, "A@X", T0 + MIN, &id));
    assert_int_equal(id, l.id);
    assert_true(account_may_try(t, c, "a@x", &p, T0 + MIN));
    assert_false(account_unlock(t, "a@x", T0 + MIN, &id));

    /* A lock from the store (another node, or before a restart). */
    struct account_lock in = l;
    in.id = 42;
    util_strlcpy(in.account, "b@x", sizeof in.account);
    in.started_at = T0;
    in.expires_at = T0 + HOUR;
    account_install(t, &in, T0 + MIN);
    account_install(t, &in, T0 + MIN);            /* idempotent */
    assert_false(account_may_try(t, c, "b@x", &p, T0 + 2 * MIN));
    struct account_stats st;
    account_stats(t, T0 + 2 * MIN, &st);
    assert_int_equal(st.locks, 1);
    account_remove(t, "b@x", 41);                  /* not that lock */
    assert_false(account_may_try(t, c, "b@x", &p, T0 + 2 * MIN));
    account_remove(t, "b@x", 42);
    assert_true(account_may_try(t, c, "b@x", &p, T0 + 2 * MIN));
    /* Ones no longer in force are ignored. */
    in.id = 43;
    account_install(t, &in, T0 + HOUR);
    assert_true(account_may_try(t, c, "b@x", &p, T0 + HOUR));
    in.id = 44;
    in.state = LOCK_LIFTED;
    account_install(t, &in, T0 + MIN);
    assert_true(account_may_try(t, c, "b@x", &p, T0 + MIN));
    account_free(t);
    config_unref(c);
}

static void test_shared_decides(void **state)
{
    (void)state;
    struct config *c = cfg(3);
    struct account_table *t = account_new(100);
    struct account_lock l = {0};
    struct addr p = A("198.51.100.9");
    account_set_local_decisions(t, false);
    assert_int_equal(fail_n(t, c, "a@x", T0 + SEC, 10, NULL), 0);
    assert_true(account_may_try(t, c, "a@x", &p, T0 + MIN));
    assert_true(account_impose(t, c, "a@x", T0 + SEC, 30, T0 + MIN, &l));
    assert_int_equal(l.events, 30);
    assert_false(account_impose(t, c, "a@x", T0 + SEC, 31, T0 + MIN, &l));
    assert_false(account_may_try(t, c, "a@x", &p, T0 + MIN));
    account_set_local_decisions(t, true);
    assert_int_equal(fail_n(t, c, "b@x", T0 + SEC, 3, NULL), 3);
    account_free(t);
    config_unref(c);
}

static void test_table_bound(void **state)
{
    (void)state;
    enum { MAX = 1000 };
    struct config *c = cfg(3);
    struct account_table *t = account_new(MAX);
    struct account_lock l = {0};
    struct addr home = A("203.0.113.5");
    /* A locked account and a familiar one before the flood. */
    assert_int_equal(fail_n(t, c, "victim@x", T0 + SEC, 3, &l), 3);
    account_familiar(t, "owner@x", &home, T0);
    char name[64];
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "user%d@example.org", i);
        account_fail(t, c, name, T0 + 10 * SEC, NULL);
    }
    struct account_stats st;
    account_stats(t, T0 + 20 * SEC, &st);
    assert_int_equal(st.accounts, MAX);
    assert_int_equal(st.locks, 1);
    assert_true(st.evicted >= 100000 - MAX);
    assert_true(st.bytes < (size_t)MAX * 256 + 64 * 1024);
    /* The lock and the familiar prefix survived the flood. */
    struct addr stranger = A("198.51.100.9");
    assert_false(account_may_try(t, c, "victim@x", &stranger, T0 + 20 * SEC));
    struct account_status as;
    account_status(t, c, "owner@x", T0 + 20 * SEC, &as);
    assert_int_equal(as.familiar, 1);
    account_free(t);
    config_unref(c);
}

static void count_lock(void *ctx, const struct account_lock *l)
{
    int *n = ctx;
    assert_int_equal(l->state, LOCK_ACTIVE);
    (*n)++;
}

static void test_locks_listed(void **state)
{
    (void)state;
    struct config *c = cfg(1);
    struct account_table *t = account_new(100);
    struct account_lock l;
    assert_true(account_fail(t, c, "a@x", T0, &l));
    assert_true(account_fail(t, c, "b@x", T0, &l));
    assert_true(account_fail(t, c, "c@x", T0, &l));
    uint64_t id;
    assert_true(account_unlock(t, "c@x", T0 + 1, &id));
    int n = 0;
    account_locks(t, T0 + 1, count_lock, &n);
    assert_int_equal(n, 2);
    n = 0;
    account_locks(t, T0 + HOUR, count_lock, &n);     /* ran out */
    assert_int_equal(n, 0);
    account_free(t);
    config_unref(c);
}

static void test_table_full_of_locks(void **state)
{
    (void)state;
    struct config *c = cfg(1);
    struct account_table *t = account_new(4);
    char name[32];
    struct account_lock l = {0};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "u%d", i);
        assert_true(account_fail(t, c, name, T0, &l));
    }
    /* No room without dropping a lock: the new name is not counted. */
    assert_false(account_fail(t, c, "new", T0 + 1, &l));
    struct account_stats st;
    account_stats(t, T0 + 1, &st);
    assert_int_equal(st.accounts, 4);
    assert_int_equal(st.locks, 4);
    account_free(t);
    config_unref(c);
}

static void test_sweep(void **state)
{
    (void)state;
    struct config *c = cfg(30);
    struct account_table *t = account_new(100);
    struct addr home = A("203.0.113.5");
    account_fail(t, c, "a@x", T0 + SEC, NULL);
    account_familiar(t, "b@x", &home, T0);
    assert_int_equal(account_sweep(t, c, T0 + MIN), 0);
    assert_int_equal(account_sweep(t, c, T0 + 2 * HOUR), 1);     /* a@x's failure ran out */
    assert_int_equal(account_sweep(t, c, T0 + 30 * DAY), 1);     /* b@x's login too */
    struct account_stats st;
    account_stats(t, T0 + 30 * DAY, &st);
    assert_int_equal(st.accounts, 0);
    account_free(t);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_lock_at_limit),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_familiar),
        cmocka_unit_test(test_familiar_bound),
        cmocka_unit_test(test_lock_expiry),
        cmocka_unit_test(test_unlock_install_remove),
        cmocka_unit_test(test_shared_decides),
        cmocka_unit_test(test_table_bound),
        cmocka_unit_test(test_locks_listed),
        cmocka_unit_test(test_table_full_of_locks),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
