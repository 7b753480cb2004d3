/** @file
 * The host: one libp2p node on one libuv loop. It listens and dials over TCP,
 * secures connections (Noise, TLS or plaintext), muxes them (yamux, mplex), negotiates each
 * stream's protocol with multistream-select and routes inbound streams to the
 * handler registered for their protocol. Every call and callback runs on the
 * loop thread. */
#ifndef CP2P_HOST_H
#define CP2P_HOST_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cp2p/conn.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "cp2p/peerstore.h"
#include "cp2p/resources.h"
#include "cp2p/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_host cp2p_host_t;

/** Whether the host is reachable from the internet, as AutoNAT (cp2p/autonat.h)
 * finds out, or as the config forces it. */
typedef enum {
    CP2P_REACHABILITY_UNKNOWN = 0,
    CP2P_REACHABILITY_PUBLIC,
    CP2P_REACHABILITY_PRIVATE,
} cp2p_reachability_t;

/** Defaults for the zero fields of cp2p_host_config_t. */
#define CP2P_HOST_DEFAULT_MAX_CONNECTIONS 256
#define CP2P_HOST_DEFAULT_MAX_STREAMS_PER_CONN 256
#define CP2P_HOST_DEFAULT_MAX_STREAM_BUFFER (1024 * 1024) /**< bytes per stream and direction */
#define CP2P_HOST_MIN_STREAM_BUFFER (256 * 1024)      /**< smaller values are raised: yamux's initial window */
#define CP2P_HOST_DEFAULT_DIAL_TIMEOUT_MS 10000            /**< TCP connect, DNS included */
#define CP2P_HOST_DEFAULT_NEGOTIATE_TIMEOUT_MS 10000       /**< security + muxer, or one stream's protocol */
#define CP2P_HOST_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000        /**< an inbound connection's upgrade */
#define CP2P_HOST_DEFAULT_MAX_PENDING_INBOUND 256          /**< inbound connections still upgrading */
#define CP2P_HOST_DEFAULT_MAX_CONNS_PER_IP 16              /**< inbound, upgrading or open */
#define CP2P_HOST_DEFAULT_MAX_CONNS_PER_SUBNET 64          /**< IPv4 /24, IPv6 /56 */
/** Resource manager defaults (include/cp2p/resources.h, README "Limits").
 * G is the system memory limit in GiB (at least 1): stream counts scale
 * with it, as go-libp2p's do. */
#define CP2P_HOST_DEFAULT_PEER_CONNS 8               /**< per peer, either direction */
#define CP2P_HOST_DEFAULT_PEER_STREAMS_IN 512
#define CP2P_HOST_DEFAULT_PEER_STREAMS_OUT 1024
#define CP2P_HOST_DEFAULT_PROTOCOL_STREAMS_IN 1024   /**< x G */
#define CP2P_HOST_DEFAULT_PROTOCOL_STREAMS_OUT 4096  /**< x G */
#define CP2P_HOST_DEFAULT_SYSTEM_STREAMS_IN 4096     /**< x G */
#define CP2P_HOST_DEFAULT_SYSTEM_STREAMS_OUT 16384   /**< x G */
#define CP2P_HOST_DEFAULT_TRANSIENT_STREAMS_IN 1024  /**< negotiating, all peers */
#define CP2P_HOST_DEFAULT_AGENT_VERSION "cp2p/0.1.0"
#define CP2P_HOST_MAX_ANNOUNCE_ADDRS 32
/** Connection manager watermarks (go-libp2p's defaults): once a new
 * connection takes the count over high, the least valuable peers are
 * disconnected down to low. */
#define CP2P_HOST_DEFAULT_CONN_LOW_WATER 160
#define CP2P_HOST_DEFAULT_CONN_HIGH_WATER 192
#define CP2P_HOST_DEFAULT_CONN_GRACE_MS 20000
#define CP2P_HOST_NO_GRACE UINT32_MAX /**< conn_grace_ms: trim new connections too */

