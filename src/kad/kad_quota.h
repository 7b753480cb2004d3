/* Per-peer store quotas (issue #14; no spec): how many records and provider
 * entries, and how many bytes, each remote peer holds in our DHT store, so
 * that one peer cannot fill it for everyone. Sans-I/O: expiry follows the
 * now_ms the caller passes in.
 *
 * A peer is charged for a (kind, key) once, however often it writes it (a
 * republish renews the charge), until the entry's expiry; a charge stays
 * when another peer overwrites the key (conservative: never under-counted).
 * The table holds at most max_entries charges of all peers together; past
 * it a new charge is refused too. The counts live in memory: after a
 * restart on an LMDB datastore each peer starts from nothing again. */
#ifndef CP2P_KAD_QUOTA_H
#define CP2P_KAD_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"

typedef enum { KAD_QUOTA_RECORD = 0, KAD_QUOTA_PROVIDER = 1 } kad_quota_kind_t;

typedef struct kad_quota_limits {
    uint32_t records;   /* per peer */
    uint32_t providers; /* per peer */
    uint64_t bytes;     /* per peer: keys and values */
    size_t max_entries; /* all peers together */
} kad_quota_limits_t;

typedef struct kad_quota kad_quota_t;

int kad_quota_new(const kad_quota_limits_t *limits, kad_quota_t **out);
void kad_quota_free(kad_quota_t *q);
/* Charge peer for holding key (kind) of `bytes` until expires_ms. 0, or
 * CP2P_ELIMIT when that would take the peer past a limit (after dropping its
 * charges expired at now_ms) or the table is full; CP2P_ENOMEM. */
int kad_quota_charge(kad_quota_t *q, const cp2p_peer_id_t *peer, kad_quota_kind_t kind,
                     const uint8_t *key, size_t key_len, uint64_t bytes, uint64_t now_ms,
                     uint64_t expires_ms);
/* What peer is charged for now: records, providers, bytes (0s if nothing). */
void kad_quota_of(const kad_quota_t *q, const cp2p_peer_id_t *peer, uint32_t *records,
                  uint32_t *providers, uint64_t *bytes);

#endif
