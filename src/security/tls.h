/* The libp2p /tls/1.0.0 session (cp2p_tls_vtable in security.h), its muxer
 * choice by ALPN, and the certificate rules it applies, exposed for tests and fuzzing. */
#ifndef CP2P_TLS_H
#define CP2P_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "security/security.h"

#define CP2P_TLS_CERT_MAX (64 * 1024) /* the largest certificate message we accept */

/* Appends the DER certificate a session for identity would present: a fresh
 * self-signed P-256 certificate carrying the libp2p Public Key Extension. */
int cp2p_tls_cert_generate(const cp2p_privkey_t *identity, cp2p_buf_t *der);

/* Checks one DER certificate as the spec's "Peer Authentication" says: valid
 * now, self-signature valid, no unique IDs, no unknown critical extension, and
 * exactly one libp2p extension whose signature verifies with the host key in
 * it. On success *host_key is that key (the caller frees it). CP2P_EPARSE for
 * bad encodings, CP2P_ESIG for bad signatures, CP2P_EPROTO for the rest. */
int cp2p_tls_cert_check(const uint8_t *der, size_t n, cp2p_pubkey_t **host_key);

/* After the remote's close_notify, input() has delivered what came before it
 * and returns CP2P_ECLOSED for any byte after; seal() still works (TLS 1.3
 * closes each direction on its own). */

/* Limit the muxers offered (client) or accepted (server) by ALPN to ids,
 * those known among them, in the order "/yamux/1.0.0", "/mplex/6.7.0"
 * (the default: both). Call before start() or the first input(). */
int cp2p_tls_offer_muxers(cp2p_sec_t *s, const char *const *ids, size_t n);

/* The stream muxer ALPN settled on ("/yamux/1.0.0" or "/mplex/6.7.0"), or NULL
 * when it settled on "libp2p" (or the client offered nothing) and
 * multistream-select must choose. s must be a tls session, established. */
const char *cp2p_tls_muxer(const cp2p_sec_t *s);

#endif
