/* A connection to a peer: a transport connection secured by Noise and carrying
 * a stream muxer. Reference counted; owned by the host's swarm, the app takes
 * a reference (cp2p_conn_ref) to keep one past a callback. Loop thread only. */
#ifndef CP2P_CONN_H
#define CP2P_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/keys.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_conn cp2p_conn_t;
/* Defined by include/cp2p/multiaddr.h; declared here so that this header
 * stands alone. */
typedef struct cp2p_multiaddr cp2p_multiaddr_t;

void cp2p_conn_ref(cp2p_conn_t *c);
void cp2p_conn_unref(cp2p_conn_t *c);

/* The remote peer and its public key, from the security handshake: proven
 * with Noise and TLS (the remote signed with that key), only claimed with
 * plaintext (see cp2p_host_config_t.security). */
const cp2p_peer_id_t *cp2p_conn_peer(const cp2p_conn_t *c);
const cp2p_pubkey_t *cp2p_conn_remote_key(const cp2p_conn_t *c);
/* Transport addresses (/ip4/../tcp/..); owned by the connection. */
const cp2p_multiaddr_t *cp2p_conn_remote_addr(const cp2p_conn_t *c);
const cp2p_multiaddr_t *cp2p_conn_local_addr(const cp2p_conn_t *c);
/* The negotiated muxer, e.g. "/yamux/1.0.0". */
const char *cp2p_conn_muxer_id(const cp2p_conn_t *c);
int cp2p_conn_is_inbound(const cp2p_conn_t *c);
/* Close: open streams are reset (queued writes fail with CP2P_ERESET) and
 * CP2P_EVENT_DISCONNECTED follows; those callbacks come on a later loop
 * turn, never inside this call. Bytes the muxer already took, and
 * a FIN asked for with cp2p_stream_close_write(), still go out, after a yamux
 * GoAway; the socket closes when the remote closes too, or after a short
 * deadline. */
void cp2p_conn_close(cp2p_conn_t *c);

#ifdef __cplusplus
}
#endif
#endif
