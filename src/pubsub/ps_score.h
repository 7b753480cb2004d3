/* Gossipsub v1.1 peer scoring ("Peer Scoring", "The Score Function",
 * "Topic Parameter Calculation and Decay"): counters per peer and scored
 * topic, decayed on a timer, retained for a while after a peer leaves. The
 * router tells it events; it never sends anything. */
#ifndef CP2P_PS_SCORE_H
#define CP2P_PS_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"
#include "cp2p/pubsub.h"
#include "pubsub/ps_idmap.h"

typedef struct ps_tstats {          /* one peer in one scored topic */
    int in_mesh;
    uint64_t graft_time, mesh_time;
    double first_deliveries, mesh_deliveries, mesh_failure, invalid;
} ps_tstats_t;

typedef struct ps_score_peer {
    struct ps_score_peer *next;     /* the score's list of connected peers */
    cp2p_peer_id_t id;
    ps_tstats_t *t;                 /* [params.n_topics] */
    double behaviour;               /* P7's counter */
    uint64_t ip;                    /* a hash of its IP, 0 if unknown */
    size_t colocated;               /* peers sharing it, counted at each decay */
    int linked;
} ps_score_peer_t;

typedef struct ps_retained ps_retained_t;

typedef struct ps_score {
    cp2p_pubsub_score_params_t params; /* a copy, topics included */
    cp2p_pubsub_topic_score_t *topics;
    ps_score_peer_t *peers;
    ps_retained_t *retained;
    size_t n_retained;
    ps_idmap_t deliveries;         /* message id -> first delivery */
    ps_idmap_t promises;           /* message id -> the peer that promised it */
    uint64_t last_decay;
} ps_score_t;

/* Copies in; *cfg is set to the copy (whose topics the router points to). */
int ps_score_init(ps_score_t *s, const cp2p_pubsub_score_params_t *in,
                  const cp2p_pubsub_score_params_t **cfg);
void ps_score_free(ps_score_t *s);

void ps_score_connect(ps_score_t *s, ps_score_peer_t *p, const cp2p_peer_id_t *id, uint64_t now);
void ps_score_disconnect(ps_score_t *s, ps_score_peer_t *p, uint64_t now);
void ps_score_set_ip(ps_score_t *s, ps_score_peer_t *p, uint64_t ip);
double ps_score_value(ps_score_t *s, ps_score_peer_t *p, uint64_t now);

/* Events; tp is the topic's parameters (NULL: the topic is not scored). */
void ps_score_graft(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                    uint64_t now);
void ps_score_prune(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                    uint64_t now);
/* p delivered a valid message first. */
void ps_score_deliver(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                      const uint8_t *id, size_t len, uint64_t now);
/* p delivered a message we had already. */
void ps_score_duplicate(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                        const uint8_t *id, size_t len, uint64_t now);
void ps_score_invalid(ps_score_t *s, ps_score_peer_t *p, const cp2p_pubsub_topic_score_t *tp,
                      uint64_t now);
/* P7: a misbehaviour (a GRAFT during backoff, a broken IWANT promise...). */
void ps_score_penalty(ps_score_t *s, ps_score_peer_t *p, double count);
/* p advertised id and we asked for it: a penalty if no one delivers it by deadline. */
void ps_score_promise(ps_score_t *s, ps_score_peer_t *p, const uint8_t *id, size_t len,
                      uint64_t deadline);
/* Decay (each decay interval), broken promises, colocation counts. */
void ps_score_tick(ps_score_t *s, uint64_t now);

#endif
