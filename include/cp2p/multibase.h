/** @file
 * Multibase (multiformats multibase spec): self-describing base encodings.
 * Outputs are appended to a cp2p_buf_t; encoders keep a NUL after the text
 * (not counted in len) so out->data can be used as a C string. */
#ifndef CP2P_MULTIBASE_H
#define CP2P_MULTIBASE_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The enumerator's value is the multibase prefix character. */
typedef enum {
    CP2P_BASE16 = 'f',
    CP2P_BASE32 = 'b',        /**< RFC 4648 lower case, no padding */
    CP2P_BASE32UPPER = 'B',
    CP2P_BASE36 = 'k',        /**< lower case, as used for IPNS names */
    CP2P_BASE58BTC = 'z',
    CP2P_BASE64 = 'm',        /**< RFC 4648 standard alphabet, no padding */
    CP2P_BASE64URL = 'u',     /**< URL-safe alphabet, no padding */
    CP2P_BASE64URLPAD = 'U'
} cp2p_base_t;

/** Longest input, in bytes for encoders and characters for decoders, that the
 * functions below accept (CP2P_EOVERFLOW beyond): base58 and base36 cost time
 * quadratic in the length. */
#define CP2P_MULTIBASE_MAX (64 * 1024)

/** Plain base encoding, no prefix. Appends text + NUL to out. */
CP2P_API int cp2p_base_encode(cp2p_base_t base, const uint8_t *p, size_t n, cp2p_buf_t *out);
/** Plain base decoding, no prefix. Appends bytes to out. CP2P_EPARSE on any
 * character outside the alphabet, wrong padding or non-canonical trailing bits. */
CP2P_API int cp2p_base_decode(cp2p_base_t base, const char *s, size_t n, cp2p_buf_t *out);

/** Prefix character + encoding. */
CP2P_API int cp2p_multibase_encode(cp2p_base_t base, const uint8_t *p, size_t n, cp2p_buf_t *out);
/** Reads the prefix, decodes the rest. Base16, base32 and base36 are read
 * case-insensitively (as the multibase tests require), so 'F' and 'K' are
 * accepted as prefixes too. *base (may be NULL) gets the base used.
 * CP2P_EUNSUPPORTED for an unknown prefix. */
CP2P_API int cp2p_multibase_decode(const char *s, size_t n, cp2p_base_t *base, cp2p_buf_t *out);

#ifdef __cplusplus
}
#endif
#endif
