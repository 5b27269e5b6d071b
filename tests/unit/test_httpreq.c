/* Unit tests for src/admin/httpreq.h (the token file, query strings, JSON
 * bodies of the admin HTTP API) and src/admin/selfserve.h (what the
 * self-service page tells and hides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "admin/httpreq.h"
#include "admin/selfserve.h"

static struct httpreq_tokens tok;
static char err[256];

static void tokens_ok(const char *text)
{
    if (!httpreq_tokens_parse(text, strlen(text), &tok, err, sizeof err))
        fail_msg("tokens %s refused: %s", text, err);
}

static void tokens_bad(const char *text, const char *want)
{
    if (httpreq_tokens_parse(text, strlen(text), &tok, err, sizeof err))
        fail_msg("tokens %s accepted", text);
    if (strstr(err, want) == NULL)
        fail_msg("error '%s' does not say '%s'", err, want);
}

static void test_tokens_names_and_bare(void **state)
{
    (void)state;
    tokens_ok("# comment\n\ndesk:0123456789abcdefXYZ\r\n0123456789abcdef-bare\nmon.1@x_y-z:ffffffffffffffff");
    assert_int_equal(tok.n, 3);
    assert_string_equal(tok.v[0].name, "desk");
    assert_string_equal(tok.v[1].name, "api");
    assert_string_equal(tok.v[2].name, "mon.1@x_y-z");
    assert_string_equal(httpreq_tokens_check(&tok, "Bearer 0123456789abcdefXYZ"), "desk");
    assert_string_equal(httpreq_tokens_check(&tok, "bearer  0123456789abcdef-bare "), "api");
    assert_string_equal(httpreq_tokens_check(&tok, "Bearer ffffffffffffffff"), "mon.1@x_y-z");
    /* a prefix, an extension, another scheme, nothing */
    assert_null(httpreq_tokens_check(&tok, "Bearer 0123456789abcdefXY"));
    assert_null(httpreq_tokens_check(&tok, "Bearer 0123456789abcdefXYZZ"));
    assert_null(httpreq_tokens_check(&tok, "Basic 0123456789abcdefXYZ"));
    assert_null(httpreq_tokens_check(&tok, "Bearer "));
    assert_null(httpreq_tokens_check(&tok, NULL));
    char longer[400];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    memcpy(longer, "Bearer ", 7);
    assert_null(httpreq_tokens_check(&tok, longer));
}

static void test_tokens_refused(void **state)
{
    (void)state;
    tokens_bad("", "no token");
    tokens_bad("# only a comment\n", "no token");
    tokens_bad("desk:short", "line 1: TOKEN shorter than 16");
    tokens_bad("ok:0123456789abcdef\n:0123456789abcdef", "line 2: empty NAME");
    tokens_bad("de sk:0123456789abcdef", "NAME may hold");
    tokens_bad("desk:0123456789 abcdef", "space or a control");
    tokens_bad("desk:0123456789\tabcdef", "space or a control");
    char big[400] = "desk:";
    memset(big + 5, 'a', 300);
    tokens_bad(big, "longer than 256");
    char name[100];
    memset(name, 'n', 70);
    strcpy(name + 70, ":0123456789abcdef");
    tokens_bad(name, "NAME longer than 63");
    /* 65 tokens */
    static char many[65 * 40];
    many[0] = '\0';
    for (int i = 0; i < 65; i++)
        strcat(many, "t:0123456789abcdef0123\n");
    tokens_bad(many, "line 65: more than 64 tokens");
    char nul[] = "desk:0123456789abcdef\0x";
    assert_false(httpreq_tokens_parse(nul, sizeof nul - 1, &tok, err, sizeof err));
}

