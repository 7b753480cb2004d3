/* Noise_XX_25519_ChaChaPoly_SHA256 (Noise Protocol Framework rev 34) and the
 * libp2p /noise session built on it (cp2p_noise_vtable in security.h).
 * The raw XX state machine is exposed for test vectors and fuzzing. */
#ifndef CP2P_NOISE_H
#define CP2P_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "security/security.h"

#define CP2P_NOISE_MAX_MSG 65535                          /* one Noise message */
#define CP2P_NOISE_TAG_LEN 16
#define CP2P_NOISE_MAX_PLAIN (CP2P_NOISE_MAX_MSG - CP2P_NOISE_TAG_LEN)
#define CP2P_NOISE_KEY_LEN 32

typedef struct cp2p_noise_xx cp2p_noise_xx_t;

/* A new XX handshake. s_priv and e_priv are 32-byte X25519 private keys, or
 * NULL to generate them (fixed keys are for test vectors only). */
int cp2p_noise_xx_new(cp2p_noise_xx_t **out, int initiator, const uint8_t *prologue,
                      size_t prologue_len, const uint8_t *s_priv, const uint8_t *e_priv);
void cp2p_noise_xx_free(cp2p_noise_xx_t *x);
/* Write the next handshake message carrying payload; appends it to msg_out. */
int cp2p_noise_xx_write(cp2p_noise_xx_t *x, const uint8_t *payload, size_t n,
                        cp2p_buf_t *msg_out);
/* Read the next handshake message; appends its payload to payload_out. */
int cp2p_noise_xx_read(cp2p_noise_xx_t *x, const uint8_t *msg, size_t n, cp2p_buf_t *payload_out);
/* 1 once all three messages went through and the transport keys are split. */
int cp2p_noise_xx_done(const cp2p_noise_xx_t *x);
const uint8_t *cp2p_noise_xx_local_static(const cp2p_noise_xx_t *x);  /* 32 bytes */
/* The remote static key, 32 bytes, or NULL before it was received. */
const uint8_t *cp2p_noise_xx_remote_static(const cp2p_noise_xx_t *x);
/* Transport messages (after done): out must have room for n + 16 bytes
 * (encrypt) or n - 16 bytes (decrypt); n is at most CP2P_NOISE_MAX_MSG. */
int cp2p_noise_xx_encrypt(cp2p_noise_xx_t *x, const uint8_t *p, size_t n, uint8_t *out);
int cp2p_noise_xx_decrypt(cp2p_noise_xx_t *x, const uint8_t *c, size_t n, uint8_t *out);

/* Test hook: a session's static public key (32 bytes), one per identity. */
const uint8_t *cp2p_noise_local_static(const cp2p_sec_t *s);
/* Test hook: set the transport nonces of a session, to reach exhaustion. */
int cp2p_noise_set_nonces(cp2p_sec_t *s, uint64_t send_n, uint64_t recv_n);

#endif
