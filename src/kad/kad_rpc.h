/* Internal to the DHT glue: the cp2p_dht state shared by kad.c (operations)
 * and kad_rpc.c (requests on streams, both directions). */
#ifndef CP2P_KAD_RPC_H
#define CP2P_KAD_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cp2p/dht.h"
#include "kad/kad_msg.h"
#include "kad/kad_quota.h"
#include "kad/kad_store.h"
#include "kad/kad_table.h"

/* A request is a PUT_VALUE at most: what an honest peer sends us is far
 * smaller than the 4 MiB a response may take. */
#define KAD_MAX_REQUEST (CP2P_KAD_MAX_VALUE + 4 * CP2P_KAD_MAX_KEY + 1024)
/* Inbound streams served at once; more are reset. */
#define KAD_MAX_SERVED 1024
#define KAD_TICK_MS 50
/* Store writes queued at once (kad_write.c); more are refused (CP2P_ELIMIT). */
#define KAD_MAX_WRITES 256

typedef struct kad_rpc kad_rpc_t;
typedef struct kad_srv kad_srv_t;
typedef struct kad_op kad_op_t;
typedef struct kad_own kad_own_t;
typedef struct kad_write kad_write_t;

/* status 0: resp is the answer (NULL for ADD_PROVIDER, which has none). */
typedef void (*kad_rpc_done_fn)(cp2p_dht_t *d, kad_rpc_t *r, int status,
                                const cp2p_kad_msg_t *resp);

struct kad_rpc {
    kad_rpc_t *next;
    cp2p_dht_t *d;            /* NULL once the dht is freed while we wait for the stream */
    kad_op_t *op;             /* the operation it serves; NULL once that ended */
    cp2p_peer_id_t peer;
    cp2p_kad_msg_type_t type;
    cp2p_buf_t req, in;
    size_t charged;           /* of in, counted in the host's memory limit */
    cp2p_stream_t *s;
    uint64_t deadline;
    int opening, writing, answered;
    kad_rpc_done_fn done;
};

struct cp2p_dht {
    cp2p_host_t *h;
    uv_loop_t *loop;
    char *protocol;
    cp2p_dht_mode_t mode;
    size_t k, alpha;
    uint32_t request_timeout_ms, query_timeout_ms, quorum;
    uint64_t refresh_ms, record_republish_ms, provider_republish_ms;
    int open_keys;
    char **open_ns;
    size_t n_open_ns;
    cp2p_kad_table_t *table;
    cp2p_kad_store_t *store;
    kad_quota_t *quota; /* what each remote peer holds in store */
    cp2p_dht_stats_t stats;
    /* tick only enforces deadlines; kick starts new operations on the next
     * loop turn, so a lookup never waits for a tick that is already running. */
    uv_timer_t tick, maint, kick;
    /* Bootstrap peers stay seeds: while the routing table is empty they are
     * tried again (reseed), the delay doubling up to a minute. */
    uv_timer_t reseed;
    cp2p_peer_id_t seeds[CP2P_DHT_MAX_SEEDS];
    size_t n_seeds;
    uint32_t reseed_ms;          /* the delay before the next try */
    int reseeding;               /* a bootstrap of the seeds runs */
    int closing;
    int close_asked;              /* cp2p_dht_close: the teardown is on the next turn */
    void (*done)(void *arg);      /* ... and this once it is gone */
    void *done_arg;
    cp2p_dht_outcome_t boot_outcome; /* how the last bootstrap's peers answered */
    int open_handles;
    kad_rpc_t *rpcs;
    kad_srv_t *srvs;
    size_t n_srvs;
    kad_op_t *ops;
    kad_own_t *own;           /* records we put and keys we provide, for republishing */
    kad_write_t *writes, *writes_tail, *writing; /* queued store writes, the one running */
    size_t n_writes;
    int writes_closing;
};

/* Milliseconds since the Unix epoch: stored entries outlive the process. */
uint64_t kad_wall_ms(void);
/* 1 if key may hold any value (no namespace, or an open one). */
int kad_key_is_open(const cp2p_dht_t *d, const uint8_t *key, size_t key_len);
int kad_validate(const cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *v,
                 size_t n);
/* A peer answered as a DHT server (1) or failed us (0). */
void kad_peer_seen(cp2p_dht_t *d, const cp2p_peer_id_t *peer, int ok);
/* Fill the addresses of peers[i] from the peerstore into out[i] (views). */
void kad_fill_peers(cp2p_dht_t *d, const cp2p_peer_id_t *ids, size_t n, cp2p_kad_peer_t *out,
                    cp2p_multiaddr_t (*addrs)[CP2P_KAD_MAX_PEER_ADDRS]);
void kad_arm_tick(cp2p_dht_t *d);

/* ---- store writes on libuv's pool (kad_write.c) ---- */

/* rc is the store's answer; runs on the loop after the commit returned. */
typedef void (*kad_write_done_fn)(cp2p_dht_t *d, int rc, void *arg);
/* Queue a write; done (may be NULL) runs once later, never during the call,
 * unless kad_write_forget() or kad_write_close() came first. CP2P_ELIMIT past
 * KAD_MAX_WRITES queued. */
int kad_write_record(cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len, uint64_t now_ms, kad_write_done_fn done, void *arg);
int kad_write_provider(cp2p_dht_t *d, const uint8_t *key, size_t key_len,
                       const cp2p_peer_id_t *peer, uint64_t now_ms, kad_write_done_fn done,
                       void *arg);
int kad_write_expire(cp2p_dht_t *d, uint64_t now_ms);
/* Save the routing table (as it is when the write starts). */
int kad_write_table(cp2p_dht_t *d);
/* The owner arg is going away: its writes go on without a callback. */
void kad_write_forget(cp2p_dht_t *d, void *arg);
/* Drop queued writes but the table save, let the running one end, then call
 * kad_store_closed(). */
void kad_write_close(cp2p_dht_t *d);
/* kad.c: the routing table with addresses from the peerstore (malloc'd). */
int kad_snapshot_peers(cp2p_dht_t *d, cp2p_kad_saved_peer_t **out, size_t *n);
/* kad.c: no write is left; the store may go. */
void kad_store_closed(cp2p_dht_t *d);

/* Send m to peer; done runs exactly once later (never during this call). */
int kad_rpc_send(cp2p_dht_t *d, const cp2p_peer_id_t *peer, const cp2p_kad_msg_t *m,
                 kad_rpc_done_fn done, kad_op_t *op);
/* Fail requests past their deadline and reset idle inbound streams. */
void kad_rpc_expire(cp2p_dht_t *d, uint64_t now);
void kad_rpc_forget_op(cp2p_dht_t *d, kad_op_t *op);
/* Drop every stream; requests still opening finish on their own. */
void kad_rpc_shutdown(cp2p_dht_t *d);
int kad_rpc_busy(const cp2p_dht_t *d);
/* The protocol handler (server mode). */
void kad_rpc_serve(cp2p_stream_t *s, void *arg);

#endif
