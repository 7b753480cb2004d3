/** @file
 * Identify (/ipfs/id/1.0.0) and Identify Push (/ipfs/id/push/1.0.0), libp2p
 * specs identify/README.md. The message codec is pure; cp2p_identify_enable()
 * wires the protocol into a host: every new connection is identified, what is
 * learned goes to the peerstore and CP2P_EVENT_PEER_IDENTIFIED follows, and a
 * change of our listen addresses or protocols is pushed to connected peers. */
#ifndef CP2P_IDENTIFY_H
#define CP2P_IDENTIFY_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_IDENTIFY_PROTOCOL_ID "/ipfs/id/1.0.0"
#define CP2P_IDENTIFY_PUSH_PROTOCOL_ID "/ipfs/id/push/1.0.0"
#define CP2P_IDENTIFY_PROTOCOL_VERSION "ipfs/0.1.0"
/** js-libp2p and go-libp2p refuse messages over 8 KiB and read at most 10;
 * what we accept from the remote is bounded by these. */
#define CP2P_IDENTIFY_MAX_MESSAGE (8 * 1024)
#define CP2P_IDENTIFY_MAX_MESSAGES 10
#define CP2P_IDENTIFY_MAX_TOTAL (64 * 1024)
#define CP2P_IDENTIFY_MAX_ADDRS 64
#define CP2P_IDENTIFY_MAX_PROTOCOLS 256

/** A decoded (or to be encoded) Identify message. Fields absent on the wire
 * are NULL / 0. After cp2p_identify_decode() everything is owned by the
 * struct: cp2p_identify_msg_free(). For encoding, the caller owns the data. */
typedef struct cp2p_identify_msg {
    char *protocol_version;
    char *agent_version;
    uint8_t *public_key;         /**< protobuf PublicKey */
    size_t public_key_len;
    uint8_t **listen_addrs;      /**< binary multiaddrs */
    size_t *listen_addr_lens;
    size_t n_listen_addrs;
    uint8_t *observed_addr;
    size_t observed_addr_len;
    char **protocols;
    size_t n_protocols;
    uint8_t *signed_peer_record; /**< envelope */
    size_t signed_peer_record_len;
} cp2p_identify_msg_t;

/** Append the varint length-prefixed message. */
CP2P_API int cp2p_identify_encode(const cp2p_identify_msg_t *m, cp2p_buf_t *out);
/** Decode everything a remote wrote before EOF: up to CP2P_IDENTIFY_MAX_MESSAGES
 * length-prefixed messages, merged (later scalars win, lists concatenate, as
 * go-libp2p splits large messages). CP2P_ETRUNC if the last one is cut off,
 * CP2P_EOVERFLOW / CP2P_ELIMIT past the limits, CP2P_EPARSE otherwise. */
CP2P_API int cp2p_identify_decode(const uint8_t *p, size_t n, cp2p_identify_msg_t *out);
CP2P_API void cp2p_identify_msg_free(cp2p_identify_msg_t *m);

typedef struct cp2p_identify cp2p_identify_t;

/** Serve /ipfs/id/1.0.0 and /ipfs/id/push/1.0.0 on h and identify every new
 * connection. agent_version NULL = cp2p_host_agent_version(h); copied. Call
 * before listening or dialling. out may be NULL when the identify state may
 * live as long as the process; otherwise cp2p_identify_free() it before
 * cp2p_host_close(). */
CP2P_API int cp2p_identify_enable(cp2p_host_t *h, const char *agent_version, cp2p_identify_t **out);
/** Unregister from the host; outstanding exchanges are reset. */
CP2P_API void cp2p_identify_free(cp2p_identify_t *id);
/** Tell every connected peer our current addresses and protocols. Identify does
 * it itself on CP2P_EVENT_LISTEN_ADDR; call it after changing handlers. */
CP2P_API int cp2p_identify_push(cp2p_identify_t *id);

#ifdef __cplusplus
}
#endif
#endif
