/* Work handed to the loop from other threads: see post.h. Each push holds
 * the lock across uv_async_send, and post_close sets `closed` under the same
 * lock before the handle closes, so no send can reach a closing handle. */
#include <pthread.h>
#include <stdlib.h>

#include "cp2p/error.h"
#include "host/post.h"

typedef struct post {
    struct post *next;
    void (*fn)(void *arg);
    void *arg;
} post_t;

struct host_post {
    uv_async_t async;
    pthread_mutex_t mu;
    post_t *head, *tail;
    int closed;
    void (*closed_cb)(void *arg);
    void *closed_arg;
};

/* Everything queued now, in order; what comes meanwhile waits for the next wake-up. */
static void run_queued(host_post_t *q)
{
    pthread_mutex_lock(&q->mu);
    post_t *p = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    while (p) {
        post_t *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

static void on_async(uv_async_t *a)
{
    run_queued(a->data);
}

int post_new(uv_loop_t *loop, host_post_t **out)
{
    host_post_t *q = calloc(1, sizeof *q);
    if (!q)
        return CP2P_ENOMEM;
    if (pthread_mutex_init(&q->mu, NULL)) {
        free(q);
        return CP2P_ENOMEM;
    }
    if (uv_async_init(loop, &q->async, on_async)) {
        pthread_mutex_destroy(&q->mu);
        free(q);
        return CP2P_ENOMEM;
    }
    q->async.data = q;
    *out = q;
    return 0;
}

int post_push(host_post_t *q, void (*fn)(void *arg), void *arg)
{
    post_t *p = malloc(sizeof *p);
    if (!p)
        return CP2P_ENOMEM;
    *p = (post_t){NULL, fn, arg};
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        free(p);
        return CP2P_ESTATE;
    }
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
    uv_async_send(&q->async);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    host_post_t *q = h->data;
    void (*cb)(void *) = q->closed_cb;
    void *arg = q->closed_arg;
    pthread_mutex_destroy(&q->mu);
    free(q);
    if (cb)
        cb(arg);
}

void post_close(host_post_t *q, void (*closed)(void *arg), void *arg)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_mutex_unlock(&q->mu);
    run_queued(q); /* accepted before the close: still run */
    q->closed_cb = closed;
    q->closed_arg = arg;
    uv_close((uv_handle_t *)&q->async, on_closed);
}