static void test_query(void **state)
{
    (void)state;
    char v[64];
    assert_true(httpreq_query_get("ip=203.0.113.7&kind=all", "ip", v, sizeof v));
    assert_string_equal(v, "203.0.113.7");
    assert_true(httpreq_query_get("a=1&kind=perm%61nent", "kind", v, sizeof v));
    assert_string_equal(v, "permanent");
    assert_true(httpreq_query_get("ip=2001%3Adb8%3A%3A1%2F64", "ip", v, sizeof v));
    assert_string_equal(v, "2001:db8::1/64");
    assert_true(httpreq_query_get("x=a+b&x=second", "x", v, sizeof v));
    assert_string_equal(v, "a b");
    assert_true(httpreq_query_get("flag", "flag", v, sizeof v));
    assert_string_equal(v, "");
    assert_false(httpreq_query_get("ipx=1", "ip", v, sizeof v));
    assert_false(httpreq_query_get("i=1", "ip", v, sizeof v));
    assert_false(httpreq_query_get("ip=%4", "ip", v, sizeof v));
    assert_false(httpreq_query_get("ip=%zz", "ip", v, sizeof v));
    assert_false(httpreq_query_get("ip=%00", "ip", v, sizeof v));
    assert_false(httpreq_query_get(NULL, "ip", v, sizeof v));
    assert_false(httpreq_query_get("ip=0123456789", "ip", v, 5));
    /* %-encoded key */
    assert_true(httpreq_query_get("%69p=1.2.3.4", "ip", v, sizeof v));
    assert_string_equal(v, "1.2.3.4");
}

static void test_ip_and_list_queries(void **state)
{
    (void)state;
    struct ctlreq r;
    char e[CTLREQ_ERR_MAX];
    assert_true(httpreq_ip_query(CTLREQ_STATUS, "ip=203.0.113.7", "desk", &r, e));
    assert_int_equal(r.cmd, CTLREQ_STATUS);
    assert_string_equal(r.ip, "203.0.113.7");
    assert_string_equal(r.by, "desk");
    assert_false(httpreq_ip_query(CTLREQ_HISTORY, "ip=nope", "desk", &r, e));
    assert_string_equal(e, "not an address or prefix: nope");
    assert_false(httpreq_ip_query(CTLREQ_HISTORY, NULL, "desk", &r, e));
    assert_string_equal(e, "not an address or prefix: (none)");
    assert_true(httpreq_list_query(NULL, "desk", &r, e));
    assert_int_equal(r.filter, CTLREQ_ALL);
    assert_true(httpreq_list_query("kind=permanent", "desk", &r, e));
    assert_int_equal(r.filter, CTLREQ_PERMANENT);
    assert_true(httpreq_list_query("kind=temporary", "desk", &r, e));
    assert_int_equal(r.filter, CTLREQ_TEMPORARY);
    assert_false(httpreq_list_query("kind=old", "desk", &r, e));
    assert_string_equal(e, "kind is all, permanent or temporary");
}

static bool body(enum ctlreq_cmd c, const char *json, struct ctlreq *r, char e[CTLREQ_ERR_MAX])
{
    return httpreq_body(c, json, strlen(json), "desk", r, e);
}

