/** @file
 * Peer IDs (libp2p peer-ids spec): the multihash of the protobuf public key,
 * identity when the encoded key is at most 42 bytes, sha2-256 otherwise.
 * A peer ID is a small value type: copy it freely. */
#ifndef CP2P_PEER_H
#define CP2P_PEER_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_PEER_ID_MAX 64      /**< bytes of the multihash */
#define CP2P_PEER_ID_STRMAX 128  /**< text form, NUL included */

typedef struct cp2p_peer_id {
    uint8_t len;
    uint8_t bytes[CP2P_PEER_ID_MAX]; /**< the multihash */
} cp2p_peer_id_t;

/** The peer ID of key k: the identity multihash of its protobuf when that
 * is at most 42 bytes (Ed25519, secp256k1), else its SHA-256 multihash. */
CP2P_API int cp2p_peer_id_from_pubkey(const cp2p_pubkey_t *k, cp2p_peer_id_t *out);
/** From the binary multihash (as in /p2p/ of a binary multiaddr). Must be an
 * identity or sha2-256 multihash. */
CP2P_API int cp2p_peer_id_from_bytes(const uint8_t *p, size_t n, cp2p_peer_id_t *out);
/** Base58btc ("12D3KooW...", "Qm...", "16Uiu2...") or a CIDv1 with the
 * libp2p-key codec in any multibase ("bafz..."). */
CP2P_API int cp2p_peer_id_parse(const char *s, cp2p_peer_id_t *out);
/** Base58btc text into out (CP2P_PEER_ID_STRMAX is always enough). */
CP2P_API int cp2p_peer_id_to_string(const cp2p_peer_id_t *id, char *out, size_t cap);
/** CIDv1, libp2p-key codec, base32 ("bafz..."). */
CP2P_API int cp2p_peer_id_to_cid_string(const cp2p_peer_id_t *id, char *out, size_t cap);
CP2P_API int cp2p_peer_id_equal(const cp2p_peer_id_t *a, const cp2p_peer_id_t *b);
/** The public key inlined in an identity-multihash peer ID; CP2P_ENOTFOUND if
 * the ID is a sha2-256 hash. */
CP2P_API int cp2p_peer_id_extract_pubkey(const cp2p_peer_id_t *id, cp2p_pubkey_t **out);
/** 1 if k is the key of id. */
CP2P_API int cp2p_peer_id_matches_pubkey(const cp2p_peer_id_t *id, const cp2p_pubkey_t *k);

#ifdef __cplusplus
}
#endif
#endif
