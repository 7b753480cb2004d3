/* DCUtR (/libp2p/dcutr, libp2p specs relay/DCUtR.md) without I/O: the
 * HolePunch codec and the state machine of one attempt, for either role.
 * A is the peer that dialled the relayed connection and receives the
 * stream; B was dialled through its relay, opens the stream, measures the
 * RTT and sends SYNC. The glue (dcutr_host.c) feeds it bytes and time. */
#ifndef CP2P_PROTOCOLS_DCUTR_H
#define CP2P_PROTOCOLS_DCUTR_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/multiaddr.h"

/* The spec: implementations SHOULD refuse messages over 4 KiB (prefix excluded). */
#define CP2P_DCUTR_MAX_MESSAGE 4096
/* Addresses kept from a remote's CONNECT (the rest are dropped). */
#define CP2P_DCUTR_MAX_ADDRS 16

typedef enum { CP2P_DCUTR_CONNECT = 100, CP2P_DCUTR_SYNC = 300 } cp2p_dcutr_type_t;

typedef struct cp2p_dcutr_msg {
    int type;
    cp2p_multiaddr_t *addrs; /* valid multiaddrs only, at most CP2P_DCUTR_MAX_ADDRS */
    size_t n_addrs;
    size_t n_dropped;        /* invalid ones, and those past the cap */
} cp2p_dcutr_msg_t;

/* Appends one length-prefixed message with as many of addrs as fit in
 * CP2P_DCUTR_MAX_MESSAGE (in order). */
int cp2p_dcutr_encode(int type, const cp2p_multiaddr_t *addrs, size_t n, cp2p_buf_t *out);
/* One message body (no prefix): CP2P_EOVERFLOW over the cap, CP2P_EPARSE if
 * not a HolePunch, CP2P_EPROTO for a type that is neither CONNECT nor SYNC. */
int cp2p_dcutr_decode(const uint8_t *p, size_t n, cp2p_dcutr_msg_t *out);
void cp2p_dcutr_msg_free(cp2p_dcutr_msg_t *m);
/* A frame at p: 0 and the prefix's and body's sizes, CP2P_ETRUNC if more is
 * needed, CP2P_EOVERFLOW if the prefix announces more than the cap. */
int cp2p_dcutr_frame(const uint8_t *p, size_t n, size_t *hdr, size_t *body);

/* 1 if a hole punch can use ma: /ip4|ip6/<ip>/tcp/<port>[/p2p/<id>], no
 * relay, and a public IP unless allow_private. */
int cp2p_dcutr_addr_usable(const cp2p_multiaddr_t *ma, int allow_private);

typedef enum { CP2P_DCUTR_ROLE_A, CP2P_DCUTR_ROLE_B } cp2p_dcutr_role_t;

typedef enum {
    DCUTR_ST_IDLE,         /* B: not started */
    DCUTR_ST_WAIT_CONNECT, /* B: CONNECT sent, RTT running; A: waiting for B's */
    DCUTR_ST_WAIT_SYNC,    /* A: CONNECT answered */
    DCUTR_ST_WAIT_TIMER,   /* B: SYNC sent, dialling at dial_at */
    DCUTR_ST_DIAL,         /* both: time to dial remote[] (cp2p_dcutr_engine_* said 1) */
    DCUTR_ST_FAILED
} cp2p_dcutr_state_t;

typedef struct cp2p_dcutr_engine {
    cp2p_dcutr_role_t role;
    cp2p_dcutr_state_t state;
    int allow_private;
    cp2p_multiaddr_t *ours;   /* what we send in CONNECT (copied) */
    size_t n_ours;
    cp2p_multiaddr_t *remote; /* usable addresses from the remote's CONNECT */
    size_t n_remote;
    cp2p_buf_t in;            /* a partial message, at most one whole frame */
    uint64_t t_connect;       /* B: when CONNECT left */
    uint64_t rtt_ms;          /* B: CONNECT to CONNECT */
    uint64_t dial_at;         /* B: SYNC's time + rtt/2 */
    uint64_t deadline;        /* the whole exchange */
    int error;
} cp2p_dcutr_engine_t;

/* ours[0..n) are copied; those not usable are left out. timeout_ms bounds
 * the exchange (the stream's life). */
int cp2p_dcutr_engine_init(cp2p_dcutr_engine_t *e, cp2p_dcutr_role_t role, int allow_private,
                           const cp2p_multiaddr_t *ours, size_t n, uint64_t now_ms,
                           uint32_t timeout_ms);
void cp2p_dcutr_engine_free(cp2p_dcutr_engine_t *e);
/* B: appends CONNECT to out and starts the RTT clock. CP2P_ENOTFOUND if we
 * have no usable address to offer (go aborts then too). A: nothing to do. */
int cp2p_dcutr_engine_start(cp2p_dcutr_engine_t *e, uint64_t now_ms, cp2p_buf_t *out);
/* Bytes from the stream; replies are appended to out. 1: dial now (A, on
 * SYNC), 0: go on, < 0: the attempt failed (the state is FAILED). */
int cp2p_dcutr_engine_input(cp2p_dcutr_engine_t *e, const uint8_t *p, size_t n, uint64_t now_ms,
                            cp2p_buf_t *out);
/* The stream ended (EOF or reset) before the exchange did: < 0, else 0. */
int cp2p_dcutr_engine_eof(cp2p_dcutr_engine_t *e);
/* When to call cp2p_dcutr_engine_tick next (UINT64_MAX: not needed). */
uint64_t cp2p_dcutr_engine_next_ms(const cp2p_dcutr_engine_t *e);
/* 1: dial now (B, half an RTT after SYNC), 0: not yet, CP2P_ETIMEOUT. */
int cp2p_dcutr_engine_tick(cp2p_dcutr_engine_t *e, uint64_t now_ms);

#endif
