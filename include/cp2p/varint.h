/** @file
 * Unsigned varint (multiformats unsigned-varint spec): LEB128, at most 9 bytes
 * (63 bits), minimal encoding required on decode. */
#ifndef CP2P_VARINT_H
#define CP2P_VARINT_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_UVARINT_MAX 9 /**< the spec's limit: 9 bytes, 63 bits */

/** Write v (< 2^63) into out (at least CP2P_UVARINT_MAX bytes); returns bytes written. */
CP2P_API size_t cp2p_uvarint_encode(uint64_t v, uint8_t *out);
/** Bytes cp2p_uvarint_encode would write. */
CP2P_API size_t cp2p_uvarint_len(uint64_t v);
/** Decode from p[0..n). On success returns bytes consumed (>0) and sets *v.
 * CP2P_ETRUNC if more bytes are needed, CP2P_EPARSE if non-minimal,
 * CP2P_EOVERFLOW if longer than 9 bytes. */
CP2P_API int cp2p_uvarint_decode(const uint8_t *p, size_t n, uint64_t *v);

#ifdef __cplusplus
}
#endif
#endif
