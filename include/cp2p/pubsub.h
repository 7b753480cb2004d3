/** @file
 * Publish/subscribe on a host (libp2p pubsub spec): gossipsub
 * (`/meshsub/1.2.0`, `/meshsub/1.1.0`, `/meshsub/1.0.0`) or floodsub
 * (`/floodsub/1.0.0`), wire-compatible with go-libp2p-pubsub, rust-libp2p
 * and js-libp2p. Loop thread only.
 *
 * Implemented by src/pubsub/pubsub.c (streams, timers, validators) on the
 * sans-I/O router of src/pubsub/ps_router.c and the codec of ps_rpc.c.
 *
 * A message callback runs on a later loop turn than the call that caused
 * it (a publish never calls back inside cp2p_pubsub_publish()).
 * cp2p_pubsub_close() leaves every topic, cancels what is pending and calls
 * done on a later turn; no callback of the pubsub runs after done. */
#ifndef CP2P_PUBSUB_H
#define CP2P_PUBSUB_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/host.h"
#include "cp2p/metrics.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_FLOODSUB_PROTOCOL "/floodsub/1.0.0"
#define CP2P_GOSSIPSUB_PROTOCOL_1_0 "/meshsub/1.0.0"
#define CP2P_GOSSIPSUB_PROTOCOL_1_1 "/meshsub/1.1.0"
#define CP2P_GOSSIPSUB_PROTOCOL_1_2 "/meshsub/1.2.0"

/** Limits (also the defaults of the zero fields below). */
#define CP2P_PUBSUB_DEFAULT_MAX_MESSAGE (1024 * 1024) /**< go's and rust's default */
#define CP2P_PUBSUB_MAX_TOPIC_LEN 1024
#define CP2P_PUBSUB_DEFAULT_MAX_TOPICS 1024    /**< topics we know of, ours and peers' */
#define CP2P_PUBSUB_DEFAULT_MAX_PEER_TOPICS 256 /**< topics one peer may be subscribed to */
#define CP2P_PUBSUB_DEFAULT_MAX_PEERS 1024     /**< pubsub peers at once */
#define CP2P_PUBSUB_DEFAULT_MAX_QUEUED (4 * 1024 * 1024) /**< bytes queued to one peer */
#define CP2P_PUBSUB_DEFAULT_SEEN_MAX 65536     /**< message ids in the seen cache */
#define CP2P_PUBSUB_DEFAULT_MCACHE_MAX 8192    /**< messages in the message cache */
#define CP2P_PUBSUB_DEFAULT_MAX_PENDING 1024   /**< messages waiting for a validator */

/** Which router. */
typedef enum {
    CP2P_PUBSUB_GOSSIPSUB = 0,
    CP2P_PUBSUB_FLOODSUB = 1
} cp2p_pubsub_router_t;

/** The signature policy (pubsub spec "Signature Policy Options"). */
typedef enum {
    /** Sign every message we publish (from, seqno, signature; key if the
     * peer id does not hold it); refuse messages that are not signed. */
    CP2P_PUBSUB_STRICT_SIGN = 0,
    /** Publish with no from, seqno or signature; refuse messages that have
     * any of them. The message id must then come from the content
     * (msg_id_fn). */
    CP2P_PUBSUB_STRICT_NO_SIGN = 1
} cp2p_pubsub_sign_policy_t;

/** A validator's verdict. */
typedef enum {
    CP2P_PUBSUB_ACCEPT = 0,  /**< deliver and forward */
    CP2P_PUBSUB_REJECT = 1,  /**< invalid: drop, and count against the sender's score (P4) */
    CP2P_PUBSUB_IGNORE = 2,  /**< drop without penalty */
    CP2P_PUBSUB_PENDING = 3  /**< a validator's answer: cp2p_pubsub_validated() follows */
} cp2p_pubsub_result_t;

/** A message as delivered to the application and to validators: valid
 * during the callback only. */
