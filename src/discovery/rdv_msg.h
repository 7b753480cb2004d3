/* The rendezvous message codec (libp2p specs rendezvous/README.md): one
 * Message, varint-length-prefixed, with hard caps on every field. Sans-I/O:
 * bytes in, a message out, and back. Internal (tests and fuzzers use it). */
#ifndef CP2P_RDV_MSG_H
#define CP2P_RDV_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/envelope.h"
#include "cp2p/keys.h"

enum {
    RDV_REGISTER = 0,
    RDV_REGISTER_RESPONSE = 1,
    RDV_UNREGISTER = 2,
    RDV_DISCOVER = 3,
    RDV_DISCOVER_RESPONSE = 4,
};

/* Caps. A request (what a server reads) is small: one signed record and a
 * namespace. A response carries up to RDV_MAX_REGISTRATIONS records and is
 * held to RDV_MAX_RESPONSE bytes (rust-libp2p's cap is 1 MiB as well). */
#define RDV_MAX_NAMESPACE 255
#define RDV_MAX_RECORD 8192          /* one signed peer record (envelope) */
#define RDV_MAX_COOKIE 512
#define RDV_MAX_STATUS_TEXT 512
#define RDV_MAX_REGISTRATIONS 1000   /* in one DISCOVER_RESPONSE */
#define RDV_MAX_REQUEST (16 * 1024)
#define RDV_MAX_RESPONSE (1024 * 1024)

/* A registration as the wire carries it: the namespace (NUL-terminated,
 * never NULL once decoded; "" when absent), the envelope bytes, the TTL. */
typedef struct rdv_reg {
    char *ns;
    uint8_t *record;
    size_t record_len;
    uint64_t ttl;
    int has_ttl;
} rdv_reg_t;

/* One message. Which fields mean something depends on type:
 *   REGISTER           reg
 *   REGISTER_RESPONSE  status, status_text, ttl
 *   UNREGISTER         ns
 *   DISCOVER           ns (NULL: all namespaces), limit, cookie
 *   DISCOVER_RESPONSE  regs[0..n_regs), cookie, status, status_text
 * Decoded messages own their strings and bytes: rdv_msg_free(). */
typedef struct rdv_msg {
    int type;
    rdv_reg_t reg;
    rdv_reg_t *regs;
    size_t n_regs;
    char *ns;
    uint64_t limit;
    int has_limit;
    uint8_t *cookie;
    size_t cookie_len;
    int has_cookie;
    int status; /* RDV_S_* */
    char *status_text;
    uint64_t ttl;
    int has_ttl;
} rdv_msg_t;

/* ResponseStatus values. */
enum {
    RDV_S_OK = 0,
    RDV_S_E_INVALID_NAMESPACE = 100,
    RDV_S_E_INVALID_SIGNED_PEER_RECORD = 101,
    RDV_S_E_INVALID_TTL = 102,
    RDV_S_E_INVALID_COOKIE = 103,
    RDV_S_E_NOT_AUTHORIZED = 200,
    RDV_S_E_INTERNAL_ERROR = 300,
    RDV_S_E_UNAVAILABLE = 400,
};
/* "OK", "E_INVALID_TTL", ...; "unknown" for others. */
const char *rdv_status_name(int status);

/* A frame at the start of p[0..n): 0 with *hdr (the prefix's size) and *len
 * (the body's) when it is all there; CP2P_ETRUNC when more bytes are
 * needed; CP2P_EOVERFLOW when the body would be over max; CP2P_EPARSE for a
 * bad prefix. */
int rdv_frame(const uint8_t *p, size_t n, size_t max, size_t *hdr, size_t *len);
/* The body of one frame into *out (zeroed first; left empty on failure):
 * CP2P_EPARSE for bad protobuf, a missing or unknown type or the sub-message
 * the type needs missing; CP2P_EOVERFLOW for a field over its cap. */
int rdv_msg_decode(const uint8_t *p, size_t n, rdv_msg_t *out);
/* Append m as one frame (prefix and body) to out. */
int rdv_msg_encode(const rdv_msg_t *m, cp2p_buf_t *out);
void rdv_msg_free(rdv_msg_t *m);

/* rust-libp2p's rendezvous (libp2p-rendezvous 0.18, libp2p-core 0.44) seals
 * and opens peer records only in its legacy envelope: this domain and
 * payload type instead of RFC 0003's "libp2p-peer-record" and 0x0301, the
 * same PeerRecord inside. */
#define RDV_LEGACY_DOMAIN "libp2p-routing-state"
#define RDV_LEGACY_TYPE "/libp2p/routing-state-record"

/* Open a signed peer record in either envelope (as cp2p_peer_record_open:
 * signature, payload type, signer is the record's peer); *legacy (may be
 * NULL) says which it was. */
int rdv_record_open(const uint8_t *p, size_t n, cp2p_peer_record_t *r, int *legacy);
/* Seal r with k, in the legacy envelope when legacy is set. */
int rdv_record_seal(const cp2p_privkey_t *k, const cp2p_peer_record_t *r, int legacy, cp2p_buf_t *out);

#endif
