/** @file
 * CID (multiformats CID spec): v0 (a bare sha2-256 multihash, "Qm...") and v1
 * (`<varint 1><varint codec><multihash>`, multibase in text). */
#ifndef CP2P_CID_H
#define CP2P_CID_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/multibase.h"
#include "cp2p/multihash.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_CODEC_RAW 0x55
#define CP2P_CODEC_DAG_PB 0x70
#define CP2P_CODEC_DAG_CBOR 0x71
#define CP2P_CODEC_LIBP2P_KEY 0x72

typedef struct cp2p_cid_view {
    uint64_t version;          /**< 0 or 1 */
    uint64_t codec;            /**< dag-pb for v0 */
    cp2p_multihash_view_t mh;
    const uint8_t *mh_bytes;   /**< the whole multihash, pointing into the input */
    size_t mh_len;
} cp2p_cid_view_t;

/** Binary form: exactly n bytes. v0 is recognised as a 34-byte sha2-256 multihash. */
CP2P_API int cp2p_cid_decode(const uint8_t *p, size_t n, cp2p_cid_view_t *out);
/** Append the binary form of a v1 CID. */
CP2P_API int cp2p_cid_encode_v1(uint64_t codec, const uint8_t *mh, size_t mh_len, cp2p_buf_t *out);
/** Text form: "Qm..." (v0, base58btc without prefix) or a multibase string (v1).
 * The binary CID is appended to `bytes` and `out` points into it, so `bytes`
 * must not be modified while `out` is used. */
CP2P_API int cp2p_cid_parse(const char *s, size_t n, cp2p_buf_t *bytes, cp2p_cid_view_t *out);
/** Text form of a v1 CID in `base` (base32 is the default for CIDv1). */
CP2P_API int cp2p_cid_format_v1(cp2p_base_t base, uint64_t codec, const uint8_t *mh, size_t mh_len,
                                cp2p_buf_t *out);

#ifdef __cplusplus
}
#endif
#endif
