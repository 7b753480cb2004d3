/** @file
 * Keys (libp2p peer-ids spec): Ed25519, secp256k1, ECDSA P-256 and RSA, in
 * the spec's protobuf encoding, with sign and verify. Backed by OpenSSL 3. */
#ifndef CP2P_KEYS_H
#define CP2P_KEYS_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Values are the protobuf KeyType enum of the spec. */
typedef enum {
    CP2P_KEY_RSA = 0,
    CP2P_KEY_ED25519 = 1,
    CP2P_KEY_SECP256K1 = 2,
    CP2P_KEY_ECDSA = 3
} cp2p_key_type_t;

#define CP2P_RSA_MIN_BITS 2048
#define CP2P_RSA_MAX_BITS 8192

typedef struct cp2p_privkey cp2p_privkey_t; /**< opaque; cp2p_privkey_free() */
typedef struct cp2p_pubkey cp2p_pubkey_t;   /**< opaque; cp2p_pubkey_free() */

/** "ed25519", "secp256k1", "ecdsa", "rsa" (case-insensitive) -> type; -1 if unknown. */
CP2P_API int cp2p_key_type_parse(const char *name);
CP2P_API const char *cp2p_key_type_name(cp2p_key_type_t t);

/** bits is used for RSA only (0 = 2048). */
CP2P_API int cp2p_privkey_generate(cp2p_key_type_t type, int bits, cp2p_privkey_t **out);
/** Protobuf PrivateKey message -> key. CP2P_EPARSE / CP2P_EUNSUPPORTED on bad input. */
CP2P_API int cp2p_privkey_unmarshal(const uint8_t *p, size_t n, cp2p_privkey_t **out);
/** Key -> protobuf PrivateKey message, appended to out. */
CP2P_API int cp2p_privkey_marshal(const cp2p_privkey_t *k, cp2p_buf_t *out);
/** Sign msg as the spec says for the key type; the signature is appended to sig. */
CP2P_API int cp2p_privkey_sign(const cp2p_privkey_t *k, const uint8_t *msg, size_t n, cp2p_buf_t *sig);
/** The public half; owned by k. */
CP2P_API const cp2p_pubkey_t *cp2p_privkey_public(const cp2p_privkey_t *k);
CP2P_API cp2p_key_type_t cp2p_privkey_type(const cp2p_privkey_t *k);
CP2P_API void cp2p_privkey_free(cp2p_privkey_t *k);
/** State derived from a key and kept as long as it lives, one value per tag (a
 * static object's address): noise keeps its static key and signed handshake
 * payload here, made once per identity rather than once per connection. The
 * key is const to its borrowers but its memos are theirs to fill; they are not
 * locked, so a key's memos are used from one thread (its host's loop). The
 * setter takes value (freed with free_fn, also on failure). */
CP2P_API void *cp2p_privkey_memo(const cp2p_privkey_t *k, const void *tag);
CP2P_API int cp2p_privkey_set_memo(const cp2p_privkey_t *k, const void *tag, void *value,
                                   void (*free_fn)(void *));

/** Raw key bytes, the Data field of the spec's protobuf. */
CP2P_API int cp2p_pubkey_from_raw(cp2p_key_type_t type, const uint8_t *p, size_t n, cp2p_pubkey_t **out);
CP2P_API int cp2p_pubkey_unmarshal(const uint8_t *p, size_t n, cp2p_pubkey_t **out);
CP2P_API int cp2p_pubkey_marshal(const cp2p_pubkey_t *k, cp2p_buf_t *out);
/** 0 if sig is a valid signature of msg, CP2P_ESIG if not. */
CP2P_API int cp2p_pubkey_verify(const cp2p_pubkey_t *k, const uint8_t *msg, size_t n, const uint8_t *sig,
                                size_t sig_len);
CP2P_API cp2p_key_type_t cp2p_pubkey_type(const cp2p_pubkey_t *k);
CP2P_API int cp2p_pubkey_equal(const cp2p_pubkey_t *a, const cp2p_pubkey_t *b);
/** A new reference-free copy. */
CP2P_API int cp2p_pubkey_dup(const cp2p_pubkey_t *k, cp2p_pubkey_t **out);
CP2P_API void cp2p_pubkey_free(cp2p_pubkey_t *k);

/** Read / write a private key file in the protobuf format (written 0600). */
CP2P_API int cp2p_privkey_load_file(const char *path, cp2p_privkey_t **out);
CP2P_API int cp2p_privkey_save_file(const cp2p_privkey_t *k, const char *path);

#ifdef __cplusplus
}
#endif
#endif
