/** @file
 * A growable byte buffer. The owner calls cp2p_buf_free(); a zeroed struct is
 * an empty buffer ready for use. */
#ifndef CP2P_BUF_H
#define CP2P_BUF_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} cp2p_buf_t;

/** Make room for at least `extra` more bytes. 0 or CP2P_ENOMEM. */
CP2P_API int cp2p_buf_reserve(cp2p_buf_t *b, size_t extra);
CP2P_API int cp2p_buf_append(cp2p_buf_t *b, const void *p, size_t n);
CP2P_API int cp2p_buf_append_byte(cp2p_buf_t *b, uint8_t c);
/** Append an unsigned varint. */
CP2P_API int cp2p_buf_append_uvarint(cp2p_buf_t *b, uint64_t v);
/** Append a varint length prefix followed by the bytes. */
CP2P_API int cp2p_buf_append_lp(cp2p_buf_t *b, const void *p, size_t n);
/** Drop the first n bytes (n <= len). */
CP2P_API void cp2p_buf_consume(cp2p_buf_t *b, size_t n);
CP2P_API void cp2p_buf_reset(cp2p_buf_t *b);
CP2P_API void cp2p_buf_free(cp2p_buf_t *b);
/** Hand the bytes over to the caller (who frees them with free()); b is empty after. */
CP2P_API uint8_t *cp2p_buf_steal(cp2p_buf_t *b, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