typedef struct cp2p_host_config {
    cp2p_privkey_t *identity;     /**< the host takes ownership; NULL = a fresh Ed25519 key */
    const char *const *muxers;    /**< preference order; NULL = {"/yamux/1.0.0", "/mplex/6.7.0"} */
    size_t n_muxers;
    /** preference order, from "/noise", "/tls/1.0.0", "/plaintext/2.0.0"; NULL = {"/noise"}.
     * Plaintext neither encrypts nor authenticates: each side only states a
     * public key, with no proof that it holds the private half, so anyone
     * may pass for any peer whose public key it knows (a dial to a peer ID
     * checks the claim, not its truth). For tests and trusted networks only. */
    const char *const *security;
    size_t n_security;
    const char *agent_version;    /**< copied; NULL = CP2P_HOST_DEFAULT_AGENT_VERSION */
    uint32_t max_connections;     /**< inbound and outbound together */
    uint32_t max_streams_per_conn;
    uint32_t max_stream_buffer;   /**< also the largest yamux receive window we grant */
    uint32_t dial_timeout_ms;
    uint32_t negotiate_timeout_ms; /**< also: how long a remote may read none of our output */
    uint32_t conn_low_water;      /**< trim down to this many connections */
    uint32_t conn_high_water;     /**< trim when a new connection goes over this; low <= high */
    uint32_t conn_grace_ms;       /**< trimming over high water spares connections younger than
                                     this; CP2P_HOST_NO_GRACE for none */
    /** Admission: inbound connections that have not finished their upgrade
     * are counted apart from max_connections (so they never block our own
     * dials) up to max_pending_inbound; past it, the oldest upgrading
     * connection of the address that has the most gives way to the new one,
     * so one address cannot hold every slot. An inbound upgrade gets
     * handshake_timeout_ms, less than a dial's timeout. */
    uint32_t max_pending_inbound;
    uint32_t handshake_timeout_ms;
    /** Memory remotes may make the host hold, all connections together: their
     * output queues and stream receive buffers. Past it, a connection that is
     * read is not read again until the total is under three quarters (each
     * connection's own bounds still apply). 0 = an eighth of the machine's
     * memory, at least 64 MiB. */
    uint32_t max_memory_mb;
    /** Inbound connections (upgrading or open) from one IP address, and from
     * one subnet (IPv4 /24, IPv6 /56). Loopback addresses are not limited
     * unless limit_loopback is set (tests, and hosts that share a machine). */
    uint32_t max_conns_per_ip;
    uint32_t max_conns_per_subnet;
    int limit_loopback;
    /** Addresses a peer claims (identify, its signed record, its DHT answers
     * and provider records) are kept only if they fit how it was reached
     * (see cp2p_host_plausible_addrs). keep_private_addrs keeps loopback and
     * private claims from anyone: private deployments that route them. */
    int keep_private_addrs;
    /** The resource manager's scopes (include/cp2p/resources.h). A 0 field
     * takes its default, CP2P_RC_UNLIMITED lifts the limit. Defaults:
     *   system     memory max_memory_mb, conns max_connections, streams in
     *              4096 x G and out 16384 x G, fds seven eighths of the
     *              soft RLIMIT_NOFILE (the rest is for files and the store)
     *   transient  conns_in max_pending_inbound, streams_in 1024, memory a
     *              sixteenth of the system's (at least 16 MiB)
     *   peer       conns 8, streams in 512 and out 1024, memory a sixteenth
     *              of the system's (at least 64 MiB)
     *   protocol   streams in 1024 x G and out 4096 x G, memory a quarter of
     *              the system's (at least 64 MiB); per protocol, see
     *              cp2p_host_set_protocol_limits
     * Fields not listed have no limit by default. */
    cp2p_rc_limits_t system_limits, transient_limits, peer_limits, protocol_limits;
    /** A private network's pre-shared key (include/cp2p/pnet.h), 32 bytes,
     * copied; NULL = none. With the environment variable LIBP2P_FORCE_PNET=1
     * (the spec's), cp2p_host_new refuses to start without one
     * (CP2P_EINVAL). */
    const uint8_t *psk;
    /** The certificate (PEM, chain allowed) and key a `/wss` (`/tls/ws`)
     * listener shows browsers and other peers; the host keeps the paths
     * (they must outlive it) and reads the files at each cp2p_host_listen.
     * Dials to /wss verify the server against the system's roots
     * (SSL_CERT_FILE, SSL_CERT_DIR). */
    const char *wss_cert_file, *wss_key_file;
    /** CP2P_REACHABILITY_PUBLIC or _PRIVATE: what cp2p_host_reachability
     * says from the start, whatever AutoNAT finds (go-libp2p's
     * ForceReachabilityPublic/Private); 0 lets AutoNAT decide. */
    cp2p_reachability_t force_reachability;
} cp2p_host_config_t;

