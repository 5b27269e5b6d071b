/* The Received: header (src/smtp/received.h), byte for byte (SPEC §3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include "smtp/received.h"

/* Fri, 04 Dec 2026 23:00:00 +0000 */
#define AT 1796425200000LL

static void test_plain(void **state)
{
    (void)state;
    struct received_info r = {.helo = "client.test", .ip = "192.0.2.7", .hostname = "mx.test",
                              .proto = "ESMTP", .id = "ABC", .tls = "", .at = AT};
    char out[1024];
    size_t n = received_header(&r, out, sizeof out);
    const char *want = "Received: from client.test ([192.0.2.7])\n\tby mx.test (Portcullis) "
                       "with ESMTP id ABC;\n\tFri, 04 Dec 2026 23:00:00 +0000\n";
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_everything(void **state)
{
    (void)state;
    struct received_info r = {.helo = "[192.0.2.7]", .name = "unknown", .ip = "192.0.2.7",
                              .hostname = "mx.test", .proto = "ESMTPSA", .id = "ABC",
                              .tls = "TLSv1.3 with cipher X", .user = "alice@example.test",
                              .at = AT};
    char out[1024];
    assert_true(received_header(&r, out, sizeof out) > 0);
    assert_string_equal(out, "Received: from [192.0.2.7] (unknown [192.0.2.7])\n"
                             "\tby mx.test (Portcullis) with ESMTPSA id ABC\n"
                             "\t(using TLSv1.3 with cipher X)\n"
                             "\t(authenticated user alice@example.test);\n"
                             "\tFri, 04 Dec 2026 23:00:00 +0000\n");
}

static void test_too_small(void **state)
{
    (void)state;
    struct received_info r = {.helo = "client.test", .ip = "192.0.2.7", .hostname = "mx.test",
                              .proto = "ESMTP", .id = "ABC", .tls = "", .at = AT};
    char out[40];
    assert_int_equal(received_header(&r, out, sizeof out), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_everything),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
