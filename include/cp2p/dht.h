/** @file
 * Kademlia DHT (libp2p kad-dht spec) on a host: peer routing, values and
 * provider records over /ipfs/kad/1.0.0. Loop thread only.
 *
 * Implemented by src/kad/kad.c (operations), src/kad/kad_rpc.c (the wire)
 * and src/kad/kad_write.c (store writes on libuv's pool) on top of the
 * sans-I/O engines in src/kad.
 *
 * Every asynchronous call takes a callback that runs exactly once, never
 * before the call returns; cp2p_dht_free() runs pending ones with
 * CP2P_ECANCELED (do not call it from inside a dht callback). Keys are bytes
 * (record keys such as `/pk/<id>`, provider keys being multihashes); the
 * library copies them. Records under "/pk/" and "/ipns/" are verified; keys
 * in open_namespaces, and keys without a namespace if open_keys is set, take
 * any value (the first value a lookup finds wins), from anyone: nobody owns
 * them, so any peer may overwrite them. Other keys are refused, as
 * go-libp2p-kad-dht refuses them. */
#ifndef CP2P_DHT_H
#define CP2P_DHT_H

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

#define CP2P_DHT_PROTOCOL "/ipfs/kad/1.0.0"

/** Defaults for the zero fields of cp2p_dht_config_t (the spec's and go's);
 * src/kad uses these too. */
#define CP2P_DHT_DEFAULT_K 20
#define CP2P_DHT_DEFAULT_ALPHA 3
#define CP2P_DHT_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define CP2P_DHT_DEFAULT_QUERY_TIMEOUT_MS 60000
#define CP2P_DHT_DEFAULT_REFRESH_MS (10ULL * 60 * 1000)
#define CP2P_DHT_DEFAULT_RECORD_REPUBLISH_MS (60ULL * 60 * 1000)
#define CP2P_DHT_DEFAULT_PROVIDER_REPUBLISH_MS (22ULL * 3600 * 1000)
#define CP2P_DHT_MAX_PROVIDERS 256
#define CP2P_DHT_MAX_SEEDS 64

typedef enum {
    CP2P_DHT_MODE_SERVER = 0, /**< answers queries and enters others' routing tables */
    CP2P_DHT_MODE_CLIENT = 1  /**< only asks; registers no handler */
} cp2p_dht_mode_t;

typedef struct cp2p_dht_config {
    const char *protocol;          /**< copied; NULL = CP2P_DHT_PROTOCOL */
    cp2p_dht_mode_t mode;
    uint32_t k;
    uint32_t alpha;
    uint32_t request_timeout_ms;   /**< one RPC */
    uint32_t query_timeout_ms;     /**< a whole lookup */
    uint32_t quorum;               /**< put: stores that must succeed; get: values to collect;
                                      0 = a majority of k */
    const char *datastore;         /**< NULL = memory; a directory = LMDB (records, providers,
                                      routing table with a few addresses per peer, so a
                                      restart needs no bootstrap). Writes run on libuv's
                                      pool; a PUT_VALUE is acknowledged, and a put or
                                      provide reported, only after its commit. */
    uint64_t refresh_ms;           /**< routing table bucket refresh */
    uint64_t record_republish_ms;  /**< records we put */
    uint64_t provider_republish_ms;/* keys we provide */
    /** Keys without a namespace ("k1", as rust-libp2p's demo and libp2p's
     * kad spec allow) take any value from anyone: 1 accepts them (rust-
     * libp2p's default), 0 refuses them (go-libp2p's and js-libp2p's). */
    int open_keys;
    const char *const *open_namespaces; /**< e.g. {"test"}: "/test/..." keys take any value */
    size_t n_open_namespaces;
    /** What one remote peer may hold in our store at a time (its PUT_VALUEs
     * and ADD_PROVIDERs past it are refused: the stream is reset). 0 = a
     * sixteenth of the store: 1024 records, 8192 provider entries, 16 MiB. */
    uint32_t max_records_per_peer;
    uint32_t max_providers_per_peer;
    uint64_t max_bytes_per_peer;
} cp2p_dht_config_t;

typedef struct cp2p_dht cp2p_dht_t;

