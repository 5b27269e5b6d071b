#include "base/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <unistd.h>

struct job {
    STAILQ_ENTRY(job) link;
    pool_fn work, done;
    void *arg;
    struct pool_mailbox *mb;
};

STAILQ_HEAD(job_list, job);

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job_list queue;
    bool stop;
    bool stopped;       /* threads joined: jobs run in the caller */
    int n;
    pthread_t *threads;
};

/* A mailbox is a mutex-protected list plus a pipe that wakes the base. */
struct pool_mailbox {
    pthread_mutex_t mu;
    struct job_list done;
    int fd[2];
    struct event *ev;
};

static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct pool_mailbox *m = arg;
    char buf[256];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    struct job_list todo = STAILQ_HEAD_INITIALIZER(todo);
    pthread_mutex_lock(&m->mu);
    STAILQ_CONCAT(&todo, &m->done);
    pthread_mutex_unlock(&m->mu);
    struct job *j;
    while ((j = STAILQ_FIRST(&todo)) != NULL) {
        STAILQ_REMOVE_HEAD(&todo, link);
        j->done(j->arg);
        free(j);
    }
}

struct pool_mailbox *pool_mailbox_new(struct event_base *base)
{
    struct pool_mailbox *m = calloc(1, sizeof *m);
    if (m == NULL || pipe2(m->fd, O_NONBLOCK | O_CLOEXEC) != 0) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    STAILQ_INIT(&m->done);
    m->ev = event_new(base, m->fd[0], EV_READ | EV_PERSIST, mailbox_drain, m);
    event_add(m->ev, NULL);
    return m;
}

void pool_mailbox_free(struct pool_mailbox *m)
{
    if (m == NULL)
        return;
    event_free(m->ev);
    close(m->fd[0]);
    close(m->fd[1]);
    struct job *j;
    while ((j = STAILQ_FIRST(&m->done)) != NULL) {
        STAILQ_REMOVE_HEAD(&m->done, link);
        free(j);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void deliver(struct pool_mailbox *m, struct job *j)
{
    pthread_mutex_lock(&m->mu);
    bool was_empty = STAILQ_EMPTY(&m->done);
    STAILQ_INSERT_TAIL(&m->done, j, link);
    pthread_mutex_unlock(&m->mu);
    if (was_empty) {
        /* One byte wakes the base; a full pipe means it is awake already. */
        ssize_t w = write(m->fd[1], "", 1);
        (void)w;
    }
}

void pool_post(struct pool_mailbox *m, pool_fn fn, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        abort();
    j->done = fn;
    j->arg = arg;
    deliver(m, j);
}

static void *pool_main(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (STAILQ_EMPTY(&p->queue) && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        struct job *j = STAILQ_FIRST(&p->queue);
        if (j == NULL) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        STAILQ_REMOVE_HEAD(&p->queue, link);
        pthread_mutex_unlock(&p->mu);
        j->work(j->arg);
        if (j->done != NULL && j->mb != NULL)
            deliver(j->mb, j);
        else
            free(j);
    }
}

struct pool *pool_new(int threads)
{
    struct pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    STAILQ_INIT(&p->queue);
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&p->threads[i], NULL, pool_main, p) == 0)
            p->n++;
    return p;
}

bool pool_mailbox_pending(struct pool_mailbox *m)
{
    pthread_mutex_lock(&m->mu);
    bool pending = !STAILQ_EMPTY(&m->done);
    pthread_mutex_unlock(&m->mu);
    return pending;
}

void pool_submit(struct pool *p, struct pool_mailbox *m, pool_fn work, pool_fn done, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        abort();
    j->work = work;
    j->done = done;
    j->arg = arg;
    j->mb = m;
    pthread_mutex_lock(&p->mu);
    if (p->stopped) {
        /* Shutting down (pool_stop): the work runs here, its done as ever
         * through the mailbox. */
        pthread_mutex_unlock(&p->mu);
        work(arg);
        if (done != NULL && m != NULL)
            deliver(m, j);
        else
            free(j);
        return;
    }
    STAILQ_INSERT_TAIL(&p->queue, j, link);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_stop(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    bool was = p->stop;
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (was)
        return;
    for (int i = 0; i < p->n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_lock(&p->mu);
    p->stopped = true;
    pthread_mutex_unlock(&p->mu);
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    pool_stop(p);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