/** cfg may be NULL (all defaults). On failure a given identity is freed too. */
CP2P_API int cp2p_host_new(uv_loop_t *loop, const cp2p_host_config_t *cfg, cp2p_host_t **out);
/** Closes listeners and connections (streams are reset, pending callbacks run
 * with CP2P_ECANCELED or CP2P_ERESET on later loop turns, never inside this
 * call); done runs after them, once every handle is closed and h is freed.
 * What the muxers already took still goes out (see cp2p_conn_close), so done
 * may take up to a couple of seconds. Safe from any callback; a second call
 * does nothing. */
CP2P_API void cp2p_host_close(cp2p_host_t *h, void (*done)(void *arg), void *arg);

/** The host's peer ID, key, loop, peerstore and agent version: owned by
 * the host, valid until its close is done. */
CP2P_API const cp2p_peer_id_t *cp2p_host_peer_id(const cp2p_host_t *h);
CP2P_API const cp2p_privkey_t *cp2p_host_identity(const cp2p_host_t *h);
CP2P_API uv_loop_t *cp2p_host_loop(cp2p_host_t *h);
CP2P_API cp2p_peerstore_t *cp2p_host_peerstore(cp2p_host_t *h);
CP2P_API const char *cp2p_host_agent_version(const cp2p_host_t *h);

/** Start listening on a transport address (`/ip4|ip6|dns|dns4|dns6/../tcp/<port>`,
 * port 0 picks a free port; with the relay client enabled, cp2p/relay.h,
 * `<relay addr>/p2p/<relay>/p2p-circuit` reserves on that relay). May be
 * called several times. Names are resolved synchronously here since
 * listening is a start-up step. */
CP2P_API int cp2p_host_listen(cp2p_host_t *h, const cp2p_multiaddr_t *ma);
/** The addresses we listen on, with the bound ports, 0.0.0.0 and :: expanded to
 * the interface addresses. *addrs is a malloc'd array of malloc'd multiaddrs:
 * the caller frees each (cp2p_multiaddr_free) and the array (free), or all
 * at once with cp2p_multiaddr_array_free. */
CP2P_API int cp2p_host_listen_addrs(cp2p_host_t *h, cp2p_multiaddr_t **addrs, size_t *n);
/** Advertise addrs (copied, at most CP2P_HOST_MAX_ANNOUNCE_ADDRS) instead of
 * the listen addresses: for a host behind NAT, a load balancer or a
 * Kubernetes Service. n = 0 goes back to the listen addresses. Peers learn
 * the change by identify push. */
CP2P_API int cp2p_host_set_announce_addrs(cp2p_host_t *h, const cp2p_multiaddr_t *addrs, size_t n);
/** The addresses we advertise (identify, DHT provider records, mDNS, cp2pd):
 * the announce addresses if set, else the listen addresses; then the
 * external addresses AutoNAT confirmed (cp2p/autonat.h). Freed as for
 * cp2p_host_listen_addrs. */
CP2P_API int cp2p_host_addrs(cp2p_host_t *h, cp2p_multiaddr_t **addrs, size_t *n);

/** An inbound stream negotiated to the handler's protocol. The handler gets a
 * reference to s (unref it when done; the simplest handler keeps it until the
 * stream ends). */
typedef void (*cp2p_stream_handler_fn)(cp2p_stream_t *s, void *arg);
/** protocol_id is copied; a second call for the same id replaces the handler. */
CP2P_API int cp2p_host_set_handler(cp2p_host_t *h, const char *protocol_id, cp2p_stream_handler_fn fn,
                                   void *arg);
CP2P_API int cp2p_host_remove_handler(cp2p_host_t *h, const char *protocol_id);
/** Registered protocol ids (for identify): fills out[0..cap), returns the total
 * count. The strings are owned by the host and valid until the handler is removed. */
CP2P_API size_t cp2p_host_protocols(cp2p_host_t *h, const char **out, size_t cap);

/** Connection manager. A peer's value is the sum of its tag weights; tags
 * outlive connections. tag is copied, 1..64 bytes; a peer has at most 16
 * tags (else CP2P_ELIMIT); tagging again replaces the weight. Untagging a
 * tag that is not there succeeds. */
CP2P_API int cp2p_host_tag_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, const char *tag, int weight);
CP2P_API int cp2p_host_untag_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, const char *tag);
/** Close every connection of the least valuable peers (lowest value first,
 * untagged before tagged at equal value, then the longest connected) until
 * at most conn_low_water connections remain. Returns the number of peers
 * disconnected. The host also trims when a new connection takes the count
 * over conn_high_water, sparing peers connected for less than conn_grace_ms
 * (as go-libp2p does: a new connection is not cut in the middle of its first
 * requests); a connect whose connection goes then ends with CP2P_ECLOSED.
 * This explicit call spares nobody. */
