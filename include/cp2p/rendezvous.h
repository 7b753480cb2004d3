/** @file
 * Rendezvous, /rendezvous/1.0.0 (libp2p specs rendezvous/README.md): a
 * server (a rendezvous point) that keeps registrations of peers under
 * namespaces, and a client that registers (and keeps its registrations
 * alive) and discovers other peers. A registration carries the peer's own
 * signed peer record, so a point cannot be told to register anyone else.
 * The server takes records in the standard envelope and in rust-libp2p's
 * legacy one (see cp2p_rendezvous_set_record_format); since rust-libp2p's
 * client cannot read a standard one, a peer that registered in the legacy
 * envelope, or whose identify agent is rust-libp2p, is answered with the
 * legacy records only.
 * Runs on the host's loop; every call and callback is on the loop thread,
 * and no callback runs inside the call that caused it. */
#ifndef CP2P_RENDEZVOUS_H
#define CP2P_RENDEZVOUS_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/host.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_RENDEZVOUS_PROTOCOL_ID "/rendezvous/1.0.0"
#define CP2P_RENDEZVOUS_MAX_NAMESPACE 255         /**< bytes, as the spec says */
#define CP2P_RENDEZVOUS_DEFAULT_TTL_S (2 * 3600)  /**< a REGISTER without a TTL */
#define CP2P_RENDEZVOUS_MAX_TTL_S (72 * 3600)
#define CP2P_RENDEZVOUS_MAX_RECORD 8192           /**< one signed peer record, bytes */
/** Server defaults (README "Limits"). */
#define CP2P_RENDEZVOUS_DEFAULT_MIN_TTL_S 120
#define CP2P_RENDEZVOUS_DEFAULT_MAX_PER_PEER 32       /**< namespaces one peer is in (rust-libp2p's) */
#define CP2P_RENDEZVOUS_DEFAULT_MAX_PER_NAMESPACE 1000
#define CP2P_RENDEZVOUS_DEFAULT_MAX_TOTAL 10000       /**< rust-libp2p's */
#define CP2P_RENDEZVOUS_DEFAULT_MAX_PER_IP 256        /**< from one IPv4 address or IPv6 /64 */
#define CP2P_RENDEZVOUS_DEFAULT_MAX_BYTES (16u << 20) /**< records and namespaces held, all together */
#define CP2P_RENDEZVOUS_DEFAULT_MAX_DISCOVER 1000     /**< registrations in one answer */
#define CP2P_RENDEZVOUS_DEFAULT_MAX_STREAMS 256       /**< requests being served at once */

/* ------------------------------------------------------------------ server */

typedef struct cp2p_rendezvous_server cp2p_rendezvous_server_t;

/** Zero fields take the defaults above. */
typedef struct cp2p_rendezvous_server_config {
    uint32_t min_ttl_s;        /**< shorter TTLs get E_INVALID_TTL (the spec recommends 2 h) */
    uint32_t max_ttl_s;        /**< longer ones too; at most CP2P_RENDEZVOUS_MAX_TTL_S */
    uint32_t max_per_peer;     /**< registrations of one peer (one per namespace) */
    uint32_t max_per_namespace;
    uint32_t max_total;
    uint64_t max_bytes;        /**< signed records and namespaces held */
    uint32_t max_discover;     /**< registrations per DISCOVER answer (and its limit's cap) */
    uint32_t max_streams;      /**< inbound rendezvous streams served at once */
    /** Registrations made from one IPv4 address or IPv6 /64 (identities
     * cost nothing; addresses do). Peers reached through a relay count as
     * the relay's address. Loopback is not counted unless limit_loopback. */
    uint32_t max_per_ip;
    int limit_loopback;
} cp2p_rendezvous_server_config_t;

typedef struct cp2p_rendezvous_server_stats {
    uint64_t registrations;     /**< held now */
    uint64_t namespaces;        /**< with at least one registration */
    uint64_t peers;             /**< with at least one registration */
    uint64_t bytes;             /**< held now, as counted against max_bytes */
    uint64_t registered;        /**< REGISTERs accepted (refreshes too) */
    uint64_t refused;           /**< REGISTERs answered with an error */
    uint64_t refused_limit;     /**< of those, for a limit (E_UNAVAILABLE) */
    uint64_t unregistered;
    uint64_t expired;
    uint64_t discovers;         /**< DISCOVERs answered */
    uint64_t bad_messages;      /**< streams reset for a malformed or oversized message */
    uint64_t streams_refused;   /**< over max_streams */
} cp2p_rendezvous_server_stats_t;

/** Serve /rendezvous/1.0.0 on h (cfg may be NULL: the defaults). The host
 * must outlive it. Expired registrations are dropped by a timer. */
CP2P_API int cp2p_rendezvous_server_new(cp2p_host_t *h, const cp2p_rendezvous_server_config_t *cfg,
                                        cp2p_rendezvous_server_t **out);
/** Stop serving: the handler is removed, streams being served are reset,
 * registrations are forgotten; done (may be NULL) runs on a later loop turn
 * once s is freed. */
CP2P_API void cp2p_rendezvous_server_close(cp2p_rendezvous_server_t *s, void (*done)(void *arg),
                                           void *arg);
/** The server's counters now. */
CP2P_API void cp2p_rendezvous_server_stats(const cp2p_rendezvous_server_t *s,
                                           cp2p_rendezvous_server_stats_t *out);

