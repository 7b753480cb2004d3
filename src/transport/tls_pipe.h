/* TLS (OpenSSL) over memory BIOs for the /wss transport: bytes from the
 * socket in, bytes for the socket and plaintext out. No socket, no loop. */
#ifndef CP2P_TLS_PIPE_H
#define CP2P_TLS_PIPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cp2p/buf.h"

typedef struct cp2p_tls_pipe cp2p_tls_pipe_t;
typedef struct ssl_ctx_st cp2p_tls_ctx_t; /* OpenSSL's SSL_CTX */

/* A server context from PEM files (the certificate file may hold the chain);
 * NULL, logged, if they cannot be read or do not match. */
cp2p_tls_ctx_t *cp2p_tls_server_ctx(const char *cert_file, const char *key_file);
/* A client context that verifies servers against the system's roots
 * (SSL_CERT_FILE and SSL_CERT_DIR, as OpenSSL reads them). */
cp2p_tls_ctx_t *cp2p_tls_client_ctx(void);
void cp2p_tls_ctx_free(cp2p_tls_ctx_t *ctx);

/* name: the server's DNS name (SNI and verified) or IP address (verified);
 * servers pass NULL. */
cp2p_tls_pipe_t *cp2p_tls_pipe_new(cp2p_tls_ctx_t *ctx, const char *name);
void cp2p_tls_pipe_free(cp2p_tls_pipe_t *t);
/* Bytes read from the socket. Negative if the peer broke TLS. */
int cp2p_tls_pipe_feed(cp2p_tls_pipe_t *t, const uint8_t *p, size_t n);
/* Runs the handshake on what was fed: 1 done, 0 more needed, negative on
 * failure (a certificate that does not verify: CP2P_ECRYPTO). */
int cp2p_tls_pipe_handshake(cp2p_tls_pipe_t *t);
/* Plaintext decrypted from what was fed, at most cap bytes; 0 if none yet;
 * *closed once the peer sent close_notify. */
ssize_t cp2p_tls_pipe_read(cp2p_tls_pipe_t *t, uint8_t *out, size_t cap, int *closed);
/* Encrypts plaintext; the records come out of cp2p_tls_pipe_output. */
int cp2p_tls_pipe_write(cp2p_tls_pipe_t *t, const uint8_t *p, size_t n);
/* A close_notify alert, to output. */
void cp2p_tls_pipe_shutdown(cp2p_tls_pipe_t *t);
/* Appends the bytes to send to the socket (records, handshake) to out. */
int cp2p_tls_pipe_output(cp2p_tls_pipe_t *t, cp2p_buf_t *out);

#endif