CP2P_API size_t cp2p_host_trim(cp2p_host_t *h);

/** status 0: connected to peer (peer is valid during the call only). */
typedef void (*cp2p_connect_cb)(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer,
                                void *arg);
/** Dial addr (`/ip4/../tcp/..[/p2p/<id>]`). With /p2p/, the handshake must prove
 * that id (else CP2P_EPEERID) and an existing connection to it is reused.
 * Errors: CP2P_ECONNREFUSED, CP2P_EUNREACHABLE, CP2P_ETIMEOUT, CP2P_ENEGOTIATE,
 * CP2P_EPEERID, CP2P_ELIMIT, CP2P_EPROTO, CP2P_ECLOSED (trimmed at once); through
 * a relay (`.../p2p/<relay>/p2p-circuit/p2p/<id>`, cp2p/relay.h) also
 * CP2P_ENORESERVATION and CP2P_EREFUSED.
 * cb runs exactly once, never before this function returns. */
CP2P_API int cp2p_host_connect(cp2p_host_t *h, const cp2p_multiaddr_t *addr, cp2p_connect_cb cb,
                               void *arg);
/** Like cp2p_host_connect, but to a peer whose addresses are in the peerstore. */
CP2P_API int cp2p_host_connect_peer(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_connect_cb cb,
                                    void *arg);
/** Cancel every cp2p_host_connect, cp2p_host_connect_peer and
 * cp2p_host_new_stream under way whose arg is arg: each one's callback runs
 * once, on a later loop turn, with CP2P_ECANCELED (never with a result that
 * comes later: a connection made stays, a stream opened is reset). Returns
 * how many were cancelled (0: none under way), or CP2P_ENOMEM. */
CP2P_API int cp2p_host_cancel(cp2p_host_t *h, void *arg);
/** The live connection to peer, or NULL (borrowed). */
CP2P_API cp2p_conn_t *cp2p_host_conn_to(cp2p_host_t *h, const cp2p_peer_id_t *peer);
/** Connections being upgraded or open. */
CP2P_API size_t cp2p_host_conn_count(const cp2p_host_t *h);

/** Of the addresses in[0..n) that a peer claims, those it may claim when it
 * came over via (its connection; NULL counts as loopback), as views into in,
 * in their order, to out[0..n); returns how many. Unspecified, multicast,
 * broadcast and link-local addresses never are; over a public address only
 * public ones are; over a private one all but loopback (go-libp2p's rule);
 * over loopback all. Names (dns, ...) cannot be judged and are kept.
 * keep_private_addrs keeps loopback and private ones whatever via is. */
CP2P_API size_t cp2p_host_plausible_addrs(cp2p_host_t *h, const cp2p_conn_t *via,
                                          const cp2p_multiaddr_t *in, size_t n, cp2p_multiaddr_t *out);

typedef struct cp2p_host_stats {
    uint64_t conns_opened;   /**< upgraded, inbound and outbound */
    uint64_t conns_failed;   /**< upgrade failed: protocol error, timeout, wrong peer */
    uint64_t conns_rejected; /**< inbound over max_connections, or made to give way to a
                                newer one over max_pending_inbound */
    uint64_t conns_errored;  /**< closed because the remote broke a protocol or stopped
                                reading our output once open */
    uint64_t streams_opened_in;  /**< negotiated to a protocol, by the remote */
    uint64_t streams_opened_out; /**< negotiated to a protocol, by us */
    uint64_t streams_open;       /**< negotiated and not yet closed or reset */
    uint64_t streams_bad;        /**< reset because the remote broke the protocol negotiation */
    uint64_t bytes_in;           /**< stream payload received (after negotiation) */
    uint64_t bytes_out;          /**< stream payload written, as the muxer took it */
    uint64_t memory_used;        /**< held for remotes now (see max_memory_mb) */
    uint64_t memory_limit;
    uint64_t memory_peak;
    uint64_t memory_holds;       /**< times a connection was not read for it */
    uint64_t streams_refused;    /**< inbound streams refused or reset for a resource limit */
    uint64_t addrs_dropped;      /**< claimed addresses that did not fit how the claim came */
} cp2p_host_stats_t;
/** The host's counters now (see cp2p_host_stats_t). */
CP2P_API void cp2p_host_stats(cp2p_host_t *h, cp2p_host_stats_t *out);

