/* The security vtable: a sans-I/O session that turns a raw byte stream into an
 * authenticated, encrypted one (noise, tls), or, with plaintext, one whose
 * remote only claims a public key (no proof that it holds it; nothing is
 * encrypted). The glue in
 * src/swarm feeds it bytes read from the socket and sends what it produces. */
#ifndef CP2P_SECURITY_H
#define CP2P_SECURITY_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"

typedef struct cp2p_sec cp2p_sec_t; /* one per connection, defined by each implementation */

/* The state every session starts with: each implementation's struct cp2p_sec
 * has a cp2p_sec_base_t as its first member, so the questions below are
 * answered once for all of them. */
typedef struct cp2p_sec_base {
    int established;           /* the handshake is complete: the remote authenticated
                                  (plaintext: its key stated) */
    int err;                   /* sticky: once broken, the connection stays broken */
    cp2p_pubkey_t *remote_key; /* owned by the session */
    cp2p_peer_id_t remote_peer;
} cp2p_sec_base_t;

/* 1 once established, unless the session broke since. */
int cp2p_sec_established(const cp2p_sec_t *s);
/* The remote (plaintext: as it claims to be); NULL until established. */
const cp2p_pubkey_t *cp2p_sec_remote_key(const cp2p_sec_t *s);
const cp2p_peer_id_t *cp2p_sec_remote_peer(const cp2p_sec_t *s);

/* For implementations. What input and seal check first: CP2P_EINVAL unless s
 * and args_ok, the sticky error, CP2P_ESTATE if need_established and not yet;
 * 0 to go on. */
int cp2p_sec_begin(const cp2p_sec_t *s, int args_ok, int need_established);
/* Makes a negative rc the session's sticky error (logged once, as name);
 * returns rc. */
int cp2p_sec_settle(cp2p_sec_t *s, const char *name, int rc);

typedef struct cp2p_sec_vtable {
    const char *protocol_id; /* e.g. "/noise" */
    /* expected_remote may be NULL (inbound, or dialled without /p2p/). identity is
     * borrowed and must outlive the session. */
    int (*create)(cp2p_sec_t **out, int initiator, const cp2p_privkey_t *identity,
                  const cp2p_peer_id_t *expected_remote);
    void (*destroy)(cp2p_sec_t *s);
    /* Appends the first handshake bytes to send, if this side speaks first. */
    int (*start)(cp2p_sec_t *s, cp2p_buf_t *wire_out);
    /* Bytes read from the wire, any amount (partial frames are buffered).
     * Appends handshake bytes to send to wire_out and decrypted application
     * bytes to plain_out. A negative return is fatal for the connection. */
    int (*input)(cp2p_sec_t *s, const uint8_t *in, size_t n, cp2p_buf_t *wire_out,
                 cp2p_buf_t *plain_out);
    /* Encrypt and frame application bytes (any length), appending to wire_out. */
    int (*seal)(cp2p_sec_t *s, const uint8_t *p, size_t n, cp2p_buf_t *wire_out);
    /* Optional (NULL if the session cannot, e.g. TLS, whose library copies
     * anyway); only once established. The input path without the second
     * buffer: decrypts each whole frame of in[0..n) where it lies, overwriting
     * it, and hands each frame's plaintext (never empty) to deliver, in order,
     * only after the frame authenticated. Stops before a partial frame, which
     * the caller keeps and passes again, completed, at the start of in; *used
     * is what was consumed (a frame whose deliver failed counts). A partial
     * frame input buffered before is finished first, from the front of in.
     * A negative deliver return stops it and is returned; any failure is
     * sticky, like input's. */
    int (*open_in_place)(cp2p_sec_t *s, uint8_t *in, size_t n, size_t *used,
                         int (*deliver)(void *arg, const uint8_t *p, size_t len), void *arg);
    /* Optional, both or neither (NULL: multistream-select picks the muxer
     * after the handshake): the muxer negotiated inside the handshake (TLS's
     * ALPN; libp2p specs connections/inlined-muxer-negotiation).
     * offer_muxers limits what the handshake may settle on to ids[0..n), in
     * preference order; it is called after create and before start.
     * early_muxer, once established, is the muxer settled on, or NULL when
     * the remote offered none of them (multistream-select then chooses). */
    int (*offer_muxers)(cp2p_sec_t *s, const char *const *ids, size_t n);
    const char *(*early_muxer)(const cp2p_sec_t *s);
} cp2p_sec_vtable_t;

extern const cp2p_sec_vtable_t cp2p_noise_vtable;
extern const cp2p_sec_vtable_t cp2p_tls_vtable;
extern const cp2p_sec_vtable_t cp2p_plaintext_vtable;

#endif
