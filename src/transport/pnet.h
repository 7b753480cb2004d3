/* Private networks (pnet/Private-Networks-PSK-V1.md): the XSalsa20 stream
 * each direction of a connection runs under the pre-shared key. The nonce
 * is sent in the clear as the connection's first 24 bytes; every byte after
 * it, both ways, is XORed with the stream. The swarm's connection runs it
 * on the raw bytes, below everything else. */
#ifndef CP2P_PNET_INTERNAL_H
#define CP2P_PNET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/pnet.h"

#define CP2P_PNET_NONCE_SIZE 24

typedef struct cp2p_pnet_stream {
    uint8_t nonce[CP2P_PNET_NONCE_SIZE];
    uint64_t off; /* bytes of keystream used */
} cp2p_pnet_stream_t;

/* A fresh random nonce, at offset 0. */
void cp2p_pnet_stream_init(cp2p_pnet_stream_t *s);
/* XORs p[0..n) in place with the stream under key, from where it stands. */
void cp2p_pnet_xor(cp2p_pnet_stream_t *s, const uint8_t key[CP2P_PNET_KEY_SIZE], uint8_t *p, size_t n);

#endif
