/** @file
 * Signed envelopes (libp2p RFC 0002) and the peer records carried in them
 * (RFC 0003). */
#ifndef CP2P_ENVELOPE_H
#define CP2P_ENVELOPE_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest envelope we open; peer records are far smaller. */
#define CP2P_ENVELOPE_MAX (64 * 1024)

/** An opened, verified envelope; cp2p_envelope_free(). */
typedef struct cp2p_envelope {
    cp2p_pubkey_t *pubkey; /**< the signer */
    uint8_t *payload_type;
    size_t payload_type_len;
    uint8_t *payload;
    size_t payload_len;
} cp2p_envelope_t;

/** Sign payload under domain and append the protobuf Envelope to out. */
CP2P_API int cp2p_envelope_seal(const cp2p_privkey_t *k, const char *domain, const uint8_t *type,
                                size_t type_len, const uint8_t *payload, size_t n, cp2p_buf_t *out);
/** Parse an Envelope and check its signature for domain. CP2P_EPARSE on a
 * malformed envelope or key, CP2P_ESIG if the signature does not verify (a
 * different domain included). *out is set on success only. */
CP2P_API int cp2p_envelope_open(const uint8_t *p, size_t n, const char *domain, cp2p_envelope_t **out);
CP2P_API void cp2p_envelope_free(cp2p_envelope_t *e);

/** What go-libp2p and js-libp2p use (RFC 0003 predates them and names others). */
#define CP2P_PEER_RECORD_DOMAIN "libp2p-peer-record"
#define CP2P_PEER_RECORD_TYPE ((const uint8_t *)"\x03\x01") /**< multicodec libp2p-peer-record */
#define CP2P_PEER_RECORD_TYPE_LEN 2

#define CP2P_PEER_RECORD_MAX_ADDRS 32
#define CP2P_PEER_RECORD_MAX_ADDR_LEN 1024

/** A zeroed struct is an empty record; cp2p_peer_record_clear() frees the addresses. */
typedef struct cp2p_peer_record {
    cp2p_peer_id_t peer_id;
    uint64_t seq;
    size_t n_addrs;
    uint8_t *addrs[CP2P_PEER_RECORD_MAX_ADDRS]; /**< binary multiaddrs, owned */
    size_t addr_lens[CP2P_PEER_RECORD_MAX_ADDRS];
} cp2p_peer_record_t;

/** Copy a binary multiaddr in. CP2P_ELIMIT when full, CP2P_EOVERFLOW if too long. */
CP2P_API int cp2p_peer_record_add_addr(cp2p_peer_record_t *r, const uint8_t *ma, size_t len);
CP2P_API void cp2p_peer_record_clear(cp2p_peer_record_t *r);
/** The PeerRecord protobuf, appended to out. */
CP2P_API int cp2p_peer_record_encode(const cp2p_peer_record_t *r, cp2p_buf_t *out);
/** Into a zeroed or cleared record; on failure r is left cleared. */
CP2P_API int cp2p_peer_record_decode(const uint8_t *p, size_t n, cp2p_peer_record_t *r);
/** Encode r and seal it; r->peer_id must be k's peer ID (CP2P_EINVAL if not). */
CP2P_API int cp2p_peer_record_seal(const cp2p_privkey_t *k, const cp2p_peer_record_t *r, cp2p_buf_t *out);
/** Open a peer record envelope: signature, domain and payload type are checked,
 * and the record's peer ID must be the signer's (CP2P_EPEERID if not).
 * signer (may be NULL) gets a copy of the signing key. */
CP2P_API int cp2p_peer_record_open(const uint8_t *p, size_t n, cp2p_peer_record_t *r,
                                   cp2p_pubkey_t **signer);

#ifdef __cplusplus
}
#endif
#endif
