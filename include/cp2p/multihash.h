/** @file
 * Multihash (multiformats multihash spec): `<varint code><varint length><digest>`. */
#ifndef CP2P_MULTIHASH_H
#define CP2P_MULTIHASH_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_MH_IDENTITY 0x00
#define CP2P_MH_SHA2_256 0x12
#define CP2P_MH_MAX_DIGEST 128 /**< longest digest we accept (identity included) */

typedef struct cp2p_multihash_view {
    uint64_t code;
    const uint8_t *digest; /**< points into the parsed input */
    size_t digest_len;
} cp2p_multihash_view_t;

/** Parse a multihash at the start of p[0..n). Returns the bytes it spans (>0).
 * Rejects: bad varints, a length over CP2P_MH_MAX_DIGEST or past n (CP2P_ETRUNC),
 * a sha2-256 digest that is not 32 bytes. Unknown codes are accepted. */
CP2P_API int cp2p_multihash_parse(const uint8_t *p, size_t n, cp2p_multihash_view_t *out);
/** As parse, but the multihash must span exactly n bytes. */
CP2P_API int cp2p_multihash_parse_exact(const uint8_t *p, size_t n, cp2p_multihash_view_t *out);
/** Append code, length and digest. */
CP2P_API int cp2p_multihash_encode(uint64_t code, const uint8_t *digest, size_t len, cp2p_buf_t *out);
/** Hash data with `code` (identity or sha2-256) and append the multihash. */
CP2P_API int cp2p_multihash_sum(uint64_t code, const uint8_t *data, size_t n, cp2p_buf_t *out);

#ifdef __cplusplus
}
#endif
#endif
