/* The control protocol codec of cp2pd (go-libp2p-daemon specs/CONTROL.md):
 * varint-length-prefixed p2pd.Request / p2pd.Response messages. Sans-I/O:
 * it checks every length, count and identifier a client sends before the
 * daemon acts on it. */
#ifndef CP2P_DAEMON_CONTROL_H
#define CP2P_DAEMON_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/peer.h"
#include "p2pd.pb-c.h"

#define CP2P_DAEMON_MAX_MESSAGE (1024 * 1024) /* one request or response */
#define CP2P_DAEMON_MAX_PROTOCOLS 64          /* protocol ids in one request */
#define CP2P_DAEMON_MAX_PROTOCOL_LEN 1024
#define CP2P_DAEMON_MAX_ADDRS 64              /* multiaddrs in one CONNECT */
#define CP2P_DAEMON_MAX_KEY 1024              /* a DHT key */
#define CP2P_DAEMON_MAX_TAG_LEN 64            /* a connection manager tag, as the host allows */

/* Find the next frame in p[0..n): on success returns the bytes it takes
 * (prefix included, > 0) and points *msg at its body. CP2P_ETRUNC: more
 * bytes are needed; CP2P_EPARSE or CP2P_EOVERFLOW: the stream cannot be
 * trusted any more (bad prefix or a frame over CP2P_DAEMON_MAX_MESSAGE). */
int cp2p_daemon_frame(const uint8_t *p, size_t n, const uint8_t **msg, size_t *msg_len);

/* Unpack and validate one request body. On error *why says what is wrong, in
 * words for the client's error response. Free *out with p2pd__request__free_unpacked. */
int cp2p_daemon_request_decode(const uint8_t *p, size_t n, P2pd__Request **out,
                               const char **why);

/* A peer ID field of a request (binary multihash). */
int cp2p_daemon_peer(const ProtobufCBinaryData *b, cp2p_peer_id_t *out);

/* Append a length-prefixed message to out. */
int cp2p_daemon_message_append(cp2p_buf_t *out, const ProtobufCMessage *m);
/* Append a Response: OK (msg NULL) or ERROR with msg. */
int cp2p_daemon_status_append(cp2p_buf_t *out, const char *msg);

#endif
