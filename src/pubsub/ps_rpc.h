/* The pubsub RPC (libp2p pubsub spec "The RPC", gossipsub v1.0 "Protobuf",
 * v1.1 PRUNE peer exchange, v1.2 IDONTWANT) as plain C, framed on the stream
 * by a uvarint length.
 *
 * Decoding is zero-copy: every ps_bytes_t of a decoded RPC points into the
 * bytes it was decoded from, which must outlive it. What a remote peer sent
 * is checked whole before anything is used: a field of the wrong wire type,
 * a truncated field, or more entries than the PS_RPC_MAX_* counts fail the
 * RPC (CP2P_EPARSE, CP2P_EOVERFLOW) and nothing of it is acted on. */
#ifndef CP2P_PS_RPC_H
#define CP2P_PS_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

/* Entries one RPC may carry; go-libp2p-pubsub sends at most 5000 message ids
 * in an IHAVE and 16 peers in a PRUNE. */
#define PS_RPC_MAX_SUBS 2048
#define PS_RPC_MAX_MSGS 1024
#define PS_RPC_MAX_CONTROL 1024   /* IHAVE + IWANT + GRAFT + PRUNE + IDONTWANT entries */
#define PS_RPC_MAX_IDS 20000      /* message ids over all IHAVE, IWANT and IDONTWANT */
#define PS_RPC_MAX_PX 64          /* peers over all PRUNEs */

typedef struct ps_bytes {
    const uint8_t *p;
    size_t n;
} ps_bytes_t;

/* Which optional Message fields were present on the wire (an empty field
 * that is present differs from an absent one for the signing policies). */
enum {
    PS_F_FROM = 1 << 0,
    PS_F_DATA = 1 << 1,
    PS_F_SEQNO = 1 << 2,
    PS_F_TOPIC = 1 << 3,
    PS_F_SIG = 1 << 4,
    PS_F_KEY = 1 << 5
};

typedef struct ps_msg {
    ps_bytes_t from, data, seqno, topic, sig, key;
    unsigned has;   /* PS_F_* */
    ps_bytes_t raw; /* the encoded Message as received */
} ps_msg_t;

typedef struct ps_sub {
    ps_bytes_t topic;
    int subscribe;
} ps_sub_t;

typedef struct ps_ids {        /* IHAVE (topic set), IWANT, IDONTWANT */
    ps_bytes_t topic;
    ps_bytes_t *ids;
    size_t n_ids;
} ps_ids_t;

typedef struct ps_px {
    ps_bytes_t peer, record; /* peer id bytes, signed peer record envelope */
} ps_px_t;

typedef struct ps_prune {
    ps_bytes_t topic;
    uint64_t backoff_s;
    int has_backoff;
    ps_px_t *px;
    size_t n_px;
} ps_prune_t;

typedef struct ps_rpc {
    ps_sub_t *subs;
    size_t n_subs;
    ps_msg_t *msgs;
    size_t n_msgs;
    ps_ids_t *ihave, *iwant, *idontwant;
    size_t n_ihave, n_iwant, n_idontwant;
    ps_bytes_t *graft; /* topics */
    size_t n_graft;
    ps_prune_t *prune;
    size_t n_prune;
    void *block_; /* every array above, one allocation */
} ps_rpc_t;

/* The body of one framed RPC at the start of p[0..n): 1 with *body set and
 * *used the bytes of the frame, 0 if more bytes are needed, CP2P_EOVERFLOW
 * when the announced length is over max, CP2P_EPARSE on a bad prefix. */
int ps_rpc_frame(const uint8_t *p, size_t n, size_t max, ps_bytes_t *body, size_t *used);
/* Decode an RPC body; on success free it with ps_rpc_clear(). */
int ps_rpc_decode(const uint8_t *p, size_t n, ps_rpc_t *out);
void ps_rpc_clear(ps_rpc_t *r);
/* Decode one Message (what an RPC's publish field holds). */
int ps_msg_decode(const uint8_t *p, size_t n, ps_msg_t *out);

/* Encode a Message in field order from m's present fields (m->has). With
 * with_sig 0, the signature and the key are left out: the bytes that are
 * signed, after the prefix "libp2p-pubsub:" (pubsub spec, "Message
 * Signing"; go-libp2p-pubsub and js-libp2p sign before adding the key and
 * verify with both fields cleared). */
int ps_msg_encode(const ps_msg_t *m, int with_sig, cp2p_buf_t *out);

/* Building an RPC: the parts are appended in any order, control entries
 * gathered apart; ps_rpc_build_finish() appends the framed RPC to out. */
typedef struct ps_rpc_build {
    cp2p_buf_t body, ctl;
    size_t entries; /* subscriptions, messages and control entries added */
} ps_rpc_build_t;

int ps_build_sub(ps_rpc_build_t *b, const char *topic, size_t len, int subscribe);
int ps_build_msg(ps_rpc_build_t *b, const uint8_t *raw, size_t n);
int ps_build_ihave(ps_rpc_build_t *b, const char *topic, size_t len, const ps_bytes_t *ids,
                   size_t n);
int ps_build_iwant(ps_rpc_build_t *b, const ps_bytes_t *ids, size_t n);
int ps_build_idontwant(ps_rpc_build_t *b, const ps_bytes_t *ids, size_t n);
int ps_build_graft(ps_rpc_build_t *b, const char *topic, size_t len);
int ps_build_prune(ps_rpc_build_t *b, const char *topic, size_t len, uint64_t backoff_s,
                   const ps_px_t *px, size_t n_px);
/* 1 if nothing was added. */
int ps_build_empty(const ps_rpc_build_t *b);
int ps_build_finish(ps_rpc_build_t *b, cp2p_buf_t *out);
void ps_build_reset(ps_rpc_build_t *b);
void ps_build_free(ps_rpc_build_t *b);

#endif
