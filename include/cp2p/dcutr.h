/** @file
 * DCUtR, Direct Connection Upgrade through Relay (/libp2p/dcutr, libp2p
 * specs relay/DCUtR.md): a relayed connection becomes a direct one by a TCP
 * simultaneous open timed over the relay. When a peer A dials us (B)
 * through our relay, we open the dcutr stream, exchange CONNECT messages
 * with our addresses, measure the RTT, send SYNC and dial A half an RTT
 * later, while A dials on SYNC; A is the client of the new connection's
 * security and muxer, B the server. Up to three attempts. On success new
 * streams go to the direct connection and the relayed one closes after a
 * grace period; on failure the connection stays relayed and the result
 * callback (and the log) says so. Enabling it turns on TCP port reuse for
 * every dial (as go-libp2p does), so that the addresses peers observe are
 * our listen port's. */
#ifndef CP2P_DCUTR_H
#define CP2P_DCUTR_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/conn.h"
#include "cp2p/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_DCUTR_PROTOCOL_ID "/libp2p/dcutr"
/** The spec: B tries three times. */
#define CP2P_DCUTR_DEFAULT_ATTEMPTS 3
/** relay_grace_ms that never closes the relayed connection. */
#define CP2P_DCUTR_KEEP_RELAYED UINT32_MAX

typedef struct cp2p_dcutr_result {
    const cp2p_peer_id_t *peer;
    int status;         /**< 0: direct; negative: the connection stays relayed */
    cp2p_conn_t *conn;  /**< the direct connection (borrowed, during the call), or NULL */
    int attempts;       /**< hole punches tried (0: a plain direct dial worked) */
    int initiator;      /**< 1 if we were B (we opened the dcutr stream) */
} cp2p_dcutr_result_t;
typedef void (*cp2p_dcutr_result_fn)(const cp2p_dcutr_result_t *r, void *arg);

typedef struct cp2p_dcutr_config {
    /** Offer and dial private and loopback addresses too (tests, NATs inside
     * a LAN); by default only public ones, as go-libp2p. */
    int allow_private;
    /** Also serve and start DCUtR on direct connections (tests only: the
     * protocol runs over any connection). */
    int any_conn;
    uint32_t attempts;          /**< 0 = CP2P_DCUTR_DEFAULT_ATTEMPTS */
    uint32_t stream_timeout_ms; /**< one exchange; 0 = 60 s (go) */
    uint32_t dial_timeout_ms;   /**< one punch's dials; 0 = 10 s (go) */
    /** After the direct connection is up, the relayed one closes this much
     * later; 0 = 5 s; CP2P_DCUTR_KEEP_RELAYED keeps it. */
    uint32_t relay_grace_ms;
    cp2p_dcutr_result_fn on_result; /**< may be NULL; runs on the loop, once per punch */
    void *arg;
} cp2p_dcutr_config_t;

typedef struct cp2p_dcutr cp2p_dcutr_t;

typedef struct cp2p_dcutr_stats {
    uint64_t punches;        /**< upgrades started, both roles */
    uint64_t attempts;       /**< exchanges (one per attempt) */
    uint64_t direct;         /**< ended on a direct connection */
    uint64_t failed;         /**< stayed relayed */
    uint64_t protocol_errors; /**< remotes that broke the protocol */
} cp2p_dcutr_stats_t;

/** Serve /libp2p/dcutr on h and upgrade relayed connections that peers dial
 * to us. cfg may be NULL (defaults). Free with cp2p_dcutr_free() before
 * cp2p_host_close(). */
CP2P_API int cp2p_dcutr_enable(cp2p_host_t *h, const cp2p_dcutr_config_t *cfg, cp2p_dcutr_t **out);
CP2P_API void cp2p_dcutr_free(cp2p_dcutr_t *d);
/** Start an upgrade of c as B now (the library does it by itself for
 * inbound relayed connections). CP2P_EEXIST if one runs for that peer. */
CP2P_API int cp2p_dcutr_upgrade(cp2p_dcutr_t *d, cp2p_conn_t *c);
CP2P_API void cp2p_dcutr_stats(const cp2p_dcutr_t *d, cp2p_dcutr_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
