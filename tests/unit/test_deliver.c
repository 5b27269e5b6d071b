/* The delivery interface (src/deliver/deliver.h) with its Maildir row: a
 * real pool, a real event base, a temporary Maildir. The file is checked
 * byte for byte (SPEC §3); a big message makes write() hold the session
 * back and resume it; abort and a refused message leave nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include "base/util.h"
#include "deliver/deliver.h"

struct fixture {
    char dir[64];
    struct config *c;
    struct pool *pool;
    struct event_base *base;
    struct pool_mailbox *mb;
    struct deliver *d;
    /* what the callbacks saw */
    int replies, resumes;
    struct deliver_reply last;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/portcullis-deliver-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->c = config_defaults(f->dir);
    snprintf(f->c->maildir, sizeof f->c->maildir, "%s/mail", f->dir);
    util_strlcpy(f->c->hostname, "mx.test:x/y", sizeof f->c->hostname);
    f->pool = pool_new(2);
    f->base = event_base_new();
    f->mb = pool_mailbox_new(f->base);
    char err[256];
    const struct deliver_ops *ops = deliver_backend(DELIVER_MAILDIR);
    assert_ptr_equal(ops, &deliver_maildir);
    f->d = ops->open(f->c, err, sizeof err);
    assert_non_null(f->d);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    f->d->ops->close(f->d);
    pool_free(f->pool);
    pool_mailbox_free(f->mb);
    event_base_free(f->base);
    config_unref(f->c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void on_reply(void *arg, const struct deliver_reply *r)
{
    struct fixture *f = arg;
    f->replies++;
    f->last = *r;
}

static void on_resume(void *arg)
{
    struct fixture *f = arg;
    f->resumes++;
}

/* Runs the event base until `n` replies came (bounded: 10 s). */
static void wait_replies(struct fixture *f, int n)
{
    int64_t until = util_mono_ms() + 10000;
    while (f->replies < n && util_mono_ms() < until)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
    assert_int_equal(f->replies, n);
}

/* The names in <maildir>/<sub>, and the content of the last one. */
static int files_in(struct fixture *f, const char *sub, char *path, size_t pathlen)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", f->c->maildir, sub);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            n++;
            snprintf(path, pathlen, "%s/%s", dir, de->d_name);
        }
    closedir(d);
    return n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static struct deliver_tx *begin(struct fixture *f, const char *id)
{
    struct addr a;
    assert_true(addr_parse("192.0.2.7", false, &a));
    struct deliver_envelope e = {
        .queue_id = id, .session = "S1", .sender = "alice@example.test", .client = &a,
        .client_port = 4242, .helo = "client.test", .user = "alice@example.test",
        .proto = "ESMTPA",
    };
    struct deliver_tx *t = f->d->ops->begin(f->d, f->c, f->pool, f->mb, &e, on_resume, f);
    assert_non_null(t);
    return t;
}

static void rcpt(struct fixture *f, struct deliver_tx *t, const char *who)
{
    int before = f->replies;
    f->d->ops->rcpt(t, who, on_reply, f);
    wait_replies(f, before + 1);
    assert_int_equal(f->last.status, DELIVER_OK);
    assert_int_equal(f->last.code, 250);
    assert_string_equal(f->last.enhanced, "2.1.5");
}

static void test_small_message_byte_exact(void **state)
{
    struct fixture *f = *state;
    struct deliver_tx *t = begin(f, "ABCDEF0123456789");
    rcpt(f, t, "bob@example.test");
    rcpt(f, t, "carol@example.org");
    const char *chunks[] = {"Received: from x\n", "Subject: hi\n\n", "body\n"};
    for (size_t i = 0; i < ARRAY_LEN(chunks); i++)
        assert_true(f->d->ops->write(t, chunks[i], strlen(chunks[i])));
    f->d->ops->end(t, on_reply, f);
    wait_replies(f, 3);
    assert_int_equal(f->last.status, DELIVER_OK);
    char path[512];
    assert_int_equal(files_in(f, "tmp", path, sizeof path), 0);
    assert_int_equal(files_in(f, "new", path, sizeof path), 1);
    /* ':' and '/' of the host name become '_' in the file name. */
    assert_non_null(strstr(path, "QABCDEF0123456789.mx.test_x_y"));
    size_t len;
    char *got = slurp(path, &len);
    const char *want = "Return-Path: <alice@example.test>\n"
                       "X-Envelope-To: <bob@example.test>\n"
                       "X-Envelope-To: <carol@example.org>\n"
                       "Received: from x\nSubject: hi\n\nbody\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    free(got);
}

