/* cp2p_host_post: work posted from other threads runs on the loop thread,
 * all of it, each thread's in its order; work posted while the host closes
 * runs before close's done, and after that the host refuses more. Built
 * with ThreadSanitizer too (scripts/test.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <cmocka.h>
#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/host.h"

#define THREADS 4
#define EACH 5000

typedef struct item {
    struct world *w;
    int thread, seq;
} item_t;

typedef struct world {
    cp2p_host_t *h;
    uv_thread_t loop_thread;
    int next[THREADS]; /* loop thread only */
    int ran, out_of_order, off_loop;
    int done, ran_at_done;
    int reposts, refused;
} world_t;

static void work(void *arg)
{
    item_t *it = arg;
    world_t *w = it->w;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &w->loop_thread))
        w->off_loop++;
    if (it->seq != w->next[it->thread])
        w->out_of_order++;
    w->next[it->thread] = it->seq + 1;
    w->ran++;
    free(it);
}

/* Posts itself again, from the loop thread, until the host refuses. */
static void repost(void *arg)
{
    world_t *w = arg;
    w->reposts++;
    int rc = cp2p_host_post(w->h, repost, w);
    if (rc < 0)
        w->refused = rc;
}

typedef struct poster {
    world_t *w;
    int thread, n, accepted;
} poster_t;

static void poster(void *arg)
{
    poster_t *p = arg;
    for (int i = 0; i < p->n; i++) {
        item_t *it = malloc(sizeof *it);
        *it = (item_t){p->w, p->thread, p->accepted};
        if (cp2p_host_post(p->w->h, work, it) == 0) {
            p->accepted++;
        } else {
            free(it);
            break; /* closed: nothing more is taken */
        }
    }
}

static void on_closed(void *arg)
{
    world_t *w = arg;
    w->done = 1;
    w->ran_at_done = w->ran;
}

static void test_post_from_threads(void **state)
{
    uv_loop_t loop;
    world_t w = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    w.loop_thread = uv_thread_self();
    assert_int_equal(cp2p_host_new(&loop, NULL, &w.h), 0);
    assert_int_equal(cp2p_host_post(w.h, NULL, NULL), CP2P_EINVAL);

    uv_thread_t t[THREADS];
    poster_t p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (poster_t){&w, i, EACH, 0};
        assert_int_equal(uv_thread_create(&t[i], poster, &p[i]), 0);
    }
    while (w.ran < THREADS * EACH)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(w.ran, THREADS * EACH);
    assert_int_equal(w.out_of_order, 0);
    assert_int_equal(w.off_loop, 0);

    /* posting while the host closes: what is taken runs before done, and
     * a post once the queue closed is refused (done must then be near) */
    for (int i = 0; i < THREADS; i++) {
        w.next[i] = 0;
        p[i] = (poster_t){&w, i, 2000, 0};
    }
    w.ran = 0;
    cp2p_host_close(w.h, on_closed, &w);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(uv_thread_create(&t[i], poster, &p[i]), 0);
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&t[i]); /* the program stops posting before done */
    assert_int_equal(cp2p_host_post(w.h, repost, &w), 0);
    while (!w.done)
        uv_run(&loop, UV_RUN_ONCE);
    int accepted = 0;
    for (int i = 0; i < THREADS; i++)
        accepted += p[i].accepted;
    assert_int_equal(accepted, THREADS * 2000);
    assert_int_equal(w.ran_at_done, accepted);
    assert_int_equal(w.out_of_order, 0);
    assert_true(w.reposts >= 1);
    assert_int_equal(w.refused, CP2P_ESTATE); /* the last repost, during the close */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_from_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
