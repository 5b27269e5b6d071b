/* maildir: the Maildir backend of deliver.h (SPEC §3). The message goes to
 * tmp/ as it arrives, then is fsynced, renamed into new/ and new/ fsynced,
 * all on the pool, before end reports OK. The file: Return-Path, one
 * X-Envelope-To per recipient, then what the session wrote (its Received:
 * header, then the message), with LF line ends. */
#include "deliver/deliver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include "base/util.h"

/* Bytes waiting on the event base beyond which a write starts on the pool,
 * and beyond which the client is not read until that write is done: a
 * session holds at most about HOLD_AT of its message in memory. */
#define FLUSH_AT (64 * 1024)
#define HOLD_AT (256 * 1024)

struct deliver_tx {
    struct pool *pool;
    struct pool_mailbox *mb;
    deliver_resume_cb resume;
    void *arg;
    char tmp[CONFIG_PATH_MAX + 300], dst[CONFIG_PATH_MAX + 300], dir[CONFIG_PATH_MAX];
    int fd;                     /* the tmp/ file, opened by the first job */
    struct evbuffer *pending;   /* the event base's: what came since the last job */
    struct evbuffer *writing;   /* the running job's */
    bool job;                   /* a pool job has the file */
    bool held, aborted, ending;
    bool failed;                /* the jobs': the file is gone */
    bool lost;                  /* the event base's: a chunk could not be kept */
    deliver_reply_cb end_cb;
    void *end_arg;
    struct deliver_reply r;     /* the failure, or the result of end */
};

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[CONFIG_PATH_MAX];
    if (util_strlcpy(buf, path, sizeof buf) >= sizeof buf)
        return errno = ENAMETOOLONG, -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, mode) != 0 && errno != EEXIST ? -1 : 0;
}

bool maildir_prepare(const char *maildir, char *err, size_t errlen)
{
    static const char *const subs[] = {"tmp", "new", "cur"};
    char path[CONFIG_PATH_MAX + 8];
    for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
        snprintf(path, sizeof path, "%s/%s", maildir, subs[i]);
        if (mkdir_p(path, 0700) != 0) {
            snprintf(err, errlen, "%s: cannot create: %m", path);
            return false;
        }
    }
    /* Portcullis owns this Maildir: whatever is in tmp/ at start was being
     * written when a daemon died, was never acknowledged, and is garbage. */
    snprintf(path, sizeof path, "%s/tmp", maildir);
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    return true;
}

/* ---- on the pool ------------------------------------------------------- */

static void fail(struct deliver_tx *t, int e, const char *what, const char *path)
{
    bool full = e == ENOSPC || e == EDQUOT;
    deliver_reply_set(&t->r, DELIVER_TEMPFAIL, full ? 452 : 451, full ? "4.3.1" : "4.3.0",
                      full ? "Insufficient system storage"
                           : "Local error in processing, try again later");
    snprintf(t->r.detail, sizeof t->r.detail, "%s %s: %s", what, path, strerror(e));
    t->failed = true;
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    unlink(t->tmp);
}

/* Appends `writing` to the tmp/ file, opening it first if need be. */
static void write_out(struct deliver_tx *t)
{
    if (t->failed) {
        evbuffer_drain(t->writing, evbuffer_get_length(t->writing));
        return;
    }
    if (t->fd < 0) {
        char err[256];
        t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (t->fd < 0 && errno == ENOENT && maildir_prepare(t->dir, err, sizeof err))
            t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (t->fd < 0) {
            fail(t, errno, "open", t->tmp);
            evbuffer_drain(t->writing, evbuffer_get_length(t->writing));
            return;
        }
    }
    /* evbuffer_write drains what it wrote, with writev over the chain. */
    while (evbuffer_get_length(t->writing) > 0) {
        int w = evbuffer_write(t->writing, t->fd);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fail(t, w == 0 ? EIO : errno, "write", t->tmp);
            evbuffer_drain(t->writing, evbuffer_get_length(t->writing));
            return;
        }
    }
}

static void flush_work(void *arg)
{
    write_out(arg);
}

static void end_work(void *arg)
{
    struct deliver_tx *t = arg;
    write_out(t);
    if (t->lost && !t->failed)
        fail(t, ENOMEM, "buffer", t->tmp);
    if (t->failed)
        return;
    if (fsync(t->fd) != 0) {
        fail(t, errno, "write", t->tmp);
        return;
    }
    int e = close(t->fd) != 0 ? errno : 0;
    t->fd = -1;
    if (e != 0) {
        fail(t, e, "close", t->tmp);
        return;
    }
    if (rename(t->tmp, t->dst) != 0) {
        fail(t, errno, "rename", t->dst);
        return;
    }
    /* The rename is durable only once the folder is. Failing here, the
     * file may or may not survive a power cut: not acknowledged, so the
     * client retries; a duplicate beats a loss. */
    char newdir[CONFIG_PATH_MAX + 8];
    snprintf(newdir, sizeof newdir, "%s/new", t->dir);
    int dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        e = errno;
        if (dfd >= 0)
            close(dfd);
        unlink(t->dst);
        fail(t, e, "fsync", newdir);
        return;
    }
    close(dfd);
    deliver_reply_set(&t->r, DELIVER_OK, 250, "2.0.0", "Ok");
}

