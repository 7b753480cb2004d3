/** @file
 * The peerstore: what the host knows about other peers (addresses with TTLs,
 * public key, protocols, agent and protocol version, signed peer record).
 * Sans-I/O: it keeps no timers; expiry is decided by the now_ms the caller
 * passes in (milliseconds on any monotonic clock, e.g. uv_now()). Bounded:
 * at most max_peers peers (the least recently seen is evicted) and
 * CP2P_PEERSTORE_MAX_ADDRS addresses per peer. Loop thread only. */
#ifndef CP2P_PEERSTORE_H
#define CP2P_PEERSTORE_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_peerstore cp2p_peerstore_t;

#define CP2P_PEERSTORE_DEFAULT_MAX_PEERS 10000
#define CP2P_PEERSTORE_MAX_ADDRS 64
#define CP2P_PEERSTORE_MAX_PROTOCOLS 256
#define CP2P_PEERSTORE_MAX_STRING 1024 /**< agent/protocol version, one protocol id */
#define CP2P_PEERSTORE_MAX_RECORD (64 * 1024)

/** TTLs in milliseconds (the values go-libp2p and js-libp2p use). */
#define CP2P_TTL_PERMANENT UINT64_MAX
#define CP2P_TTL_CONNECTED (UINT64_MAX - 1)       /**< while a connection is open */
#define CP2P_TTL_RECENTLY_CONNECTED (10 * 60 * 1000ULL)
#define CP2P_TTL_ADDRESS (60 * 60 * 1000ULL)      /**< learned from a third party */
#define CP2P_TTL_TEMP (2 * 60 * 1000ULL)

/** Where an address came from, worst first. Addresses are listed (and so
 * dialled) best source first, the most recently added or confirmed first
 * within a source. A new address displaces the worst, then the oldest, of a
 * full list, but never one from a better source; third-party addresses are
 * at most CP2P_PEERSTORE_MAX_THIRD_PARTY_ADDRS per peer (the newest kept),
 * so whatever other peers claim never pushes out what the peer itself said
 * or what a connection proved. */
typedef enum cp2p_addr_source {
    CP2P_ADDR_ANY = 0,         /**< in filters: every source */
    CP2P_ADDR_THIRD_PARTY = 1, /**< another peer said so (a DHT answer) */
    CP2P_ADDR_CLAIMED = 2,     /**< the peer itself (identify, its signed record, mDNS, its
                                  provider record) or our own user */
    CP2P_ADDR_CONFIRMED = 3,   /**< we connected to the peer there */
} cp2p_addr_source_t;
#define CP2P_PEERSTORE_MAX_THIRD_PARTY_ADDRS 8

/** max_peers 0 = CP2P_PEERSTORE_DEFAULT_MAX_PEERS. */
CP2P_API int cp2p_peerstore_new(size_t max_peers, cp2p_peerstore_t **out);
CP2P_API void cp2p_peerstore_free(cp2p_peerstore_t *ps);

/** How many peers are known. */
CP2P_API size_t cp2p_peerstore_count(const cp2p_peerstore_t *ps);
/** Fills out[0..cap) with known peers, most recently seen first; returns the total. */
CP2P_API size_t cp2p_peerstore_peers(const cp2p_peerstore_t *ps, cp2p_peer_id_t *out, size_t cap);
/** Mark the peer as seen (created if unknown), which protects it from eviction. */
CP2P_API int cp2p_peerstore_touch(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer);
CP2P_API int cp2p_peerstore_remove(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer);

/** Every setter below creates the peer if unknown (possibly evicting the least
 * recently seen one) and counts as seeing it. Strings and keys are copied. */

/** Add addresses valid for ttl_ms from now_ms, as CP2P_ADDR_CLAIMED. A known
 * address keeps the later of its old and new expiry (and the TTL that gave
 * it) and the better of its sources. Past CP2P_PEERSTORE_MAX_ADDRS, expired
 * addresses go first, then the rule above decides (the call still succeeds:
 * an address that finds no room is dropped). Invalid addresses are skipped.
 * An address is kept without a trailing `/p2p/<peer>` (`.../tcp/1/p2p/<peer>`
 * and `.../tcp/1` are one address); one ending in /p2p/ of another peer is
 * skipped. */