/** The counters as samples for the metrics server (cp2p/metrics.h):
 * cp2p_rendezvous_registrations, ..._refused_limit_total and the rest; s
 * must outlive the server. */
CP2P_API cp2p_metrics_source_t cp2p_rendezvous_server_metrics_source(const cp2p_rendezvous_server_t *s);

/* ------------------------------------------------------------------ client */

typedef struct cp2p_rendezvous cp2p_rendezvous_t;

/** What a REGISTER came to: status 0 and the TTL the point granted, or
 * CP2P_EREFUSED with the point's status (status_code: 100 E_INVALID_NAMESPACE,
 * 101 E_INVALID_SIGNED_PEER_RECORD, 102 E_INVALID_TTL, 200 E_NOT_AUTHORIZED,
 * 300 E_INTERNAL_ERROR, 400 E_UNAVAILABLE), or another negative code (the
 * stream could not be opened, CP2P_EPROTO for a bad answer, CP2P_ETIMEOUT,
 * CP2P_ECANCELED when the client closes). */
typedef void (*cp2p_rendezvous_register_cb)(int status, int status_code, uint64_t ttl_s, void *arg);

/** One peer found by a discover. addrs are the addresses of its signed
 * record; everything is valid during the callback only. */
typedef struct cp2p_rendezvous_peer {
    cp2p_peer_id_t peer;
    const char *ns;
    uint64_t ttl_s;
    const cp2p_multiaddr_t *addrs;
    size_t n_addrs;
} cp2p_rendezvous_peer_t;

/** What a DISCOVER came to: status 0, the peers (records that do not verify
 * are left out) and the cookie to pass to the next discover for what is new
 * since; or an error as for register (status_code 103 E_INVALID_COOKIE:
 * discover again without one). Valid during the call only. */
typedef void (*cp2p_rendezvous_discover_cb)(int status, int status_code,
                                            const cp2p_rendezvous_peer_t *peers, size_t n,
                                            const uint8_t *cookie, size_t cookie_len, void *arg);

/** The envelope our signed peer record goes in. The spec's (RFC 0003,
 * "libp2p-peer-record", what go and js seal and open) is the standard one.
 * rust-libp2p's rendezvous (0.57) seals and opens only its legacy envelope
 * ("libp2p-routing-state"): AUTO, the default, sends the standard one and,
 * when a point drops it unanswered or calls it invalid, the legacy one to
 * that point from then on. Records of either kind are accepted in discover
 * answers (and by the server). */
enum {
    CP2P_RENDEZVOUS_RECORD_AUTO = 0,
    CP2P_RENDEZVOUS_RECORD_STANDARD = 1,
    CP2P_RENDEZVOUS_RECORD_LEGACY = 2
};

/** A client on h; the host must outlive it. */
CP2P_API int cp2p_rendezvous_new(cp2p_host_t *h, cp2p_rendezvous_t **out);
/** Choose the envelope of our record (CP2P_RENDEZVOUS_RECORD_*), for the
 * registrations from now on. CP2P_EINVAL for another value. */
CP2P_API int cp2p_rendezvous_set_record_format(cp2p_rendezvous_t *rz, int format);
/** Register our signed peer record (the host's advertised addresses, sealed
 * now) under ns (1..255 bytes) at the point server (its address must be in
 * the peerstore, or a connection open), for ttl_s seconds (0: the point's
 * default, 2 h). The registration is kept: it is sent again when three
 * quarters of the granted TTL have passed (and a minute after a failure),
 * and half a second after the host advertises a new address (a relay
 * reservation, a mapped port), until cp2p_rendezvous_unregister or close.
 * With no address to advertise yet, the registration waits for the first
 * one. cb (may be NULL) runs after every attempt. Registering again under the same point and ns replaces the
 * TTL and the callback. CP2P_EINVAL for a bad ns, CP2P_ELIMIT past 64 kept
 * registrations. */
CP2P_API int cp2p_rendezvous_register(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server,
                                      const char *ns, uint64_t ttl_s,
                                      cp2p_rendezvous_register_cb cb, void *arg);
/** Stop keeping the registration and send UNREGISTER (no answer comes, as
 * the spec says). CP2P_ENOTFOUND if there is none. */
CP2P_API int cp2p_rendezvous_unregister(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server,
                                        const char *ns);
/** Ask the point server for peers under ns (NULL or "": every namespace), at
 * most limit (0: as many as the point gives), only those registered since
 * the discover that gave cookie (NULL: all). The peers' verified addresses
 * go into the peerstore (for their registration's TTL, at most an hour),
 * so cp2p_host_connect_peer reaches them. cb runs exactly once, never
 * before this returns. */
CP2P_API int cp2p_rendezvous_discover(cp2p_rendezvous_t *rz, const cp2p_peer_id_t *server,
                                      const char *ns, uint64_t limit, const uint8_t *cookie,
                                      size_t cookie_len, cp2p_rendezvous_discover_cb cb, void *arg);
/** Unregister everything kept (best effort: UNREGISTER goes out on the open
 * connections; register callbacks are not called again), cancel the
 * discovers under way (their callbacks run with CP2P_ECANCELED on a later
 * loop turn) and free rz; done (may be NULL) runs after them, once the
 * UNREGISTERs went out or a second passed. */
CP2P_API void cp2p_rendezvous_close(cp2p_rendezvous_t *rz, void (*done)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