/** How the peers asked by one operation answered. For a put or provide that
 * got as far as storing, the store requests; otherwise the lookup's. */
typedef struct cp2p_dht_outcome {
    uint32_t asked;       /**< peers sent a request */
    uint32_t answered;    /**< answered it (a put or provide: acknowledged the store) */
    uint32_t refused;     /**< answered with a refusal: reset the stream, closed it
                             unanswered, or do not speak the DHT protocol (a
                             js-libp2p or go-libp2p peer refuses a record whose key
                             has no namespace it validates) */
    uint32_t unreachable; /**< no connection or stream could be opened */
    uint32_t timed_out;   /**< no answer within request_timeout_ms */
    uint32_t needed;      /**< a put or provide: acknowledgements the quorum needed */
    int bootstrap_wait;   /**< the operation found the routing table empty and waited
                             for the bootstrap peers; the counts are then those of
                             the last bootstrap attempt */
} cp2p_dht_outcome_t;

typedef struct cp2p_dht_stats {
    uint64_t requests_in;      /**< RPCs answered */
    uint64_t requests_out;     /**< RPCs sent */
    uint64_t bad_messages;     /**< malformed or oversized remote messages (stream reset) */
    uint64_t invalid_records;  /**< records refused by validation */
    uint64_t stale_records;    /**< records refused as worse than the one held (an IPNS
                                  record of a lower sequence: a rollback) */
    uint64_t timeouts;         /**< RPCs that hit request_timeout_ms */
    uint64_t quota_refused;    /**< stores refused: the peer held its quota (max_*_per_peer) */
    uint32_t last_hops;        /**< the lookup that ended last: hops from us to the peer
                                  that gave its answer (read it in the callback) */
    cp2p_dht_outcome_t last;   /**< the operation that ended last (read it in the callback) */
    uint64_t not_stored;       /**< valid records and providers from peers that were not
                                  stored: the store or its write queue full, or a write
                                  failed (a PUT_VALUE's stream is reset) */
} cp2p_dht_stats_t;

/** cfg may be NULL. In server mode the protocol handler is registered on h.
 * A datastore that cannot be opened is an error (CP2P_EPARSE, CP2P_EIO). */
CP2P_API int cp2p_dht_new(cp2p_host_t *h, const cp2p_dht_config_t *cfg, cp2p_dht_t **out);
/** Close the DHT, from anywhere (its own callbacks included): on the next
 * loop turn it unregisters the handler, cancels its operations (their
 * callbacks run once, with CP2P_ECANCELED), untags the routing table's
 * peers and closes the datastore once its last write ended; done (may be
 * NULL) runs when all of it is gone, d with it. Calls that start operations
 * return CP2P_ESTATE from this call on. Close the DHT before its host. */
CP2P_API void cp2p_dht_close(cp2p_dht_t *d, void (*done)(void *arg), void *arg);
/** The same at once: cancelled callbacks run inside this call, so it must
 * not be called from a DHT callback; the handles still close on later
 * turns (keep running the loop). A second call, or one after
 * cp2p_dht_close's teardown began, does nothing. */
CP2P_API void cp2p_dht_free(cp2p_dht_t *d);

typedef void (*cp2p_dht_done_cb)(cp2p_dht_t *d, int status, void *arg);
/** value is valid during the call only. */
typedef void (*cp2p_dht_value_cb)(cp2p_dht_t *d, int status, const uint8_t *value, size_t n,
                                  void *arg);
/** peers[0..n) are valid during the call only; their addresses are in the
 * host's peerstore. */
typedef void (*cp2p_dht_peers_cb)(cp2p_dht_t *d, int status, const cp2p_peer_id_t *peers,
                                  size_t n, void *arg);

/** Add a known DHT server (e.g. a bootstrap peer) with its addresses. Such
 * peers (at most CP2P_DHT_MAX_SEEDS) stay seeds: whenever the routing table is
 * empty (a failed first dial, a bootstrap peer that starts later, every peer
 * gone) they are tried again, a second later, then with the delay doubling up
 * to a minute; a lookup issued meanwhile waits for them (within
 * query_timeout_ms) and brings the next try to within a second. */