static void test_bodies(void **state)
{
    (void)state;
    struct ctlreq r;
    char e[CTLREQ_ERR_MAX];
    assert_true(body(CTLREQ_BLOCK, "{\"ip\":\"203.0.113.7\",\"for\":\"2h\",\"reason\":\"spam\"}", &r, e));
    assert_int_equal(r.duration_ms, 7200000);
    assert_string_equal(r.reason, "spam");
    assert_string_equal(r.by, "desk");
    assert_true(body(CTLREQ_BLOCK, "{\"ip\":\"203.0.113.0/24\",\"permanent\":true}", &r, e));
    assert_int_equal(r.duration_ms, -1);
    assert_string_equal(r.ip, "203.0.113.0/24");
    assert_true(body(CTLREQ_BLOCK, "{\"ip\":\"::1\",\"for\":90,\"permanent\":false}", &r, e));
    assert_int_equal(r.duration_ms, 90000);
    assert_true(body(CTLREQ_UNBLOCK, "{\"ip\":\"::1\",\"reason\":null}", &r, e));
    assert_string_equal(r.reason, "");

    static const struct {
        enum ctlreq_cmd c;
        const char *json, *want;
    } bad[] = {
        {CTLREQ_BLOCK, "", "the body is not a JSON object"},
        {CTLREQ_BLOCK, "[]", "the body is not a JSON object"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\"}", "for is a duration"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\",\"for\":\"-1h\"}", "for is a duration"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\",\"for\":0}", "for is a duration"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\",\"for\":\"101000d\"}", "for is a duration"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\",\"permanent\":\"yes\"}", "permanent is true or false"},
        {CTLREQ_BLOCK, "{\"ip\":\"1.2.3.4\",\"permanent\":true,\"for\":\"1h\"}", "give \"for\" or \"permanent\", not both"},
        {CTLREQ_UNBLOCK, "{\"ip\":5}", "not an address or prefix: (none)"},
        {CTLREQ_UNBLOCK, "{\"ip\":\"1.2.3.4\",\"reason\":[]}", "reason is a string"},
        {CTLREQ_UNBLOCK, "{\"ip\":\"1.2.3.4\",\"ip\":\"1.2.3.5\"}", "the body is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (body(bad[i].c, bad[i].json, &r, e))
            fail_msg("%s accepted", bad[i].json);
        if (strncmp(e, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("%s: '%s', not '%s'", bad[i].json, e, bad[i].want);
    }
    char *big = malloc(HTTPREQ_BODY_MAX + 2);
    memset(big, ' ', HTTPREQ_BODY_MAX + 1);
    big[HTTPREQ_BODY_MAX + 1] = '\0';
    assert_false(httpreq_body(CTLREQ_BLOCK, big, HTTPREQ_BODY_MAX + 1, "desk", &r, e));
    assert_string_equal(e, "the body is over 64 KB");
    free(big);
}

static void test_selfserve_hides_the_desks_business(void **state)
{
    (void)state;
    assert_int_equal(selfserve_format_of("format=json"), SELFSERVE_JSON);
    assert_int_equal(selfserve_format_of("ip=1.2.3.4&format=text"), SELFSERVE_TEXT);
    assert_int_equal(selfserve_format_of("format=jsonx"), SELFSERVE_HTML);
    assert_int_equal(selfserve_format_of(NULL), SELFSERVE_HTML);
    json_error_t je;
    json_t *st = json_loads(
        "{\"address\":\"203.0.113.7\",\"prefix\":\"203.0.113.7/32\",\"state\":\"clear\",\"block\":null,"
        "\"last_block\":{\"id\":\"AB\",\"address\":\"203.0.113.7/32\",\"state\":\"lifted\","
        "\"reason\":\"auth_failures\",\"started_at\":\"2026-01-02T03:04:05.000Z\","
        "\"first_event_at\":\"2026-01-02T03:00:00.000Z\",\"last_event_at\":\"2026-01-02T03:04:05.000Z\","
        "\"lifted_by\":\"desk\",\"lift_reason\":\"<secret>\",\"node\":\"mx1\",\"note\":\"internal\"},"
        "\"counters\":{\"auth_failures\":4},\"offenses\":2}", 0, &je);
    assert_non_null(st);
    for (int f = SELFSERVE_HTML; f <= SELFSERVE_TEXT; f++) {
        size_t len;
        const char *type;
        char *out = selfserve_render(st, (enum selfserve_format)f, &len, &type);
        assert_non_null(out);
        assert_int_equal(strlen(out), len);
        assert_non_null(strstr(out, "203.0.113.7"));
        assert_non_null(strstr(out, "03:00:00"));
        static const char *const hidden[] = {"desk", "secret", "mx1", "internal", "offenses", "counters"};
        for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
            if (strstr(out, hidden[i]) != NULL)
                fail_msg("format %d tells '%s': %s", f, hidden[i], out);
        free(out);
    }
    json_decref(st);
    assert_string_equal(selfserve_reason_words("conn_rate"), "too many new connections in a short time");
    assert_string_equal(selfserve_reason_words("whatever"), "an abuse rule");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_names_and_bare),
        cmocka_unit_test(test_tokens_refused),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_ip_and_list_queries),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_selfserve_hides_the_desks_business),
    };
    return cmocka_run_group_tests_name("httpreq", tests, NULL, NULL);
}
