/* Kademlia store writes off the loop thread (DESIGN.md: blocking work goes to
 * libuv's pool): an LMDB commit syncs to disk, so PUT_VALUE, ADD_PROVIDER,
 * expiry and table saves are queued and run one at a time on the pool, in the
 * order they were asked for (two writes to one key land in order). A write's
 * callback runs on the loop once the commit returned, so an acknowledgement
 * given from it survives kill -9. Reads stay on the loop: they are mmap
 * lookups that never wait for the writer. The memory store cannot be touched
 * off the loop, so its writes run in the completion instead (same order, same
 * callback timing). */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "kad/kad_rpc.h"

typedef enum { W_RECORD, W_PROVIDER, W_PEERS, W_EXPIRE } wkind_t;

struct kad_write {
    kad_write_t *next;
    cp2p_dht_t *d;
    uv_work_t work;
    wkind_t kind;
    uint8_t *key, *value;
    size_t key_len, value_len;
    cp2p_peer_id_t peer;
    uint64_t now_ms;
    cp2p_kad_saved_peer_t *peers;
    size_t n_peers;
    int rc;
    kad_write_done_fn done;
    void *arg;
};

static void w_free(kad_write_t *w)
{
    free(w->key);
    free(w->value);
    free(w->peers);
    free(w);
}

static void w_exec(kad_write_t *w)
{
    cp2p_kad_store_t *s = w->d->store;
    switch (w->kind) {
    case W_RECORD:
        w->rc = cp2p_kad_store_put_record(s, w->key, w->key_len, w->value, w->value_len,
                                          w->now_ms);
        break;
    case W_PROVIDER:
        w->rc = cp2p_kad_store_add_provider(s, w->key, w->key_len, &w->peer, w->now_ms);
        break;
    case W_PEERS:
        w->rc = cp2p_kad_store_save_peers(s, w->peers, w->n_peers);
        break;
    case W_EXPIRE:
        w->rc = cp2p_kad_store_expire(s, w->now_ms);
        break;
    }
}

static void on_work(uv_work_t *req)
{
    kad_write_t *w = req->data;
    if (w->d->store->blocking)
        w_exec(w);
}

static void submit_next(cp2p_dht_t *d);

static void on_work_done(uv_work_t *req, int status)
{
    kad_write_t *w = req->data;
    cp2p_dht_t *d = w->d;
    d->writing = NULL;
    if (!d->store->blocking)
        w_exec(w);
    if (w->rc < 0 && w->kind != W_RECORD && w->kind != W_PROVIDER)
        cp2p_log_warn("kad", "datastore write: %s", cp2p_strerror(w->rc));
    if (w->done)
        w->done(d, w->rc, w->arg);
    w_free(w);
    submit_next(d);
}

static void submit_next(cp2p_dht_t *d)
{
    kad_write_t *w = d->writes;
    if (d->writing)
        return;
    if (!w) {
        if (d->writes_closing)
            kad_store_closed(d);
        return;
    }
    d->writes = w->next;
    if (!d->writes)
        d->writes_tail = NULL;
    d->n_writes--;
    /* A table save takes its snapshot now, so a queued save always writes
     * the table as it is when the disk gets to it. */
    if (w->kind == W_PEERS && !w->peers) {
        w->rc = kad_snapshot_peers(d, &w->peers, &w->n_peers);
        if (w->rc < 0) {
            w_free(w);
            submit_next(d);
            return;
        }
    }
    d->writing = w;
    w->work.data = w;
    int rc = uv_queue_work(d->loop, &w->work, on_work, on_work_done);
    if (rc < 0) { /* only on a bad argument: run it here rather than lose it */
        w_exec(w);
        on_work_done(&w->work, 0);
    }
}

static int enqueue(cp2p_dht_t *d, kad_write_t *w)
{
    w->d = d;
    w->next = NULL;
    if (d->writes_tail)
        d->writes_tail->next = w;
    else
        d->writes = w;
    d->writes_tail = w;
    d->n_writes++;
    submit_next(d);
    return 0;
}

