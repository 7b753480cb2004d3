/* Large I/O buffers shared by all connections of the process: busy
 * connections read and seal into memory that is already mapped (a fresh
 * 256 KiB malloc is an mmap whose every page faults), and idle connections
 * hold none. */
#ifndef CP2P_IOBUF_H
#define CP2P_IOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

/* One socket read, or one 256 KiB muxer frame once sealed, with room to spare. */
#define CP2P_IOBUF_SIZE (264 * 1024)
/* Free buffers kept for reuse; more are given back to malloc. */
#define CP2P_IOBUF_KEEP 16

/* A buffer of CP2P_IOBUF_SIZE bytes, or NULL. Thread-safe. */
uint8_t *cp2p_iobuf_get(void);
/* Give back a buffer from cp2p_iobuf_get (NULL is fine). Thread-safe. */
void cp2p_iobuf_put(uint8_t *p);
/* An empty cp2p_buf_t gets a pooled buffer as its storage (it may still grow
 * past it). 0 or CP2P_ENOMEM. */
int cp2p_iobuf_attach(cp2p_buf_t *b);
/* Frees b, handing its storage back to the pool if it came from there. */
void cp2p_iobuf_release(cp2p_buf_t *b);

#endif
