/* Kademlia routing table (libp2p kad-dht spec, "Kademlia routing table";
 * Maymounkov-Mazieres k-buckets). Keys are sha256 of a peer ID's multihash
 * bytes and distance is their XOR. Sans-I/O: no timers; every call that
 * depends on time takes now_ms (any monotonic clock).
 *
 * Bucket i holds the peers whose key shares exactly i leading bits with ours
 * (i in 0..255), at most k of them (least recently seen first), plus up to
 * CP2P_KAD_REPLACEMENTS waiting replacements. A full bucket does not take a
 * newcomer: add() reports the least recently seen member so the caller can
 * ping it and remove() it if dead, which promotes the freshest replacement.
 * Only peers that act as DHT servers should be added; that is the caller's
 * check. */
#ifndef CP2P_KAD_TABLE_H
#define CP2P_KAD_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"

#define CP2P_KAD_KEY_LEN 32
#define CP2P_KAD_MAX_K 64
#define CP2P_KAD_BUCKETS 256
#define CP2P_KAD_REPLACEMENTS 8
/* Refresh targets are found by trial hashing: 2^(cpl+1) tries on average. */
#define CP2P_KAD_MAX_REFRESH_CPL 15

typedef struct cp2p_kad_key {
    uint8_t b[CP2P_KAD_KEY_LEN];
} cp2p_kad_key_t;

/* sha256 of p[0..n): the position of a record key or provider key. */
int cp2p_kad_key_of(const uint8_t *p, size_t n, cp2p_kad_key_t *out);
int cp2p_kad_key_of_peer(const cp2p_peer_id_t *id, cp2p_kad_key_t *out);
/* Leading bits a and b share, 0..256. */
unsigned cp2p_kad_key_cpl(const cp2p_kad_key_t *a, const cp2p_kad_key_t *b);
/* <0 if a is closer to target than b, 0 if as close (a == b), >0 if farther. */
int cp2p_kad_key_cmp(const cp2p_kad_key_t *target, const cp2p_kad_key_t *a,
                     const cp2p_kad_key_t *b);

typedef struct cp2p_kad_table cp2p_kad_table_t;

/* k 0 = CP2P_DHT_DEFAULT_K; k over CP2P_KAD_MAX_K is CP2P_EINVAL. */
int cp2p_kad_table_new(const cp2p_peer_id_t *self, size_t k, cp2p_kad_table_t **out);
void cp2p_kad_table_free(cp2p_kad_table_t *t);

/* Insert peer or mark it as just seen. 0 when it is in the table after the
 * call. CP2P_ELIMIT when its bucket is full: the peer waits as a replacement
 * and *stale (if not NULL) gets the bucket's least recently seen member.
 * CP2P_EINVAL for our own ID. */
int cp2p_kad_table_add(cp2p_kad_table_t *t, const cp2p_peer_id_t *peer, uint64_t now_ms,
                       cp2p_peer_id_t *stale);
/* fn(peer, 1, arg) when peer becomes a member (added, or promoted from the
 * replacements), fn(peer, 0, arg) when it stops being one; fn must not
 * change the table. NULL stops it. */
typedef void (*cp2p_kad_table_change_fn)(const cp2p_peer_id_t *peer, int member, void *arg);
void cp2p_kad_table_on_change(cp2p_kad_table_t *t, cp2p_kad_table_change_fn fn, void *arg);
/* Drop a dead peer (from the bucket or the replacements); its bucket takes
 * the most recently seen replacement. CP2P_ENOTFOUND if unknown. */
int cp2p_kad_table_remove(cp2p_kad_table_t *t, const cp2p_peer_id_t *peer);
int cp2p_kad_table_contains(const cp2p_kad_table_t *t, const cp2p_peer_id_t *peer);
size_t cp2p_kad_table_size(const cp2p_kad_table_t *t);
size_t cp2p_kad_table_k(const cp2p_kad_table_t *t);
/* The up to cap members closest to target, closest first; returns how many. */
size_t cp2p_kad_table_closest(const cp2p_kad_table_t *t, const cp2p_kad_key_t *target,
                              cp2p_peer_id_t *out, size_t cap);
/* Every member (for saving the table); fills out[0..cap), returns the total. */
size_t cp2p_kad_table_peers(const cp2p_kad_table_t *t, cp2p_peer_id_t *out, size_t cap);

/* Buckets not refreshed since now_ms - max_age_ms, from 0 up to one past the
 * deepest non-empty bucket and at most CP2P_KAD_MAX_REFRESH_CPL: fills
 * cpls[0..cap), returns how many. A lookup toward a key refreshes its bucket
 * (cp2p_kad_table_mark_refreshed). */
size_t cp2p_kad_table_stale_buckets(const cp2p_kad_table_t *t, uint64_t now_ms,
                                    uint64_t max_age_ms, unsigned *cpls, size_t cap);
void cp2p_kad_table_mark_refreshed(cp2p_kad_table_t *t, const cp2p_kad_key_t *target,
                                   uint64_t now_ms);
/* A random peer ID (sha2-256 form) whose key shares exactly cpl leading bits
 * with ours: the FIND_NODE target that refreshes bucket cpl. */
int cp2p_kad_table_refresh_target(const cp2p_kad_table_t *t, unsigned cpl, cp2p_peer_id_t *out);

#endif
