/* Fuzzes the configuration loader: the input is written to a file in a
 * per-process temporary folder (made once) and read with config_load. */
#include <stdbool.h>
#include <unistd.h>
#include "fuzz_common.h"
#include "base/config.h"

static char dir[256];
static char file[300];

static void cleanup(void)
{
    if (file[0])
        unlink(file);
    if (dir[0])
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/portcullis-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    snprintf(file, sizeof file, "%s/portcullis.conf", dir);
    atexit(cleanup);
    return 0;
}

static bool path_field_ok(const char *p)
{
    return strnlen(p, CONFIG_PATH_MAX) < CONFIG_PATH_MAX && (p[0] == '\0' || p[0] == '/');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();

    size_t errlen = 512;
    char *err = malloc(errlen);
    if (err == NULL)
        abort();
    err[0] = '\0';
    struct config *c = config_load(file, err, errlen);
    if (c == NULL) {
        /* "FILE:LINE: [section] key: problem" or "FILE: problem". */
        CHECK(err[0] != '\0' && strnlen(err, errlen) < errlen);
        CHECK(strncmp(err, file, strlen(file)) == 0 && err[strlen(file)] == ':');
    } else {
        CHECK(c->nlisten >= 1 && c->nlisten <= CONFIG_MAX_LISTEN);
        CHECK(c->nbans >= 1 && c->nbans <= CONFIG_MAX_BANS);
        for (int i = 0; i < c->nbans; i++)
            CHECK(c->ban_ms[i] > 0);
        CHECK(c->workers >= 1 && c->workers <= 256);
        CHECK(c->ipv4_prefix >= 8 && c->ipv4_prefix <= 32);
        CHECK(c->ipv6_prefix >= 16 && c->ipv6_prefix <= 128);
        CHECK(c->max_message_size >= 1024);
        CHECK(c->timeout_command_ms >= 1 && c->timeout_data_ms >= 1);
        CHECK(c->failure_delay_ms >= 0);
        CHECK(c->mech_plain || c->mech_login);
        CHECK(c->permanent_after >= 0 && c->permanent_after <= CONFIG_MAX_PERMANENT_AFTER);
        CHECK((c->tls_cert[0] == '\0') == (c->tls_key[0] == '\0'));
        CHECK(path_field_ok(c->tls_cert) && path_field_ok(c->tls_key));
        CHECK(path_field_ok(c->users) && path_field_ok(c->store_path));
        CHECK(path_field_ok(c->maildir) && path_field_ok(c->control_socket));
        CHECK(path_field_ok(c->http_token_file));
        CHECK(strnlen(c->hostname, sizeof c->hostname) < sizeof c->hostname);
        CHECK(strnlen(c->reject_text, sizeof c->reject_text) < sizeof c->reject_text);
        for (int k = 0; k <= c->nbans + 2; k++) {
            int64_t ms = config_ban_ms(c, k);
            CHECK(ms == -1 || ms > 0);
        }
        struct config *r = config_ref(c);
        CHECK(r == c);
        config_unref(r);
        config_unref(c);
    }
    free(err);
    return 0;
}