CP2P_API int cp2p_peerstore_add_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                      const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                                      uint64_t now_ms);
CP2P_API int cp2p_peerstore_add_addrs_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                           const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                                           uint64_t now_ms, cp2p_addr_source_t src);
/** Like add, but the expiry is set exactly; ttl_ms 0 removes the addresses. */
CP2P_API int cp2p_peerstore_set_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                      const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                                      uint64_t now_ms);
/** Addresses that were given old_ttl get new_ttl from now_ms (0 removes them),
 * e.g. CP2P_TTL_CONNECTED -> CP2P_TTL_RECENTLY_CONNECTED on disconnect. */
CP2P_API int cp2p_peerstore_update_addrs_ttl(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                             uint64_t old_ttl, uint64_t new_ttl, uint64_t now_ms);
/** The same for the addresses of one source only (CP2P_ADDR_ANY: all). */
CP2P_API int cp2p_peerstore_update_addrs_ttl_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                                  cp2p_addr_source_t src, uint64_t old_ttl,
                                                  uint64_t new_ttl, uint64_t now_ms);
/** The addresses still valid at now_ms, best first (see cp2p_addr_source_t):
 * fills out[0..cap) with views into the peerstore (valid until the next call
 * that modifies it) and returns the total count (0 for an unknown peer).
 * Does not count as seeing the peer. */
CP2P_API size_t cp2p_peerstore_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer, uint64_t now_ms,
                                     cp2p_multiaddr_t *out, size_t cap);
/** Only those from min_src or a better source (what we tell other peers
 * leaves out what third parties told us). */
CP2P_API size_t cp2p_peerstore_addrs_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                          uint64_t now_ms, cp2p_addr_source_t min_src,
                                          cp2p_multiaddr_t *out, size_t cap);
/** Drop expired addresses of every peer. */
CP2P_API void cp2p_peerstore_expire(cp2p_peerstore_t *ps, uint64_t now_ms);

/** CP2P_EPEERID if k is not the key of peer. */
CP2P_API int cp2p_peerstore_set_pubkey(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                       const cp2p_pubkey_t *k);
/** Borrowed, or NULL if unknown. */
CP2P_API const cp2p_pubkey_t *cp2p_peerstore_pubkey(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer);

/** Replaces the peer's protocol list; CP2P_ELIMIT past CP2P_PEERSTORE_MAX_PROTOCOLS,
 * CP2P_EINVAL for an empty or too long id (nothing is changed then). */
CP2P_API int cp2p_peerstore_set_protocols(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                          const char *const *protocols, size_t n);
/** Fills out[0..cap) with borrowed strings; returns the total count. */
CP2P_API size_t cp2p_peerstore_protocols(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                         const char **out, size_t cap);
/** 1 if the peer is known to speak protocol, else 0. */
CP2P_API int cp2p_peerstore_supports(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                     const char *protocol);

/** The peer's agent and protocol versions (identify's), copied. */
CP2P_API int cp2p_peerstore_set_agent_version(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                              const char *s);
CP2P_API int cp2p_peerstore_set_protocol_version(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                                 const char *s);
/** Borrowed, or NULL if unknown. */
CP2P_API const char *cp2p_peerstore_agent_version(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer);
CP2P_API const char *cp2p_peerstore_protocol_version(const cp2p_peerstore_t *ps,
                                                     const cp2p_peer_id_t *peer);

/** A verified signed peer record (the envelope bytes) with its seq. CP2P_EEXIST
 * if a record with the same or a higher seq is stored already. */
CP2P_API int cp2p_peerstore_set_record(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                       const uint8_t *envelope, size_t n, uint64_t seq);
/** Borrowed envelope bytes, or NULL (then *n is 0). */
CP2P_API const uint8_t *cp2p_peerstore_record(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                              size_t *n, uint64_t *seq);

#ifdef __cplusplus
}
#endif
#endif
