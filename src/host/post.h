/* Work handed to the loop thread from any thread (cp2p_host_post): a
 * mutex-guarded queue and a uv_async_t that wakes the loop. Loop thread for
 * everything but post_push. */
#ifndef CP2P_HOST_POST_H
#define CP2P_HOST_POST_H

#include <uv.h>

typedef struct host_post host_post_t;

int post_new(uv_loop_t *loop, host_post_t **out);
/* Any thread. CP2P_ESTATE once post_close began, CP2P_ENOMEM. */
int post_push(host_post_t *q, void (*fn)(void *arg), void *arg);
/* Refuse new work, run what is queued, close the handle; closed(arg) runs
 * once q is gone. */
void post_close(host_post_t *q, void (*closed)(void *arg), void *arg);

#endif
