/** @file
 * Circuit relay v2 (libp2p specs relay/circuit-v2.md): the relay service
 * (the hop protocol: reservations and circuits, with limits), and the client
 * (reserve a slot on a relay, accept circuits through it on the stop
 * protocol, dial peers through relays), plus AutoRelay over static relays.
 *
 * Once the client is enabled, the host takes `/p2p-circuit` addresses:
 * cp2p_host_listen(h, "<relay addr>/p2p/<relay>/p2p-circuit") reserves on
 * that relay, and the host's listen addresses (identify, the signed peer
 * record) then include "<relay addr>/p2p/<relay>/p2p-circuit";
 * cp2p_host_connect(h, "<relay addr>/p2p/<relay>/p2p-circuit/p2p/<target>")
 * dials through it. A circuit is upgraded like a TCP connection (Noise or
 * TLS, then a muxer; the dialer is the security initiator), and
 * cp2p_conn_is_relayed() tells it apart.
 *
 * A circuit's bytes pass through a local socket pair: a program that relays
 * must ignore SIGPIPE, as it must for TCP (apps/common/cli_signals.c does).
 * Loop thread only. */
#ifndef CP2P_RELAY_H
#define CP2P_RELAY_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_RELAY_HOP_PROTOCOL_ID "/libp2p/circuit/relay/0.2.0/hop"
#define CP2P_RELAY_STOP_PROTOCOL_ID "/libp2p/circuit/relay/0.2.0/stop"

/** Defaults for the zero fields of cp2p_relay_config_t (go-libp2p's). */
#define CP2P_RELAY_DEFAULT_RESERVATION_TTL_S 3600
#define CP2P_RELAY_DEFAULT_MAX_RESERVATIONS 128
#define CP2P_RELAY_DEFAULT_MAX_RESERVATIONS_PER_IP 8
#define CP2P_RELAY_DEFAULT_MAX_CIRCUITS 64
#define CP2P_RELAY_DEFAULT_MAX_CIRCUITS_PER_PEER 16
#define CP2P_RELAY_DEFAULT_LIMIT_DURATION_S 120
#define CP2P_RELAY_DEFAULT_LIMIT_DATA (128 * 1024)
/** A hop request (or the target's answer on stop) must come within this. */
#define CP2P_RELAY_HANDSHAKE_TIMEOUT_MS 30000

/** The relay service's limits. A peer holds one reservation (a second
 * RESERVE refreshes it). A circuit counts for its source and its target. */
typedef struct cp2p_relay_config {
    uint32_t reservation_ttl_s;       /**< how long a reservation lasts unless refreshed */
    uint32_t max_reservations;        /**< all peers together */
    uint32_t max_reservations_per_ip; /**< peers reserving from one IP address */
    uint32_t max_circuits;            /**< open circuits, all peers together */
    uint32_t max_circuits_per_peer;   /**< open circuits from or to one peer */
    uint32_t limit_duration_s;        /**< a circuit's life (sent in Limit) */
    uint64_t limit_data;              /**< bytes per direction per circuit (sent in Limit) */
    int no_limit;                     /**< circuits without the two limits above (no Limit sent) */
    /** A hop request, and the target's answer on stop, must come within
     * this (CP2P_RELAY_HANDSHAKE_TIMEOUT_MS); at most 2 x (max_circuits +
     * max_reservations) requests wait at once, more are reset. */
    uint32_t handshake_timeout_ms;
} cp2p_relay_config_t;

typedef struct cp2p_relay cp2p_relay_t;

/** Serve the hop protocol on h with cfg (NULL: defaults). The relay
 * advertises h's addresses (cp2p_host_addrs) in reservations. */
CP2P_API int cp2p_relay_start(cp2p_host_t *h, const cp2p_relay_config_t *cfg, cp2p_relay_t **out);
/** Stop serving: reservations end, circuits are reset (their streams'
 * callbacks come on later turns). done (may be NULL) runs once r's handles
 * are closed and r is freed; never inside this call. */
CP2P_API void cp2p_relay_close(cp2p_relay_t *r, void (*done)(void *arg), void *arg);

typedef struct cp2p_relay_stats {
    uint64_t reservations;          /**< held now */
    uint64_t circuits;              /**< open now */
    uint64_t reservations_accepted; /**< ever, refreshes included */
    uint64_t reservations_refused;
    uint64_t circuits_opened;       /**< ever */
    uint64_t circuits_refused;      /**< NO_RESERVATION, limits, the target refused or failed */
    uint64_t circuits_limited;      /**< reset for their data or duration limit */
    uint64_t bytes_relayed;         /**< both directions */
} cp2p_relay_stats_t;
/** The relay's counters now. */
CP2P_API void cp2p_relay_stats(const cp2p_relay_t *r, cp2p_relay_stats_t *out);