static kad_write_t *w_new(cp2p_dht_t *d, wkind_t kind, const uint8_t *key, size_t key_len,
                          kad_write_done_fn done, void *arg, int *rc)
{
    *rc = 0;
    if (d->writes_closing)
        *rc = CP2P_ECANCELED;
    else if (d->n_writes >= KAD_MAX_WRITES)
        *rc = CP2P_ELIMIT;
    kad_write_t *w = *rc ? NULL : calloc(1, sizeof *w);
    if (!*rc && (!w || (key_len && !(w->key = malloc(key_len))))) {
        free(w);
        *rc = CP2P_ENOMEM;
        return NULL;
    }
    if (!w)
        return NULL;
    if (key_len)
        memcpy(w->key, key, key_len);
    w->kind = kind;
    w->key_len = key_len;
    w->done = done;
    w->arg = arg;
    return w;
}

int kad_write_record(cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len, uint64_t now_ms, kad_write_done_fn done, void *arg)
{
    int rc;
    kad_write_t *w = w_new(d, W_RECORD, key, key_len, done, arg, &rc);
    if (!w)
        return rc;
    if (!(w->value = malloc(value_len ? value_len : 1))) {
        w_free(w);
        return CP2P_ENOMEM;
    }
    if (value_len)
        memcpy(w->value, value, value_len);
    w->value_len = value_len;
    w->now_ms = now_ms;
    return enqueue(d, w);
}

int kad_write_provider(cp2p_dht_t *d, const uint8_t *key, size_t key_len,
                       const cp2p_peer_id_t *peer, uint64_t now_ms, kad_write_done_fn done,
                       void *arg)
{
    int rc;
    kad_write_t *w = w_new(d, W_PROVIDER, key, key_len, done, arg, &rc);
    if (!w)
        return rc;
    w->peer = *peer;
    w->now_ms = now_ms;
    return enqueue(d, w);
}

int kad_write_expire(cp2p_dht_t *d, uint64_t now_ms)
{
    int rc;
    kad_write_t *w = w_new(d, W_EXPIRE, NULL, 0, NULL, NULL, &rc);
    if (!w)
        return rc;
    w->now_ms = now_ms;
    return enqueue(d, w);
}

int kad_write_table(cp2p_dht_t *d)
{
    /* One queued save is enough: it snapshots when it starts. */
    for (kad_write_t *w = d->writes; w; w = w->next)
        if (w->kind == W_PEERS)
            return 0;
    int rc;
    kad_write_t *w = w_new(d, W_PEERS, NULL, 0, NULL, NULL, &rc);
    return w ? enqueue(d, w) : rc;
}

void kad_write_forget(cp2p_dht_t *d, void *arg)
{
    for (kad_write_t *w = d->writes; w; w = w->next)
        if (w->arg == arg)
            w->done = NULL;
    if (d->writing && d->writing->arg == arg)
        d->writing->done = NULL;
}

void kad_write_close(cp2p_dht_t *d)
{
    /* What was queued was never acknowledged to anyone: only the last table
     * save is worth waiting for. */
    kad_write_t *keep = NULL, *next;
    for (kad_write_t *w = d->writes; w; w = next) {
        next = w->next;
        if (w->kind == W_PEERS && !keep)
            keep = w;
        else
            w_free(w);
    }
    d->writes = d->writes_tail = keep;
    d->n_writes = keep ? 1 : 0;
    if (keep) {
        keep->next = NULL;
        keep->done = NULL;
        /* The table goes away before a write in flight ends: snapshot now. */
        if (!keep->peers && kad_snapshot_peers(d, &keep->peers, &keep->n_peers) < 0) {
            w_free(keep);
            d->writes = d->writes_tail = NULL;
            d->n_writes = 0;
        }
    }
    if (d->writing)
        d->writing->done = NULL;
    d->writes_closing = 1;
    submit_next(d);
}
