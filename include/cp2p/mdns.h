/** @file
 * Local peer discovery with multicast DNS (libp2p discovery/mdns spec):
 * queries for _p2p._udp.local every interval (at start: 20-120 ms, then 1 s,
 * 2 s, 4 s ... apart up to the interval, and within 120 ms of a query from a
 * host not heard from before, at most once a second; RFC 6762 5.2), announces
 * itself twice at start a second apart (8.3), answers queries with our listen
 * addresses, and reports the addresses of other peers as they are discovered
 * and as they expire. Discovered addresses go into the host's peerstore.
 * Runs on the host's loop; every call and callback is on the loop thread. */
#ifndef CP2P_MDNS_H
#define CP2P_MDNS_H

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

typedef struct cp2p_mdns cp2p_mdns_t;

#define CP2P_MDNS_DEFAULT_SERVICE "_p2p._udp.local"
#define CP2P_MDNS_DEFAULT_INTERVAL_MS 10000
#define CP2P_MDNS_DEFAULT_TTL_S 120
#define CP2P_MDNS_PEER_NAME_MAX 63 /**< one DNS label */

/** Zero fields take the defaults. */
typedef struct cp2p_mdns_config {
    uint32_t interval_ms;   /**< between two queries */
    uint32_t ttl_s;         /**< TTL of the records we announce */
    const char *service;    /**< NULL = CP2P_MDNS_DEFAULT_SERVICE */
    const char *peer_name;  /**< NULL = random; 1..63 letters, digits or '-' */
    int dial;               /**< connect to every peer discovered */
    int loopback;           /**< also use loopback interfaces and announce loopback addresses */
    int no_ipv4, no_ipv6;   /**< leave one family out */
} cp2p_mdns_config_t;

typedef enum {
    CP2P_MDNS_DISCOVERED, /**< a new address of a peer */
    CP2P_MDNS_EXPIRED     /**< its TTL ran out, or the peer said goodbye */
} cp2p_mdns_event_type_t;

/** One event per address. peer and addr (without /p2p) are valid during the call. */
typedef void (*cp2p_mdns_event_fn)(cp2p_mdns_event_type_t type, const cp2p_peer_id_t *peer,
                                   const cp2p_multiaddr_t *addr, void *arg);

typedef struct cp2p_mdns_stats {
    uint64_t rx_packets;   /**< datagrams received */
    uint64_t rx_malformed; /**< not a DNS message we accept: dropped */
    uint64_t rx_rejected;  /**< a record for our service that is wrong (class, TXT, multiaddr, peer id): dropped */
    uint64_t tx_packets;
    uint64_t tx_errors;
    uint64_t discovered;   /**< events, as given to the callback */
    uint64_t expired;
    uint64_t over_limit;   /**< addresses ignored: the table, or one peer's or one sender's
                              share of it, is full */
} cp2p_mdns_stats_t;

/** Start on every interface that is up and multicast capable (not loopback
 * unless cfg->loopback), IPv4 224.0.0.251 and IPv6 ff02::fb, port 5353,
 * shared with other processes. cfg may be NULL. The host must outlive it. */
CP2P_API int cp2p_mdns_start(cp2p_host_t *h, const cp2p_mdns_config_t *cfg, cp2p_mdns_event_fn fn,
                             void *arg, cp2p_mdns_t **out);
/** Says goodbye (our records with TTL 0), closes the sockets; done (may be
 * NULL) runs once m is freed. No event is delivered after this call. */
CP2P_API void cp2p_mdns_stop(cp2p_mdns_t *m, void (*done)(void *arg), void *arg);
CP2P_API void cp2p_mdns_stats(const cp2p_mdns_t *m, cp2p_mdns_stats_t *out);
/** The samples, as a source for the metrics server (cp2p/metrics.h); m must
 * outlive the server. */
CP2P_API cp2p_metrics_source_t cp2p_mdns_metrics_source(const cp2p_mdns_t *m);
/** The random (or configured) name we answer with. */
CP2P_API const char *cp2p_mdns_peer_name(const cp2p_mdns_t *m);

#ifdef __cplusplus
}
#endif
#endif
