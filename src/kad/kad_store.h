/* The Kademlia DHT's local stores (libp2p kad-dht spec, "Value storage and
 * retrieval", "Content provider advertisement and discovery"): records by key,
 * provider peer IDs by key, and the saved routing table. Two backends: memory
 * (the default) and LMDB in a directory, where every call that returned
 * success has been committed and synced (it survives kill -9).
 *
 * Sans-I/O in time: expiry follows the now_ms the caller passes in, which
 * must be wall-clock milliseconds since the Unix epoch because the LMDB store
 * outlives the process. Nothing is validated here; the caller validates
 * records (kad_validate.h) before storing them.
 *
 * Limits (zero fields of cp2p_kad_store_limits_t take the defaults): keys are
 * at most CP2P_KAD_MAX_KEY bytes and values CP2P_KAD_MAX_VALUE (CP2P_EOVERFLOW);
 * past max_records records, max_providers provider entries in all,
 * max_providers_per_key per key, max_peers saved peers or max_bytes of data
 * (the LMDB map size) a new entry is refused with CP2P_ELIMIT; entries already
 * stored are never evicted to make room. */
#ifndef CP2P_KAD_STORE_H
#define CP2P_KAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"
#include "kad/kad_msg.h"

#define CP2P_KAD_RECORD_TTL_MS (36ULL * 3600 * 1000)
#define CP2P_KAD_PROVIDER_TTL_MS (48ULL * 3600 * 1000)

#define CP2P_KAD_STORE_DEFAULT_MAX_RECORDS 16384
#define CP2P_KAD_STORE_DEFAULT_MAX_PROVIDERS 131072
#define CP2P_KAD_STORE_DEFAULT_MAX_PROVIDERS_PER_KEY 256
#define CP2P_KAD_STORE_DEFAULT_MAX_PEERS 8192
#define CP2P_KAD_STORE_DEFAULT_MAX_BYTES (256ULL * 1024 * 1024)

/* A saved routing-table member with a few of its addresses, so that a peer
 * restarted on its datastore reaches its table without a bootstrap. addrs
 * holds binary multiaddrs, each behind a one-byte length. */
#define CP2P_KAD_SAVED_ADDRS 8
#define CP2P_KAD_SAVED_ADDR_BYTES 512
typedef struct cp2p_kad_saved_peer {
    cp2p_peer_id_t id;
    uint16_t addrs_len;
    uint8_t addrs[CP2P_KAD_SAVED_ADDR_BYTES];
} cp2p_kad_saved_peer_t;

/* Pack up to CP2P_KAD_SAVED_ADDRS of addrs[0..n) (those that fit) into p. */
void cp2p_kad_saved_peer_set_addrs(cp2p_kad_saved_peer_t *p, const cp2p_multiaddr_t *addrs,
                                   size_t n);
/* Parse p's addresses into out[0..cap) (the caller frees them); a damaged
 * one ends the list. Returns how many. */
size_t cp2p_kad_saved_peer_addrs(const cp2p_kad_saved_peer_t *p, cp2p_multiaddr_t *out,
                                 size_t cap);

typedef struct cp2p_kad_store_limits {
    size_t max_records;
    size_t max_providers;
    size_t max_providers_per_key;
    size_t max_peers;
    uint64_t max_bytes;
} cp2p_kad_store_limits_t;

typedef struct cp2p_kad_store cp2p_kad_store_t;

/* limits may be NULL. */
int cp2p_kad_store_new_memory(const cp2p_kad_store_limits_t *limits, cp2p_kad_store_t **out);
/* Open or create the LMDB datastore in dir (created 0700 if missing). A
 * directory holding something else, or a damaged or foreign database, is
 * CP2P_EPARSE with a logged reason; an unusable directory is CP2P_EIO. */
int cp2p_kad_store_open_lmdb(const char *dir, const cp2p_kad_store_limits_t *limits,
                             cp2p_kad_store_t **out);
void cp2p_kad_store_free(cp2p_kad_store_t *s);