typedef struct cp2p_pubsub_message {
    const char *topic;
    const uint8_t *data;
    size_t len;
    const cp2p_peer_id_t *from;          /**< author; NULL for unsigned messages */
    uint64_t seqno;                      /**< 0 for unsigned messages */
    const uint8_t *id;                   /**< message id */
    size_t id_len;
    const cp2p_peer_id_t *received_from; /**< the peer that forwarded it (us for our own) */
} cp2p_pubsub_message_t;

/** A pubsub router on a host (opaque). */
typedef struct cp2p_pubsub cp2p_pubsub_t;

/** The message id of a message (fields as on the wire; absent ones empty):
 * writes at most cap bytes to out, returns the length (0 = use the default). */
typedef size_t (*cp2p_pubsub_msg_id_fn)(const uint8_t *from, size_t from_len, const uint8_t *seqno,
                                        size_t seqno_len, const uint8_t *data, size_t data_len,
                                        uint8_t *out, size_t cap, void *arg);

/** Gossipsub's parameters (gossipsub v1.0 and v1.1 "Parameters"); a zero
 * field takes the default in brackets, the spec's and go-libp2p-pubsub's. */
typedef struct cp2p_gossipsub_params {
    uint32_t d;                       /**< mesh degree [6] */
    uint32_t d_lo;                    /**< [5] */
    uint32_t d_hi;                    /**< [12] */
    uint32_t d_score;                 /**< kept by score when pruning [4] */
    uint32_t d_out;                   /**< outbound peers kept in a mesh [2] */
    uint32_t d_lazy;                  /**< gossip degree at least [6] */
    double gossip_factor;             /**< [0.25] */
    uint32_t heartbeat_ms;            /**< [1000] */
    uint32_t heartbeat_initial_delay_ms; /**< [100] */
    uint32_t fanout_ttl_ms;           /**< [60000] */
    uint32_t mcache_len;              /**< history windows [5] */
    uint32_t mcache_gossip;           /**< windows gossiped [3] */
    uint32_t prune_backoff_ms;        /**< [60000] */
    uint32_t unsubscribe_backoff_ms;  /**< [10000] */
    uint32_t prune_peers;             /**< peers exchanged in a PRUNE [16] */
    uint32_t max_ihave_length;        /**< ids asked for per heartbeat per peer [5000] */
    uint32_t max_ihave_messages;      /**< IHAVEs taken per heartbeat per peer [10] */
    uint32_t max_idontwant_messages;  /**< IDONTWANT ids taken per heartbeat per peer [1000] */
    uint32_t idontwant_threshold;     /**< messages at least this big are IDONTWANTed [1024] */
    uint32_t gossip_retransmission;   /**< IWANT answers per message per peer [3] */
    uint32_t iwant_followup_ms;       /**< time to deliver an IWANTed message [3000] */
    uint32_t opportunistic_graft_ticks; /**< heartbeats between opportunistic grafts [60] */
    uint32_t opportunistic_graft_peers; /**< [2] */
    int no_flood_publish;             /**< 1: publish to the mesh only (v1.0) */
    int no_px;                        /**< 1: send no peer exchange in PRUNEs */
} cp2p_gossipsub_params_t;

/** The v1.1 peer score (gossipsub v1.1 "Peer Scoring"): off unless
 * cp2p_pubsub_config_t.score points to these. Per-topic parameters apply to
 * topics listed in topics[]. */
typedef struct cp2p_pubsub_topic_score {
    const char *topic;
    double topic_weight;
    double time_in_mesh_weight, time_in_mesh_quantum_ms, time_in_mesh_cap;              /* P1 */
    double first_deliveries_weight, first_deliveries_decay, first_deliveries_cap;      /* P2 */
    double mesh_deliveries_weight, mesh_deliveries_decay, mesh_deliveries_threshold,   /* P3 */
        mesh_deliveries_cap, mesh_deliveries_activation_ms, mesh_delivery_window_ms;
    double mesh_failure_weight, mesh_failure_decay;                                    /* P3b */
    double invalid_weight, invalid_decay;                                              /* P4 */
} cp2p_pubsub_topic_score_t;

