/* The pubsub router as a sans-I/O engine: floodsub and gossipsub v1.0 to
 * v1.2 over peers it is told about. RPC bytes and time go in; framed RPCs
 * for peers, deliveries, validation requests and subscription changes come
 * out through the callbacks of ps_router_io_t, called during the call that
 * caused them (the glue, src/pubsub/pubsub.c, keeps the library's rule for
 * user callbacks). */
#ifndef CP2P_PS_ROUTER_H
#define CP2P_PS_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "cp2p/pubsub.h"

typedef enum ps_proto {
    PS_FLOODSUB = 0,
    PS_MESHSUB10 = 1,
    PS_MESHSUB11 = 2,
    PS_MESHSUB12 = 3
} ps_proto_t;

typedef struct ps_router ps_router_t;

typedef struct ps_router_io {
    void *arg;
    /* One framed RPC for peer. */
    void (*send)(void *arg, const cp2p_peer_id_t *peer, const uint8_t *p, size_t n);
    /* A valid message on a topic we joined. */
    void (*deliver)(void *arg, const cp2p_pubsub_message_t *m);
    /* ACCEPT, REJECT, IGNORE, or PENDING and ps_router_validated(token) later. */
    cp2p_pubsub_result_t (*validate)(void *arg, const cp2p_pubsub_message_t *m, uint64_t token);
    void (*peer_topic)(void *arg, const cp2p_peer_id_t *peer, const char *topic, int subscribed);
    /* A peer another peer told us of in a PRUNE (record: its signed peer
     * record envelope, or n = 0). */
    void (*px)(void *arg, const cp2p_peer_id_t *peer, const uint8_t *record, size_t n);
} ps_router_io_t;

/* cfg's zero fields take the defaults; key signs what we publish. */
int ps_router_new(const cp2p_pubsub_config_t *cfg, const cp2p_privkey_t *key,
                  const ps_router_io_t *io, uint64_t now_ms, ps_router_t **out);
void ps_router_free(ps_router_t *r);
/* The effective configuration (defaults filled in). */
const cp2p_pubsub_config_t *ps_router_config(const ps_router_t *r);

/* A peer we have a pubsub stream to (proto: what our outbound stream
 * negotiated; outbound: we dialled its connection). CP2P_ELIMIT past
 * max_peers, CP2P_EEXIST if known. */
int ps_router_add_peer(ps_router_t *r, const cp2p_peer_id_t *peer, ps_proto_t proto, int outbound,
                       uint64_t now_ms);
void ps_router_remove_peer(ps_router_t *r, const cp2p_peer_id_t *peer, uint64_t now_ms);
/* For P6 (IP colocation): a hash of the peer's IP address. */
void ps_router_set_peer_ip(ps_router_t *r, const cp2p_peer_id_t *peer, uint64_t ip_hash);
int ps_router_has_peer(const ps_router_t *r, const cp2p_peer_id_t *peer);
/* One RPC body from peer. A malformed one is an error for it (nothing of it
 * is used); the caller counts it and may drop the stream. */
int ps_router_rpc(ps_router_t *r, const cp2p_peer_id_t *peer, const uint8_t *p, size_t n,
                  uint64_t now_ms);

int ps_router_join(ps_router_t *r, const char *topic, uint64_t now_ms);
int ps_router_leave(ps_router_t *r, const char *topic, uint64_t now_ms);
int ps_router_joined(const ps_router_t *r, const char *topic);
/* Our message: signed per the policy, sent, and delivered to us if
 * deliver_own. */
int ps_router_publish(ps_router_t *r, const char *topic, const uint8_t *data, size_t len,
                      uint64_t now_ms);
void ps_router_validated(ps_router_t *r, uint64_t token, cp2p_pubsub_result_t result,
                         uint64_t now_ms);
/* Gossipsub's heartbeat: mesh and fanout upkeep, gossip, cache shifts. */
void ps_router_heartbeat(ps_router_t *r, uint64_t now_ms);

size_t ps_router_topics(const ps_router_t *r, const char **out, size_t cap);
size_t ps_router_topic_peers(const ps_router_t *r, const char *topic, cp2p_peer_id_t *out,
                             size_t cap);
size_t ps_router_mesh_peers(const ps_router_t *r, const char *topic, cp2p_peer_id_t *out,
                            size_t cap);
int ps_router_score(const ps_router_t *r, const cp2p_peer_id_t *peer, uint64_t now_ms, double *out);
void ps_router_stats(const ps_router_t *r, cp2p_pubsub_stats_t *out, uint64_t now_ms);

#endif
