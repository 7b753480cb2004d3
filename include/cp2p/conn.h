/** @file
 * A connection to a peer: a transport connection secured by Noise or TLS (or
 * not at all by plaintext, which tests may enable) and carrying a stream
 * muxer. Reference counted; owned by the host's swarm, the app takes
 * a reference (cp2p_conn_ref) to keep one past a callback. Loop thread only. */
#ifndef CP2P_CONN_H
#define CP2P_CONN_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_conn cp2p_conn_t;

/** Take a reference: c stays valid (not freed) until the matching
 * cp2p_conn_unref, even once the connection has closed. */
CP2P_API void cp2p_conn_ref(cp2p_conn_t *c);
/** Drop a reference taken with cp2p_conn_ref. */
CP2P_API void cp2p_conn_unref(cp2p_conn_t *c);

/** The remote peer and its public key, from the security handshake: proven
 * with Noise and TLS (the remote signed with that key), only claimed with
 * plaintext (see cp2p_host_config_t.security). */
CP2P_API const cp2p_peer_id_t *cp2p_conn_peer(const cp2p_conn_t *c);
CP2P_API const cp2p_pubkey_t *cp2p_conn_remote_key(const cp2p_conn_t *c);
/** Transport addresses (/ip4/../tcp/..); owned by the connection. */
CP2P_API const cp2p_multiaddr_t *cp2p_conn_remote_addr(const cp2p_conn_t *c);
CP2P_API const cp2p_multiaddr_t *cp2p_conn_local_addr(const cp2p_conn_t *c);
/** The negotiated muxer, e.g. "/yamux/1.0.0". */
CP2P_API const char *cp2p_conn_muxer_id(const cp2p_conn_t *c);
CP2P_API int cp2p_conn_is_inbound(const cp2p_conn_t *c);
/** 1 if the connection is a relayed circuit (circuit relay v2, cp2p/relay.h):
 * its remote address is then `<relay addr>/p2p/<relay>/p2p-circuit`, and it
 * is as limited in time and bytes as the relay said. */
CP2P_API int cp2p_conn_is_relayed(const cp2p_conn_t *c);
/** Close: open streams are reset (queued writes fail with CP2P_ERESET) and
 * CP2P_EVENT_DISCONNECTED follows; those callbacks come on a later loop
 * turn, never inside this call. Bytes the muxer already took, and
 * a FIN asked for with cp2p_stream_close_write(), still go out, after a yamux
 * GoAway; the socket closes when the remote closes too, or after a short
 * deadline. */
CP2P_API void cp2p_conn_close(cp2p_conn_t *c);

#ifdef __cplusplus
}
#endif
#endif
