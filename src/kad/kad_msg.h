/* Kademlia RPC messages (libp2p kad-dht spec, "RPC messages"): the protobuf
 * Message as a plain C struct, each one framed by a uvarint length prefix.
 *
 * Everything decoded comes from a remote peer, so decoding checks every
 * length: a message over CP2P_KAD_MAX_MESSAGE, a key over CP2P_KAD_MAX_KEY or a
 * record value over CP2P_KAD_MAX_VALUE fails the message (CP2P_EOVERFLOW).
 * Peers with an invalid ID and addresses that are not valid binary multiaddrs
 * are dropped, as are peers and addresses past the count limits; the message
 * still decodes and n_dropped says how many were skipped. */
#ifndef CP2P_KAD_MSG_H
#define CP2P_KAD_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

/* go-libp2p-kad-dht and js-libp2p both accept messages up to 4 MiB, so a
 * smaller bound would refuse answers they consider valid. */
#define CP2P_KAD_MAX_MESSAGE (4 * 1024 * 1024)
#define CP2P_KAD_MAX_KEY 1024
#define CP2P_KAD_MAX_VALUE (64 * 1024)
#define CP2P_KAD_MAX_MSG_PEERS 64        /* closerPeers kept; peers send k = 20 */
#define CP2P_KAD_MAX_MSG_PROVIDERS 256   /* providerPeers kept */
#define CP2P_KAD_MAX_PEER_ADDRS 32       /* addresses kept per peer */
/* On the wire, counted before unpacking: a message with more is refused. */
#define CP2P_KAD_WIRE_MAX_PEERS 256      /* closerPeers */
#define CP2P_KAD_WIRE_MAX_PROVIDERS 1024 /* providerPeers */
#define CP2P_KAD_WIRE_MAX_PEER_ADDRS 128 /* addrs of one peer */
#define CP2P_KAD_MAX_TIME_RECEIVED 64    /* an RFC 3339 timestamp is ~30 bytes */

/* The spec's MessageType values. */
typedef enum cp2p_kad_msg_type {
    CP2P_KAD_PUT_VALUE = 0,
    CP2P_KAD_GET_VALUE = 1,
    CP2P_KAD_ADD_PROVIDER = 2,
    CP2P_KAD_GET_PROVIDERS = 3,
    CP2P_KAD_FIND_NODE = 4,
    CP2P_KAD_PING = 5
} cp2p_kad_msg_type_t;

/* The spec's ConnectionType values. */
typedef enum cp2p_kad_conn_type {
    CP2P_KAD_NOT_CONNECTED = 0,
    CP2P_KAD_CONNECTED = 1,
    CP2P_KAD_CAN_CONNECT = 2,
    CP2P_KAD_CANNOT_CONNECT = 3
} cp2p_kad_conn_type_t;

typedef struct cp2p_kad_peer {
    cp2p_peer_id_t id;
    cp2p_multiaddr_t *addrs;
    size_t n_addrs;
    cp2p_kad_conn_type_t connection;
} cp2p_kad_peer_t;

/* Decoding fills every pointer with malloc'd memory freed by
 * cp2p_kad_msg_clear(); for encoding the caller may point them anywhere. */
typedef struct cp2p_kad_msg {
    cp2p_kad_msg_type_t type;
    uint8_t *key;
    size_t key_len;
    int has_record;
    uint8_t *rec_key;
    size_t rec_key_len;
    uint8_t *rec_value;
    size_t rec_value_len;
    char *time_received; /* NUL-terminated, NULL when absent */
    cp2p_kad_peer_t *closer;
    size_t n_closer;
    cp2p_kad_peer_t *providers;
    size_t n_providers;
    size_t n_dropped; /* decode only: invalid or surplus peers and addresses */
} cp2p_kad_msg_t;

/* Append the uvarint length prefix and the protobuf. CP2P_EOVERFLOW if the
 * message would break one of the limits above (a peer would refuse it). */
int cp2p_kad_msg_write(const cp2p_kad_msg_t *m, cp2p_buf_t *out);
/* Find one framed message at the start of p[0..n): sets body/body_len and
 * returns the bytes it spans (prefix included). CP2P_ETRUNC when more bytes
 * are needed, CP2P_EOVERFLOW when the prefix announces more than
 * CP2P_KAD_MAX_MESSAGE, CP2P_EPARSE for a malformed prefix. */
int cp2p_kad_msg_frame(const uint8_t *p, size_t n, const uint8_t **body, size_t *body_len);
/* Decode one protobuf body (no prefix) into a zeroed or cleared m. On failure
 * m is left cleared. */
int cp2p_kad_msg_decode(const uint8_t *p, size_t n, cp2p_kad_msg_t *m);
/* Free what decode allocated; m is zeroed after. */
void cp2p_kad_msg_clear(cp2p_kad_msg_t *m);

#endif