/* Store (or replace) the record under key; it expires CP2P_KAD_RECORD_TTL_MS
 * after now_ms. A record that is not at least as good as the live one held
 * (by the key's namespace: cp2p_kad_select, e.g. an IPNS record of a lower
 * sequence) is refused with CP2P_EREFUSED and the held one stays. */
int cp2p_kad_store_put_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                              const uint8_t *value, size_t value_len, uint64_t now_ms);
/* Append the value to out; *received_ms (may be NULL) gets its put time.
 * CP2P_ENOTFOUND if absent or expired at now_ms. */
int cp2p_kad_store_get_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                              uint64_t now_ms, cp2p_buf_t *out, uint64_t *received_ms);
/* 1 if the held value `old` is better than value for key: the write of
 * value must be refused (shared by the stores). */
int cp2p_kad_store_keeps_old(const uint8_t *key, size_t key_len, const uint8_t *value,
                             size_t value_len, const uint8_t *old, size_t old_len);
int cp2p_kad_store_remove_record(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len);

/* Add or renew peer as a provider of key until now_ms + CP2P_KAD_PROVIDER_TTL_MS. */
int cp2p_kad_store_add_provider(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                                const cp2p_peer_id_t *peer, uint64_t now_ms);
/* The providers of key not expired at now_ms: fills out[0..cap) and returns
 * how many (>= 0), or a negative error. */
int cp2p_kad_store_get_providers(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                                 uint64_t now_ms, cp2p_peer_id_t *out, size_t cap);

/* Delete what has expired at now_ms; returns how many entries went (>= 0). */
int cp2p_kad_store_expire(cp2p_kad_store_t *s, uint64_t now_ms);
size_t cp2p_kad_store_record_count(cp2p_kad_store_t *s);
size_t cp2p_kad_store_provider_count(cp2p_kad_store_t *s);

/* Replace the saved routing table with peers[0..n) (n <= max_peers). */
int cp2p_kad_store_save_peers(cp2p_kad_store_t *s, const cp2p_kad_saved_peer_t *peers, size_t n);
/* Fills out[0..cap) with the saved peers; returns how many, or an error. */
int cp2p_kad_store_load_peers(cp2p_kad_store_t *s, cp2p_kad_saved_peer_t *out, size_t cap);

/* For backends: the operations behind the functions above, with arguments
 * already checked against the limits that do not depend on stored data. */
typedef struct cp2p_kad_store_ops {
    int (*put_record)(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                      const uint8_t *value, size_t value_len, uint64_t now_ms);
    int (*get_record)(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len, uint64_t now_ms,
                      cp2p_buf_t *out, uint64_t *received_ms);
    int (*remove_record)(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len);
    int (*add_provider)(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                        const cp2p_peer_id_t *peer, uint64_t now_ms);
    int (*get_providers)(cp2p_kad_store_t *s, const uint8_t *key, size_t key_len,
                         uint64_t now_ms, cp2p_peer_id_t *out, size_t cap);
    int (*expire)(cp2p_kad_store_t *s, uint64_t now_ms);
    size_t (*record_count)(cp2p_kad_store_t *s);
    size_t (*provider_count)(cp2p_kad_store_t *s);
    int (*save_peers)(cp2p_kad_store_t *s, const cp2p_kad_saved_peer_t *peers, size_t n);
    int (*load_peers)(cp2p_kad_store_t *s, cp2p_kad_saved_peer_t *out, size_t cap);
    void (*free)(cp2p_kad_store_t *s);
} cp2p_kad_store_ops_t;

/* Every backend's state starts with this header. */
struct cp2p_kad_store {
    const cp2p_kad_store_ops_t *ops;
    cp2p_kad_store_limits_t limits;
    /* 1: writes block (disk sync) and belong on a worker thread; reads are
     * mmap lookups that may stay on the loop, and one writer may run beside
     * them. 0: nothing blocks and nothing may run off the loop thread. */
    int blocking;
};

/* Fill the zero fields of *l with the defaults. */
void cp2p_kad_store_limits_defaults(cp2p_kad_store_limits_t *l);

#endif