/** Global score parameters and thresholds (gossipsub v1.1). */
typedef struct cp2p_pubsub_score_params {
    const cp2p_pubsub_topic_score_t *topics;
    size_t n_topics;
    double topic_score_cap;            /**< 0 = no cap */
    double app_specific_weight;        /**< P5 */
    double (*app_specific)(const cp2p_peer_id_t *peer, void *arg);
    void *app_specific_arg;
    double ip_colocation_weight;       /**< P6 (negative) */
    uint32_t ip_colocation_threshold;
    double behaviour_penalty_weight;   /**< P7 (negative) */
    double behaviour_penalty_decay;
    double behaviour_penalty_threshold;
    uint32_t decay_interval_ms;        /**< [1000] */
    double decay_to_zero;              /**< [0.01] */
    uint32_t retain_score_ms;          /**< [3600000] */
    /* thresholds */
    double gossip_threshold;           /**< < 0 */
    double publish_threshold;          /**< <= gossip_threshold */
    double graylist_threshold;         /**< < publish_threshold */
    double accept_px_threshold;        /**< >= 0 */
    double opportunistic_graft_threshold; /**< >= 0 */
} cp2p_pubsub_score_params_t;

/** How cp2p_pubsub_new() sets up; a zeroed struct is the defaults. */
typedef struct cp2p_pubsub_config {
    cp2p_pubsub_router_t router;
    cp2p_pubsub_sign_policy_t sign_policy;
    uint32_t max_message_size;  /**< data and fields of one message [1 MiB] */
    uint32_t seen_ttl_ms;       /**< [120000] */
    uint32_t max_topics, max_peer_topics, max_peers; /**< see the limits above */
    uint32_t max_queued;        /**< bytes queued to one peer; RPCs past it are dropped */
    uint32_t max_pending;       /**< messages waiting for validators */
    /** Deliver our own published messages to our own subscription too (go-
     * libp2p-pubsub does; rust and js do not): 0 = no. */
    int deliver_own;
    cp2p_pubsub_msg_id_fn msg_id_fn; /**< NULL = from + seqno (the spec's default) */
    void *msg_id_arg;
    cp2p_gossipsub_params_t gossipsub;
    const cp2p_pubsub_score_params_t *score; /**< NULL = no scoring (go's default); copied */
} cp2p_pubsub_config_t;

/** A valid message on a joined topic. */
typedef void (*cp2p_pubsub_message_fn)(cp2p_pubsub_t *ps, const cp2p_pubsub_message_t *m, void *arg);
/** A validator: CP2P_PUBSUB_ACCEPT, _REJECT or _IGNORE now, or _PENDING and
 * cp2p_pubsub_validated(ps, token, result) later (a message left pending
 * past 10 s is ignored). */
typedef cp2p_pubsub_result_t (*cp2p_pubsub_validator_fn)(cp2p_pubsub_t *ps,
                                                         const cp2p_pubsub_message_t *m,
                                                         uint64_t token, void *arg);
/** A peer subscribed (1) to or left (0) a topic. */
typedef void (*cp2p_pubsub_peer_fn)(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer,
                                    const char *topic, int subscribed, void *arg);

/** Start pubsub on h: registers the router's protocols and opens a stream
 * to each peer that speaks one (as identify tells). cfg may be NULL (all
 * defaults); it is copied. */
/** Score parameters to start from (what `cp2p pubsub --score` uses): the
 * topics names[0..n) get topics[0..n) (P1 time in mesh up to +10, P2 first
 * deliveries up to +100, P4 invalid messages -100 each, squared; P3 off, as
 * it needs the topic's message rate); P7 -10 per misbehaviour, squared;
 * thresholds gossip -10, publish -50, graylist -80, accept PX 10,
 * opportunistic graft 3. One invalid message graylists its sender until
 * decay (0.99 a second) forgives it. P6 (IP colocation) is off. */
CP2P_API void cp2p_pubsub_score_defaults(cp2p_pubsub_score_params_t *p,
                                         cp2p_pubsub_topic_score_t *topics,
                                         const char *const *names, size_t n);
