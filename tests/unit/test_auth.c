/* The auth interface (src/auth/auth.h) with its users-file row: a real
 * pool and event base, a users file with a fresh yescrypt hash. A right
 * password is AUTH_OK (on the pool, then from the cache at once), a wrong
 * one or an unknown user AUTH_FAIL; the backend offers PLAIN and LOGIN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "auth/auth.h"
#include "auth/users.h"
#include "base/util.h"

struct fixture {
    char dir[64];
    struct config *c;
    struct pool *pool;
    struct event_base *base;
    struct pool_mailbox *mb;
    struct auth *a;
    int answers;
    enum auth_result last;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/portcullis-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->c = config_defaults(f->dir);
    snprintf(f->c->users, sizeof f->c->users, "%s/users", f->dir);
    char hash[256];
    assert_true(users_hash_new("alice-secret", hash, sizeof hash));
    FILE *fp = fopen(f->c->users, "w");
    assert_non_null(fp);
    fprintf(fp, "alice@example.test:%s\n", hash);
    fclose(fp);
    f->pool = pool_new(1);
    f->base = event_base_new();
    f->mb = pool_mailbox_new(f->base);
    char err[256];
    f->a = auth_open(f->c, err, sizeof err);
    if (f->a == NULL)
        fail_msg("auth_open: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    auth_unref(f->a);
    pool_free(f->pool);
    pool_mailbox_free(f->mb);
    event_base_free(f->base);
    config_unref(f->c);
    char path[128];
    snprintf(path, sizeof path, "%s/users", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void on_done(void *arg, enum auth_result r)
{
    struct fixture *f = arg;
    f->answers++;
    f->last = r;
}

/* Asks, and runs the event base until the answer (bounded: 20 s).
 * *sync says whether it came before verify returned. */
static enum auth_result verify(struct fixture *f, const char *user, const char *pass, bool *sync)
{
    struct addr client;
    assert_true(addr_parse("192.0.2.7", false, &client));
    struct auth_context ctx = {&client, NULL, true, "S1"};
    int before = f->answers;
    f->a->ops->verify(f->a, f->c, f->pool, f->mb, user, pass, &ctx, on_done, f);
    *sync = f->answers == before + 1;
    int64_t until = util_mono_ms() + 20000;
    while (f->answers == before && util_mono_ms() < until)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_int_equal(f->answers, before + 1);
    return f->last;
}

static void test_verdicts(void **state)
{
    struct fixture *f = *state;
    bool sync;
    f->c->auth_cache_ttl_ms = 0;
    assert_int_equal(verify(f, "alice@example.test", "wrong", &sync), AUTH_FAIL);
    assert_false(sync);
    assert_int_equal(verify(f, "nobody@example.test", "alice-secret", &sync), AUTH_FAIL);
    assert_int_equal(verify(f, "ALICE@example.test", "alice-secret", &sync), AUTH_OK);
    assert_false(sync);    /* no cache: the pool every time */
    assert_int_equal(verify(f, "alice@example.test", "alice-secret", &sync), AUTH_OK);
    assert_false(sync);
}

static void test_cache_answers_at_once(void **state)
{
    struct fixture *f = *state;
    bool sync;
    f->c->auth_cache_ttl_ms = 60000;
    assert_int_equal(verify(f, "alice@example.test", "alice-secret", &sync), AUTH_OK);
    assert_false(sync);
    assert_int_equal(verify(f, "alice@example.test", "alice-secret", &sync), AUTH_OK);
    assert_true(sync);      /* a recent success: no pool round trip */
    /* only successes are cached: a wrong password still pays */
    assert_int_equal(verify(f, "alice@example.test", "alice-secreT", &sync), AUTH_FAIL);
    assert_false(sync);
}

static void test_mechanisms_and_count(void **state)
{
    struct fixture *f = *state;
    assert_string_equal(f->a->ops->name, "file");
    assert_int_equal(f->a->ops->mechanisms(f->a), AUTH_MECH_PLAIN | AUTH_MECH_LOGIN);
    assert_int_equal(f->a->ops->count(f->a), 1);
    assert_false(f->a->ops->has_demo(f->a));
}

static void test_missing_file_is_an_error(void **state)
{
    struct fixture *f = *state;
    snprintf(f->c->users, sizeof f->c->users, "%s/none", f->dir);
    char err[256] = "";
    assert_null(auth_open(f->c, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_answers_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mechanisms_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_an_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
