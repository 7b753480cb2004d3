/* Circuit relay v2 messages (libp2p specs relay/circuit-v2.md): HopMessage
 * and StopMessage, varint-length-prefixed on the hop and stop streams, and
 * the reservation voucher (a signed envelope). A codec only: no I/O. */
#ifndef CP2P_RELAY_MSG_H
#define CP2P_RELAY_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

/* go-libp2p's maxMessageSize: a longer length prefix ends the stream. */
#define RELAY_MSG_MAX 4096
#define RELAY_MSG_MAX_ADDRS 16

/* HopMessage.Type and StopMessage.Type. */
enum { HOP_RESERVE = 0, HOP_CONNECT = 1, HOP_STATUS = 2 };
enum { STOP_CONNECT = 0, STOP_STATUS = 1 };

/* Status codes (the spec's enum Status). */
enum {
    RELAY_OK = 100,
    RELAY_RESERVATION_REFUSED = 200,
    RELAY_RESOURCE_LIMIT_EXCEEDED = 201,
    RELAY_PERMISSION_DENIED = 202,
    RELAY_CONNECTION_FAILED = 203,
    RELAY_NO_RESERVATION = 204,
    RELAY_MALFORMED_MESSAGE = 400,
    RELAY_UNEXPECTED_MESSAGE = 401
};

/* One HopMessage or StopMessage; which fields mean something depends on the
 * type. A zeroed struct is empty; relay_msg_clear frees what decode kept. */
typedef struct relay_msg {
    int type;
    int status;                 /* 0 when absent */
    int has_peer;
    cp2p_peer_id_t peer;
    size_t n_peer_addrs;        /* Peer.addrs, valid multiaddrs only */
    cp2p_multiaddr_t peer_addrs[RELAY_MSG_MAX_ADDRS];
    int has_reservation;
    uint64_t expire;            /* unix seconds */
    size_t n_addrs;             /* Reservation.addrs, valid multiaddrs only */
    cp2p_multiaddr_t addrs[RELAY_MSG_MAX_ADDRS];
    uint8_t *voucher;           /* the envelope's bytes, not opened */
    size_t voucher_len;
    int has_limit;
    uint32_t duration;          /* seconds, 0: none */
    uint64_t data;              /* bytes per direction, 0: none */
} relay_msg_t;

/* Append the length-prefixed message (stop: a StopMessage, else a HopMessage). */
int relay_msg_encode(int stop, const relay_msg_t *m, cp2p_buf_t *out);
/* How much of p[0..n) the first framed message takes: 0 when more bytes are
 * needed, the prefix and body length in *hdr and *len; CP2P_EOVERFLOW over
 * RELAY_MSG_MAX, CP2P_EPARSE on a bad prefix. */
int relay_msg_frame(const uint8_t *p, size_t n, size_t *hdr, size_t *len);
/* Decode one message body (no prefix) into a zeroed m. CP2P_EPARSE on a bad
 * protobuf, a missing type or a peer id that is not one; addresses that are
 * not multiaddrs are dropped, past RELAY_MSG_MAX_ADDRS ignored. */
int relay_msg_decode(int stop, const uint8_t *p, size_t n, relay_msg_t *m);
void relay_msg_clear(relay_msg_t *m);
/* The status's name ("OK", "NO_RESERVATION", ...; "UNKNOWN" otherwise). */
const char *relay_status_name(int status);

/* Reservation vouchers: domain "libp2p-relay-rsvp", payload type 0x0302. */
#define RELAY_VOUCHER_DOMAIN "libp2p-relay-rsvp"
int relay_voucher_seal(const cp2p_privkey_t *relay_key, const cp2p_peer_id_t *relay,
                       const cp2p_peer_id_t *peer, uint64_t expiration, cp2p_buf_t *out);
/* Open and check a voucher: signed by the relay it names. */
int relay_voucher_open(const uint8_t *p, size_t n, cp2p_peer_id_t *relay, cp2p_peer_id_t *peer,
                       uint64_t *expiration);

#endif