CP2P_API int cp2p_pubsub_new(cp2p_host_t *h, const cp2p_pubsub_config_t *cfg, cp2p_pubsub_t **out);
/** Leave every topic, close the streams and free ps; done(arg) runs on a
 * later loop turn once nothing of ps is left. */
CP2P_API void cp2p_pubsub_close(cp2p_pubsub_t *ps, void (*done)(void *arg), void *arg);

/** Subscribe to topic; fn(ps, message, arg) for each valid message. Joining
 * a topic joined already replaces fn. CP2P_ELIMIT past max_topics. */
CP2P_API int cp2p_pubsub_join(cp2p_pubsub_t *ps, const char *topic, cp2p_pubsub_message_fn fn,
                              void *arg);
/** Unsubscribe (PRUNEs to the mesh, with the unsubscribe backoff).
 * CP2P_ENOTFOUND if not joined. */
CP2P_API int cp2p_pubsub_leave(cp2p_pubsub_t *ps, const char *topic);
/** Publish data to topic (joined or not). The bytes are copied. 0 once the
 * message is handed to the router (sent to peers as they take it);
 * CP2P_EOVERFLOW over max_message_size. */
CP2P_API int cp2p_pubsub_publish(cp2p_pubsub_t *ps, const char *topic, const uint8_t *data,
                                 size_t len);
/** Validate messages of topic before they are delivered or forwarded
 * (fn NULL removes it). */
CP2P_API int cp2p_pubsub_set_validator(cp2p_pubsub_t *ps, const char *topic,
                                       cp2p_pubsub_validator_fn fn, void *arg);
/** The answer to a validator that returned CP2P_PUBSUB_PENDING for token. */
CP2P_API int cp2p_pubsub_validated(cp2p_pubsub_t *ps, uint64_t token, cp2p_pubsub_result_t result);
/** Be told of peers' subscriptions and unsubscriptions (fn NULL: no more). */
CP2P_API int cp2p_pubsub_set_peer_fn(cp2p_pubsub_t *ps, cp2p_pubsub_peer_fn fn, void *arg);

/** Topics we joined: up to cap names (valid until the next call that
 * changes them); returns how many there are. */
CP2P_API size_t cp2p_pubsub_topics(cp2p_pubsub_t *ps, const char **out, size_t cap);
/** Peers subscribed to topic (any topic if NULL). */
CP2P_API size_t cp2p_pubsub_topic_peers(cp2p_pubsub_t *ps, const char *topic, cp2p_peer_id_t *out,
                                        size_t cap);
/** Peers in our mesh for topic. */
CP2P_API size_t cp2p_pubsub_mesh_peers(cp2p_pubsub_t *ps, const char *topic, cp2p_peer_id_t *out,
                                       size_t cap);
/** A peer's score (0 when scoring is off). CP2P_ENOTFOUND for an unknown peer. */
CP2P_API int cp2p_pubsub_peer_score(cp2p_pubsub_t *ps, const cp2p_peer_id_t *peer, double *out);

/** What cp2p_pubsub_stats() counts. */
typedef struct cp2p_pubsub_stats {
    uint64_t msgs_in, msgs_out, published, delivered, duplicates, rejected, ignored,
        invalid_rpcs, dropped_queue_full, ihave_in, iwant_in, graft_in, prune_in,
        idontwant_in;
    uint64_t graylisted_rpcs; /**< RPCs ignored: their sender scored below the graylist threshold */
    uint64_t graylisted_peers; /**< peers below the graylist threshold now (a gauge) */
    uint64_t negative_peers;   /**< peers whose score is below 0 now (a gauge) */
} cp2p_pubsub_stats_t;
/** Counters since the start. */
CP2P_API void cp2p_pubsub_stats(const cp2p_pubsub_t *ps, cp2p_pubsub_stats_t *out);
/** The counters and gauges for cp2p_metrics_start(). */
CP2P_API cp2p_metrics_source_t cp2p_pubsub_metrics_source(const cp2p_pubsub_t *ps);

#ifdef __cplusplus
}
#endif
#endif