/** The resource manager's scopes, used against their limits: fills
 * out[0..cap) with system, transient, peer (every peer: the fullest one's
 * use), then each protocol seen; returns the number there are. Names are
 * valid until the host is closed. */
CP2P_API size_t cp2p_host_resources(cp2p_host_t *h, cp2p_rc_scope_stat_t *out, size_t cap);
/** One peer's scope; CP2P_ENOTFOUND if it has no connection. */
CP2P_API int cp2p_host_peer_resources(cp2p_host_t *h, const cp2p_peer_id_t *peer,
                                      cp2p_rc_scope_stat_t *out);
/** Limits for one protocol's scope instead of protocol_limits (0 fields keep
 * those; CP2P_RC_UNLIMITED lifts one). CP2P_ELIMIT past 256 protocols. */
CP2P_API int cp2p_host_set_protocol_limits(cp2p_host_t *h, const char *protocol,
                                           const cp2p_rc_limits_t *limits);

/** Open a stream to peer, connecting first (addresses from the peerstore) if
 * there is no connection, and negotiate the first of protocols[0..n) the
 * remote supports (CP2P_ENEGOTIATE if none). The strings are copied. */
CP2P_API int cp2p_host_new_stream(cp2p_host_t *h, const cp2p_peer_id_t *peer,
                                  const char *const *protocols, size_t n, cp2p_stream_open_cb cb,
                                  void *arg);

typedef enum {
    CP2P_EVENT_CONNECTED,        /**< peer, conn */
    CP2P_EVENT_DISCONNECTED,     /**< peer, conn (no new streams can be opened on it) */
    CP2P_EVENT_LISTEN_ADDR,      /**< addr: a new address we advertise (listen or announce) */
    CP2P_EVENT_PEER_IDENTIFIED,  /**< peer, conn: emitted by identify */
    CP2P_EVENT_PEER_DISCOVERED,  /**< peer, addr: emitted by discovery (mDNS); addr is in the peerstore */
    CP2P_EVENT_REACHABILITY,     /**< reachability: it changed (AutoNAT) */
    CP2P_EVENT_OBSERVED_ADDR     /**< peer, conn, addr: where the peer says it sees us (identify) */
} cp2p_event_type_t;

typedef struct cp2p_event {
    cp2p_event_type_t type;
    const cp2p_peer_id_t *peer;
    cp2p_conn_t *conn;
    const cp2p_multiaddr_t *addr;
    cp2p_reachability_t reachability; /**< CP2P_EVENT_REACHABILITY: the new one */
} cp2p_event_t;

typedef void (*cp2p_event_fn)(const cp2p_event_t *ev, void *arg);
/** Reachability now: forced by the config, else AutoNAT's latest verdict
 * (unknown until AutoNAT has one). */
CP2P_API cp2p_reachability_t cp2p_host_reachability(const cp2p_host_t *h);
/** 1 if the config forces the reachability. */
CP2P_API int cp2p_host_reachability_forced(const cp2p_host_t *h);
/** "public", "private" or "unknown". */
CP2P_API const char *cp2p_reachability_name(cp2p_reachability_t r);

/** Every subscriber sees every event. An event a public call causes (a
 * listen, a close, a trim) is told on a later loop turn, never inside that
 * call; what it points to stays valid during the subscriber's call only. */
CP2P_API int cp2p_host_subscribe(cp2p_host_t *h, cp2p_event_fn fn, void *arg);
CP2P_API int cp2p_host_unsubscribe(cp2p_host_t *h, cp2p_event_fn fn, void *arg);
/** Run fn(arg) on a later loop turn, before the host's close is done (how a
 * module keeps libuv's rule: a callback its call causes runs after the call
 * returns). CP2P_ENOMEM, or CP2P_ESTATE once the host is past closing. */
CP2P_API int cp2p_host_later(cp2p_host_t *h, void (*fn)(void *arg), void *arg);
/** The host's one thread-safe call: from any thread, run fn(arg) on the loop
 * thread soon (posts from one thread run in their order). Work posted
 * before the host's close is done still runs, ahead of done; from then on
 * this returns CP2P_ESTATE. h must still exist: the program must stop
 * posting before done returns. CP2P_ENOMEM. Every other function of the
 * library is for the loop thread only (but cp2p/log.h's). */
CP2P_API int cp2p_host_post(cp2p_host_t *h, void (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
