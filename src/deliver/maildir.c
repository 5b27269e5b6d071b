#include "deliver/deliver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "base/config.h"
#include "base/util.h"

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

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_body(int fd, struct evbuffer *body)
{
    /* evbuffer_write drains what it wrote, with writev over the chain. */
    while (evbuffer_get_length(body) > 0) {
        int w = evbuffer_write(body, fd);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0)
            return errno = EIO, -1;
    }
    return 0;
}

static enum deliver_result failed(int e, const char *what, const char *path, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    return e == ENOSPC || e == EDQUOT ? DELIVER_NOSPACE : DELIVER_TEMPFAIL;
}

enum deliver_result maildir_deliver(const char *maildir, const char *hostname,
                                    const char *id, const char *head, size_t headlen,
                                    struct evbuffer *body, char *err, size_t errlen)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char host[128];
    size_t hn = 0;
    /* '/' and ':' would break the file name (Maildir convention). */
    for (const char *h = hostname; *h && hn < sizeof host - 1; h++)
        host[hn++] = *h == '/' ? '_' : *h == ':' ? '_' : *h;
    host[hn] = '\0';
    char name[256], tmp[CONFIG_PATH_MAX + 300], dst[CONFIG_PATH_MAX + 300], newdir[CONFIG_PATH_MAX + 8];
    snprintf(name, sizeof name, "%lld.M%06ldP%dQ%s.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
             (int)getpid(), id, host);
    snprintf(tmp, sizeof tmp, "%s/tmp/%s", maildir, name);
    snprintf(dst, sizeof dst, "%s/new/%s", maildir, name);
    snprintf(newdir, sizeof newdir, "%s/new", maildir);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && maildir_prepare(maildir, err, errlen))
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return failed(errno, "open", tmp, err, errlen);
    if (write_all(fd, head, headlen) != 0 || write_body(fd, body) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return failed(e, "write", tmp, err, errlen);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return failed(e, "close", tmp, err, errlen);
    }
    if (rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return failed(e, "rename", dst, err, errlen);
    }
    /* The rename is durable only once the folder is. Failing here, the
     * file may or may not survive a power cut: not acknowledged, so the
     * client retries; a duplicate beats a loss. */
    int dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        unlink(dst);
        return failed(e, "fsync", newdir, err, errlen);
    }
    close(dfd);
    return DELIVER_OK;
}
