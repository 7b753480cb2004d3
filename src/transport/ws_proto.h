/* WebSocket (RFC 6455) as sans-I/O engines for the /ws transport: the HTTP
 * upgrade (parsed by libhttp-parser) and the framing, which carries the
 * connection's bytes as a stream of binary frames and answers pings. No
 * socket, no loop: bytes in, bytes and verdicts out. */
#ifndef CP2P_WS_PROTO_H
#define CP2P_WS_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cp2p/buf.h"

/* The largest upgrade request or response we read (headers included). */
#define CP2P_WS_MAX_HEAD 8192
/* A frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define CP2P_WS_MAX_FRAME_HEAD 14

/* ---- the upgrade ---- */

typedef struct cp2p_ws_handshake {
    int client;
    char key[25];        /* Sec-WebSocket-Key we sent (client) */
    cp2p_buf_t in;       /* what was read, up to the end of the head */
    int done;
} cp2p_ws_handshake_t;

/* Client: appends the GET request for host (a "name:port" or "[v6]:port")
 * to out. */
int cp2p_ws_client_start(cp2p_ws_handshake_t *h, const char *host, cp2p_buf_t *out);
/* Server: a fresh handshake that waits for the request. */
void cp2p_ws_server_init(cp2p_ws_handshake_t *h);
/* Feeds bytes read. 0: more needed. 1: done; the server's 101 response is
 * appended to out (client: nothing); *used is how much of in[0..n) the head
 * took (the rest belongs to the framing). Negative: the peer is not a
 * WebSocket peer (server: a 400 response is in out, to send before
 * closing); CP2P_EOVERFLOW for a head over CP2P_WS_MAX_HEAD. */
int cp2p_ws_handshake_input(cp2p_ws_handshake_t *h, const uint8_t *in, size_t n, size_t *used,
                            cp2p_buf_t *out);
void cp2p_ws_handshake_free(cp2p_ws_handshake_t *h);

/* ---- framing ---- */

typedef struct cp2p_ws_framer {
    int client;          /* we mask what we send; the peer must not mask */
    uint32_t rng;        /* mask keys (RFC 6455 5.3: unpredictable enough for proxies) */
    /* the frame being read */
    uint8_t head[CP2P_WS_MAX_FRAME_HEAD];
    size_t head_have, head_need;
    uint64_t left;       /* payload bytes of the frame still to come */
    uint8_t opcode, fin, masked;
    uint8_t mask[4];
    size_t mask_off;
    int in_message;      /* a fragmented binary message goes on */
    uint8_t ctl[125];    /* a control frame's payload */
    size_t ctl_have;
    int closed;          /* a close frame came */
} cp2p_ws_framer_t;

void cp2p_ws_framer_init(cp2p_ws_framer_t *f, int client);
/* Decodes n bytes at p in place: the binary payload they carry is moved to
 * the front of p and its length returned. Pongs for pings, and the answer
 * to a close frame, are appended to reply (frames to send as they are);
 * after a close frame *eof is set and the rest is ignored. Negative on a
 * protocol violation (CP2P_EPROTO: a text frame, a bad mask, reserved bits,
 * a control frame too long or fragmented). */
ssize_t cp2p_ws_decode(cp2p_ws_framer_t *f, uint8_t *p, size_t n, cp2p_buf_t *reply, int *eof);
/* The head of one binary frame carrying p[0..n) into head (at most
 * CP2P_WS_MAX_FRAME_HEAD bytes); its length. A client's payload is masked
 * in place. */
size_t cp2p_ws_frame(cp2p_ws_framer_t *f, uint8_t *p, size_t n, uint8_t *head);
/* A close frame (status 1000), appended to out. */
int cp2p_ws_close_frame(cp2p_ws_framer_t *f, cp2p_buf_t *out);

#endif
