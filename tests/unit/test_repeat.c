/* Unit tests for src/guard/repeat.h: a repeat within the window and at its
 * edges, different users and passwords, case of the user, per-prefix and
 * overall bounds, the count status shows, the key, sweep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "guard/repeat.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define WIN (10 * MIN)

static const int64_t T0 = 1795219200000LL;

static struct addr A(const char *s)
{
    struct addr a;
    if (!addr_parse(s, true, &a))
        fail_msg("addr_parse(\"%s\") failed", s);
    return a;
}

static bool failed(struct repeat *r, const char *ip, const char *user, const char *pass, int64_t at)
{
    struct addr p = A(ip);
    return repeat_check(r, &p, repeat_fingerprint(r, user, pass), at, WIN);
}

static void test_same_password_repeats(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    assert_false(failed(r, "192.0.2.1", "alice@example.org", "old", T0));
    for (int i = 1; i <= 19; i++)
        assert_true(failed(r, "192.0.2.1", "alice@example.org", "old", T0 + i * SEC));
    struct addr p = A("192.0.2.1");
    assert_int_equal(repeat_count(r, &p, T0 + 20 * SEC, WIN), 19);
    repeat_free(r);
}

static void test_different_is_not_repeat(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    assert_false(failed(r, "192.0.2.1", "alice@example.org", "one", T0));
    assert_false(failed(r, "192.0.2.1", "alice@example.org", "two", T0 + 1));
    assert_false(failed(r, "192.0.2.1", "bob@example.org", "one", T0 + 2));
    /* Same pair from another prefix is that prefix's first failure. */
    assert_false(failed(r, "192.0.2.2", "alice@example.org", "one", T0 + 3));
    /* Length-prefixed: the user/password boundary matters. */
    assert_false(failed(r, "192.0.2.3", "ab", "c", T0));
    assert_false(failed(r, "192.0.2.3", "a", "bc", T0 + 1));
    struct addr p = A("192.0.2.1");
    assert_int_equal(repeat_count(r, &p, T0 + 4, WIN), 0);
    repeat_free(r);
}

static void test_user_case_ignored(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    assert_false(failed(r, "192.0.2.1", "Alice@Example.ORG", "old", T0));
    assert_true(failed(r, "192.0.2.1", "alice@example.org", "old", T0 + SEC));
    /* The password's case is the password. */
    assert_false(failed(r, "192.0.2.1", "alice@example.org", "OLD", T0 + 2 * SEC));
    repeat_free(r);
}

static void test_window_edges(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    assert_false(failed(r, "192.0.2.1", "u", "p", T0));
    /* One millisecond inside the window: a repeat. */
    assert_true(failed(r, "192.0.2.1", "u", "p", T0 + WIN - 1));
    /* Each repeat renews it: a window after the repeat it is still one ... */
    assert_true(failed(r, "192.0.2.1", "u", "p", T0 + 2 * WIN - 2));
    /* ... but exactly a window after the last failure it is new again. */
    assert_false(failed(r, "192.0.2.1", "u", "p", T0 + 3 * WIN - 2));
    struct addr p = A("192.0.2.1");
    assert_int_equal(repeat_count(r, &p, T0 + 3 * WIN - 2, WIN), 0);
    /* The repeat count leaves with its fingerprint. */
    assert_true(failed(r, "192.0.2.1", "u", "p", T0 + 3 * WIN));
    assert_int_equal(repeat_count(r, &p, T0 + 3 * WIN, WIN), 1);
    assert_int_equal(repeat_count(r, &p, T0 + 4 * WIN - 1, WIN), 1);
    assert_int_equal(repeat_count(r, &p, T0 + 4 * WIN, WIN), 0);
    repeat_free(r);
}

static void test_slots_per_prefix(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    char pw[16];
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        snprintf(pw, sizeof pw, "pw%d", i);
        assert_false(failed(r, "192.0.2.1", "u", pw, T0 + i));
    }
    /* All remembered ... */
    for (int i = 0; i < REPEAT_SLOTS; i++) {
        snprintf(pw, sizeof pw, "pw%d", i);
        assert_true(failed(r, "192.0.2.1", "u", pw, T0 + 100 + i));
    }
    /* ... one more takes the slot of the one that failed longest ago (pw0). */
    assert_false(failed(r, "192.0.2.1", "u", "new", T0 + 200));
    assert_false(failed(r, "192.0.2.1", "u", "pw0", T0 + 201));
    /* pw0 came back in place of pw1, the oldest then. */
    assert_false(failed(r, "192.0.2.1", "u", "pw1", T0 + 202));
    assert_true(failed(r, "192.0.2.1", "u", "new", T0 + 203));
    repeat_free(r);
}

static void test_prefix_bound(void **state)
{
    (void)state;
    enum { MAX = 64 };
    struct repeat *r = repeat_new(MAX);
    char ip[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        failed(r, ip, "u", "p", T0 + i);
    }
    struct repeat_stats st;
    repeat_stats(r, &st);
    assert_int_equal(st.prefixes, MAX);
    assert_int_equal(st.evicted, 10000 - MAX);
    /* The newest are kept, the oldest forgotten. */
    assert_true(failed(r, "10.0.39.15", "u", "p", T0 + 20000));    /* i = 9999 */
    assert_false(failed(r, "10.0.0.0", "u", "p", T0 + 20001));
    repeat_stats(r, &st);
    assert_int_equal(st.prefixes, MAX);
    repeat_free(r);
}

static void test_key(void **state)
{
    (void)state;
    struct repeat *a = repeat_new(10), *b = repeat_new(10);
    /* Two fresh keys: different fingerprints of the same pair. */
    assert_int_not_equal(repeat_fingerprint(a, "u", "p"), repeat_fingerprint(b, "u", "p"));
    uint8_t k[REPEAT_KEY_LEN];
    memset(k, 7, sizeof k);
    assert_false(failed(a, "192.0.2.1", "u", "p", T0));
    repeat_set_key(a, k);
    repeat_set_key(b, k);
    assert_int_equal(repeat_fingerprint(a, "u", "p"), repeat_fingerprint(b, "u", "p"));
    /* A new key forgets the old fingerprints (they could never match). */
    assert_false(failed(a, "192.0.2.1", "u", "p", T0 + 1));
    assert_true(failed(a, "192.0.2.1", "u", "p", T0 + 2));
    repeat_free(a);
    repeat_free(b);
}

static void test_sweep(void **state)
{
    (void)state;
    struct repeat *r = repeat_new(100);
    failed(r, "192.0.2.1", "u", "p", T0);
    failed(r, "192.0.2.2", "u", "p", T0 + 5 * MIN);
    assert_int_equal(repeat_sweep(r, T0 + WIN - 1, WIN), 0);
    assert_int_equal(repeat_sweep(r, T0 + WIN, WIN), 1);
    assert_int_equal(repeat_sweep(r, T0 + 5 * MIN + WIN, WIN), 1);
    struct repeat_stats st;
    repeat_stats(r, &st);
    assert_int_equal(st.prefixes, 0);
    repeat_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_password_repeats),
        cmocka_unit_test(test_different_is_not_repeat),
        cmocka_unit_test(test_user_case_ignored),
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_slots_per_prefix),
        cmocka_unit_test(test_prefix_bound),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