CP2P_API int cp2p_dht_add_peer(cp2p_dht_t *d, const cp2p_peer_id_t *peer, const cp2p_multiaddr_t *addrs,
                               size_t n);
/** Look up our own ID and refresh stale buckets; status 0 if the routing
 * table holds at least one peer afterwards. */
CP2P_API int cp2p_dht_bootstrap(cp2p_dht_t *d, cp2p_dht_done_cb cb, void *arg);

/** Validate, store locally and PUT_VALUE at the k closest peers; status 0
 * once quorum peers took it (all of them when fewer than quorum were found).
 * Reaching too few, it looks again up to twice, a second apart, within
 * query_timeout_ms; then the status says why (stats.last has the counts):
 * CP2P_EQUORUM (some took it, too few), CP2P_EREFUSED (peers answered and
 * refused it), CP2P_ETIMEOUT, CP2P_EUNREACHABLE, or CP2P_ENOTFOUND (no peer to
 * ask: an empty routing table and no bootstrap peer). Lookups that reach no
 * peer fail with those same codes. Republished every record_republish_ms.
 * Returns CP2P_EREFUSED at once when we hold a better record for the key (an
 * IPNS record of a higher sequence); peers refuse such a record too. */
CP2P_API int cp2p_dht_put(cp2p_dht_t *d, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len, cp2p_dht_done_cb cb, void *arg);
/** GET_VALUE toward the k closest; the best valid value once quorum values
 * arrived or the lookup ended (CP2P_ENOTFOUND if none). Peers that sent an
 * older value are sent the best one. */
CP2P_API int cp2p_dht_get(cp2p_dht_t *d, const uint8_t *key, size_t key_len, cp2p_dht_value_cb cb,
                          void *arg);
/** ADD_PROVIDER to the k closest peers (retried as a put is); renewed every
 * provider_republish_ms. */
CP2P_API int cp2p_dht_provide(cp2p_dht_t *d, const uint8_t *key, size_t key_len, cp2p_dht_done_cb cb,
                              void *arg);
/** GET_PROVIDERS until max providers (0 = CP2P_DHT_MAX_PROVIDERS) are known
 * or the lookup ends; CP2P_ENOTFOUND if there is none. */
CP2P_API int cp2p_dht_find_providers(cp2p_dht_t *d, const uint8_t *key, size_t key_len, size_t max,
                                     cp2p_dht_peers_cb cb, void *arg);
/** FIND_NODE for peer: status 0 with peers = {peer} once an address of it is
 * known, CP2P_ENOTFOUND if the lookup ends without one. */
CP2P_API int cp2p_dht_find_peer(cp2p_dht_t *d, const cp2p_peer_id_t *peer, cp2p_dht_peers_cb cb,
                                void *arg);
/** The k closest peers to key that answered a FIND_NODE lookup. */
CP2P_API int cp2p_dht_closest_peers(cp2p_dht_t *d, const uint8_t *key, size_t key_len,
                                    cp2p_dht_peers_cb cb, void *arg);

/** Cancel every operation under way whose arg is arg (a put, get, provide,
 * find, bootstrap): each one's callback runs once, on a later loop turn,
 * with CP2P_ECANCELED. Returns how many (0: none under way). */
CP2P_API int cp2p_dht_cancel(cp2p_dht_t *d, void *arg);
CP2P_API size_t cp2p_dht_routing_table_size(const cp2p_dht_t *d);
CP2P_API const cp2p_dht_stats_t *cp2p_dht_stats(const cp2p_dht_t *d);

/** What the node's store holds now (for metrics): records and provider records. */
typedef struct cp2p_dht_holdings {
    size_t records;
    size_t providers;
} cp2p_dht_holdings_t;
/** What the DHT holds in its store now: records and provider entries. */
CP2P_API void cp2p_dht_holdings(const cp2p_dht_t *d, cp2p_dht_holdings_t *out);

/** The DHT's samples, as a source for the metrics server (cp2p/metrics.h);
 * d must outlive the server. */
CP2P_API cp2p_metrics_source_t cp2p_dht_metrics_source(const cp2p_dht_t *d);

#ifdef __cplusplus
}
#endif
#endif