/* ---- client ---- */

typedef enum {
    CP2P_RELAY_RESERVED,      /**< relay, addr (ours through it), expire: new or refreshed */
    CP2P_RELAY_RESERVE_FAILED,/**< relay, status: could not reserve (retried with backoff) */
    CP2P_RELAY_RESERVATION_LOST /**< relay, addr: the relay went away (retried, or the next
                                   static relay taken) */
} cp2p_relay_event_type_t;

typedef struct cp2p_relay_event {
    cp2p_relay_event_type_t type;
    const cp2p_peer_id_t *relay;
    const cp2p_multiaddr_t *addr; /**< "<relay addr>/p2p/<relay>/p2p-circuit" */
    uint64_t expire;              /**< unix seconds */
    int status;                   /**< a CP2P_E* code, or the relay's status (200..401) */
    /** CP2P_RELAY_RESERVED: the relay's voucher (advisory in the spec)
     * 1 checked (signed by the relay, naming it and us), 0 none sent, -1
     * one that does not check out (the reservation is taken anyway). */
    int voucher;
} cp2p_relay_event_t;

typedef void (*cp2p_relay_event_fn)(const cp2p_relay_event_t *ev, void *arg);

/** Defaults for the zero fields of cp2p_relay_client_config_t. */
#define CP2P_RELAY_DEFAULT_MAX_RELAYS 2
#define CP2P_RELAY_MAX_STATIC_RELAYS 16
#define CP2P_RELAY_MAX_RESERVATIONS 16 /**< relays we hold slots on at once */

typedef struct cp2p_relay_client_config {
    cp2p_relay_event_fn on_event; /**< may be NULL; runs on a later turn than any call */
    void *event_arg;
    /** AutoRelay: relays (`/ip4/../tcp/../p2p/<relay>`, copied) to keep
     * reservations on, up to max_relays at once, once
     * cp2p_relay_autorelay_start() is called (when AutoNAT says private,
     * or a program forces it). A relay that goes away or refuses is
     * replaced by the next one. */
    const char *const *static_relays;
    size_t n_static_relays;
    uint32_t max_relays;
} cp2p_relay_client_config_t;

typedef struct cp2p_relay_client cp2p_relay_client_t;

/** Serve the stop protocol (circuits through relays we reserved on) and
 * install the host's `/p2p-circuit` listen and dial hooks. cfg may be NULL.
 * One client per host. */
CP2P_API int cp2p_relay_client_enable(cp2p_host_t *h, const cp2p_relay_client_config_t *cfg,
                                      cp2p_relay_client_t **out);
/** Remove the hooks and drop reservations; circuits already open go on as
 * connections of the host. done (may be NULL) runs once c is freed, never
 * inside this call. */
CP2P_API void cp2p_relay_client_close(cp2p_relay_client_t *c, void (*done)(void *arg), void *arg);
/** Reserve on relay (`<relay addr>/p2p/<relay>`, a trailing /p2p-circuit is
 * allowed) and keep the reservation: refreshed before it expires, made
 * again (with backoff) if the relay goes away. The same as
 * cp2p_host_listen on the /p2p-circuit address. CP2P_EEXIST if held already,
 * CP2P_ELIMIT past CP2P_RELAY_MAX_RESERVATIONS. */
CP2P_API int cp2p_relay_client_listen(cp2p_relay_client_t *c, const cp2p_multiaddr_t *relay);
/** Stop keeping the reservation on the relay (its circuit address goes). */
CP2P_API int cp2p_relay_client_unlisten(cp2p_relay_client_t *c, const cp2p_peer_id_t *relay);
/** Relays we hold a reservation on now; fills out[0..cap), returns the count. */
CP2P_API size_t cp2p_relay_client_relays(const cp2p_relay_client_t *c, cp2p_peer_id_t *out,
                                         size_t cap);
/** AutoRelay on the static relays: start keeping max_relays reservations
 * (the autonat module calls this when the host is private), or stop and let
 * them go. CP2P_EINVAL without static relays. */
CP2P_API int cp2p_relay_autorelay_start(cp2p_relay_client_t *c);
CP2P_API void cp2p_relay_autorelay_stop(cp2p_relay_client_t *c);

#ifdef __cplusplus
}
#endif
#endif