/* Much more than the backend keeps in memory: write() says stop, resume
 * comes once the pool wrote it out, and every byte arrives in order. */
static void test_big_message_holds_and_resumes(void **state)
{
    struct fixture *f = *state;
    struct deliver_tx *t = begin(f, "00000000000000B1");
    rcpt(f, t, "bob@example.test");
    char line[1000];
    size_t total = 0, held = 0;
    for (int i = 0; i < 4000; i++) {
        int n = snprintf(line, sizeof line, "%06d %0900d\n", i, 0);
        total += (size_t)n;
        if (!f->d->ops->write(t, line, (size_t)n)) {
            held++;
            int64_t until = util_mono_ms() + 10000;
            int r = f->resumes;
            while (f->resumes == r && util_mono_ms() < until)
                event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(500);
            assert_int_equal(f->resumes, r + 1);
        }
    }
    assert_true(held > 0);
    f->d->ops->end(t, on_reply, f);
    wait_replies(f, 2);
    assert_int_equal(f->last.status, DELIVER_OK);
    char path[512];
    assert_int_equal(files_in(f, "new", path, sizeof path), 1);
    size_t len;
    char *got = slurp(path, &len);
    size_t head = strlen("Return-Path: <alice@example.test>\nX-Envelope-To: <bob@example.test>\n");
    assert_int_equal(len, head + total);
    for (int i = 0; i < 4000; i += 999) {
        snprintf(line, sizeof line, "%06d ", i);
        assert_memory_equal(got + head + (size_t)i * 908, line, 7);
    }
    free(got);
}

/* Abort, with and without a write on the pool: nothing stays anywhere. */
static void test_abort_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct deliver_tx *t = begin(f, "00000000000000A1");
    rcpt(f, t, "bob@example.test");
    f->d->ops->abort(t);
    t = begin(f, "00000000000000A2");
    rcpt(f, t, "bob@example.test");
    static char big[200 * 1024];
    memset(big, 'x', sizeof big);
    f->d->ops->write(t, big, sizeof big);    /* starts a write on the pool */
    f->d->ops->abort(t);
    pool_free(f->pool);                      /* the write finishes ... */
    f->pool = pool_new(2);
    event_base_loop(f->base, EVLOOP_NONBLOCK);   /* ... and its return frees */
    char path[512];
    assert_int_equal(files_in(f, "tmp", path, sizeof path), 0);
    assert_int_equal(files_in(f, "new", path, sizeof path), 0);
    assert_int_equal(f->resumes, 0);
}

/* A Maildir that cannot be written: 451 4.3.0 with the reason, no file. */
static void test_failure_is_temporary(void **state)
{
    struct fixture *f = *state;
    char bad[256];
    snprintf(bad, sizeof bad, "%s/file", f->dir);
    FILE *fp = fopen(bad, "w");
    assert_non_null(fp);
    fclose(fp);
    util_strlcpy(f->c->maildir, bad, sizeof f->c->maildir);   /* a file, not a folder */
    struct deliver_tx *t = begin(f, "00000000000000F1");
    rcpt(f, t, "bob@example.test");
    assert_true(f->d->ops->write(t, "x\n", 2));
    f->d->ops->end(t, on_reply, f);
    wait_replies(f, 2);
    assert_int_equal(f->last.status, DELIVER_TEMPFAIL);
    assert_int_equal(f->last.code, 451);
    assert_string_equal(f->last.enhanced, "4.3.0");
    assert_non_null(strstr(f->last.detail, "open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_message_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_message_holds_and_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_is_temporary, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
