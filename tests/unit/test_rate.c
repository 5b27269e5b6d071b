/* The rate counter (src/base/rate.h) against the shared vector
 * tests/vectors/rate.txt (its path is the first argument); the Lua copy in
 * store/redis.c runs the same file in tests/integration/test_store_rate.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "base/rate.h"

static const char *vector_path;

static void test_vector(void **state)
{
    (void)state;
    FILE *fp = fopen(vector_path, "r");
    if (fp == NULL)
        fail_msg("cannot open %s", vector_path);
    struct rate r = {0};
    char line[256], op[8];
    long long now, win;
    unsigned want;
    int steps = 0, lineno = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%7s %lld %lld %u", op, &now, &win, &want) != 4)
            fail_msg("%s:%d: cannot parse", vector_path, lineno);
        uint32_t got;
        if (strcmp(op, "new") == 0) {
            memset(&r, 0, sizeof r);
            continue;
        } else if (strcmp(op, "add") == 0) {
            got = rate_add(&r, now, win);
        } else if (strcmp(op, "est") == 0) {
            got = rate_estimate(&r, now, win);
        } else {
            fail_msg("%s:%d: unknown step %s", vector_path, lineno, op);
        }
        if (got != want)
            fail_msg("%s:%d: %s at %lld: got %u, want %u", vector_path, lineno, op, now, got, want);
        steps++;
    }
    fclose(fp);
    assert_true(steps >= 20);
}

/* first: the first event since the counter was last empty. */
static void test_first_event(void **state)
{
    (void)state;
    struct rate r = {0};
    rate_add(&r, 1000, 1000);
    rate_add(&r, 1500, 1000);
    assert_int_equal(r.first, 1000);
    rate_add(&r, 5000, 1000);       /* empty again by then */
    assert_int_equal(r.first, 5000);
}

int main(int argc, char **argv)
{
    vector_path = argc > 1 ? argv[1] : "tests/vectors/rate.txt";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_first_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
