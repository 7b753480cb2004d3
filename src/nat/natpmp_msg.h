/* NAT-PMP replies (RFC 6886 3.2, 3.3, 3.5), checked before anything believes
 * them: libnatpmp builds and sends our requests, and parses its replies with
 * no length check, so the port map reads them here instead. */
#ifndef CP2P_NAT_NATPMP_MSG_H
#define CP2P_NAT_NATPMP_MSG_H

#include <stddef.h>
#include <stdint.h>

#define CP2P_NATPMP_OP_PUBLIC 0 /* external address request */
#define CP2P_NATPMP_OP_TCP 2    /* map a TCP port */
#define CP2P_NATPMP_MAX_REPLY 16

typedef struct cp2p_natpmp_reply {
    uint8_t op;        /* the request's opcode (the reply's minus 128) */
    uint16_t result;   /* 0 = success (RFC 6886 3.5) */
    uint32_t epoch;    /* seconds since the gateway's mapping table started */
    uint8_t ip[4];     /* OP_PUBLIC, result 0: the external address */
    uint16_t iport;    /* OP_TCP, result 0: our port */
    uint16_t eport;    /* OP_TCP, result 0: the port mapped on the gateway */
    uint32_t lifetime; /* OP_TCP, result 0: seconds granted */
} cp2p_natpmp_reply_t;

/* One datagram from the gateway: version 0, a reply opcode we ask for
 * (128 + 0 or 128 + 2), and, for a success, the whole body (12 bytes for
 * the address, 16 for a mapping); an error reply needs only its 8 bytes of
 * header. 0, or CP2P_EPARSE (wrong version, opcode or length: not a reply
 * to anything we sent). */
int cp2p_natpmp_reply_parse(const uint8_t *p, size_t n, cp2p_natpmp_reply_t *out);

#endif