/* ---- on the event base ------------------------------------------------- */

static void tx_free(struct deliver_tx *t)
{
    if (t->fd >= 0) {
        close(t->fd);
        unlink(t->tmp);
    }
    evbuffer_free(t->pending);
    evbuffer_free(t->writing);
    free(t);
}

static void flush_done(void *arg);
static void end_done(void *arg);

/* Hands what is pending to a job: a flush, or the end. */
static void start_job(struct deliver_tx *t, bool end)
{
    evbuffer_add_buffer(t->writing, t->pending);
    t->job = true;
    if (end)
        pool_submit(t->pool, t->mb, end_work, end_done, t);
    else
        pool_submit(t->pool, t->mb, flush_work, flush_done, t);
}

static void end_done(void *arg)
{
    struct deliver_tx *t = arg;
    t->job = false;
    t->end_cb(t->end_arg, &t->r);
    tx_free(t);
}

static void flush_done(void *arg)
{
    struct deliver_tx *t = arg;
    t->job = false;
    if (t->aborted) {
        tx_free(t);
        return;
    }
    if (t->ending || evbuffer_get_length(t->pending) >= FLUSH_AT) {
        start_job(t, t->ending);
        return;
    }
    if (t->held) {
        t->held = false;
        t->resume(t->arg);
    }
}

static struct deliver *md_open(const struct config *c, char *err, size_t errlen)
{
    if (!maildir_prepare(c->maildir, err, errlen))
        return NULL;
    struct deliver *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->ops = &deliver_maildir;
    return d;
}

static void md_close(struct deliver *d)
{
    free(d);
}

static struct deliver_tx *md_begin(struct deliver *d, const struct config *c, struct pool *pool,
                                   struct pool_mailbox *mb, const struct deliver_envelope *e,
                                   deliver_resume_cb resume, void *arg)
{
    struct deliver_tx *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->pending = evbuffer_new();
    t->writing = evbuffer_new();
    if (t->pending == NULL || t->writing == NULL ||
        evbuffer_add_printf(t->pending, "Return-Path: <%s>\n", e->sender) < 0) {
        if (t->pending)
            evbuffer_free(t->pending);
        if (t->writing)
            evbuffer_free(t->writing);
        free(t);
        return NULL;
    }
    (void)d;
    t->pool = pool;
    t->mb = mb;
    t->resume = resume;
    t->arg = arg;
    t->fd = -1;
    char host[128];
    size_t hn = 0;
    /* '/' and ':' would break the file name (Maildir convention). */
    for (const char *h = c->hostname; *h && hn < sizeof host - 1; h++)
        host[hn++] = *h == '/' || *h == ':' ? '_' : *h;
    host[hn] = '\0';
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char name[256];
    snprintf(name, sizeof name, "%lld.M%06ldP%dQ%s.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
             (int)getpid(), e->queue_id, host);
    util_strlcpy(t->dir, c->maildir, sizeof t->dir);
    snprintf(t->tmp, sizeof t->tmp, "%s/tmp/%s", c->maildir, name);
    snprintf(t->dst, sizeof t->dst, "%s/new/%s", c->maildir, name);
    return t;
}

static void md_rcpt(struct deliver_tx *t, const char *rcpt, deliver_reply_cb cb, void *arg)
{
    struct deliver_reply r;
    if (evbuffer_add_printf(t->pending, "X-Envelope-To: <%s>\n", rcpt) < 0)
        deliver_reply_set(&r, DELIVER_TEMPFAIL, 452, "4.3.1", "Insufficient system resources");
    else
        deliver_reply_set(&r, DELIVER_OK, 250, "2.1.5", "Ok");
    cb(arg, &r);
}

static bool md_write(struct deliver_tx *t, const char *p, size_t n)
{
    /* After a failure the jobs drop what comes; end reports it. */
    if (evbuffer_add(t->pending, p, n) != 0)
        t->lost = true;
    size_t len = evbuffer_get_length(t->pending);
    if (!t->job && len >= FLUSH_AT)
        start_job(t, false);
    else if (t->job && len >= HOLD_AT)
        t->held = true;
    return !t->held;
}

static void md_end(struct deliver_tx *t, deliver_reply_cb cb, void *arg)
{
    t->end_cb = cb;
    t->end_arg = arg;
    t->ending = true;
    t->held = false;
    if (!t->job)
        start_job(t, true);
}

static void md_abort(struct deliver_tx *t)
{
    if (t->job) {
        t->aborted = true;      /* the job's return frees it */
        return;
    }
    tx_free(t);
}

const struct deliver_ops deliver_maildir = {
    "maildir", md_open, md_close, md_begin, md_rcpt, md_write, md_end, md_abort,
};
