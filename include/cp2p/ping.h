/** @file
 * Ping (/ipfs/ping/1.0.0, libp2p specs ping/ping.md): the responder echoes
 * 32-byte payloads; the initiator sends random payloads on one stream, checks
 * each echo and measures the round trip. Loop thread only. */
#ifndef CP2P_PING_H
#define CP2P_PING_H

#include "cp2p/export.h"

#include <stdint.h>

#include "cp2p/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_PING_PROTOCOL_ID "/ipfs/ping/1.0.0"
#define CP2P_PING_SIZE 32

/** Serve ping: register the responder on h. */
CP2P_API int cp2p_ping_enable(cp2p_host_t *h);
/** Echo s: what arrives is written back, reading paused while the echo is
 * queued (a remote that does not read is held back by the muxer's window,
 * not our memory); its EOF is answered with ours. Takes the caller's
 * reference. The ping responder is this; a program's echo protocol
 * (/echo/1.0.0 in the interop tests) can be too. */
CP2P_API void cp2p_echo_stream(cp2p_stream_t *s);

/** status 0 and the round trip in microseconds, or a negative code: the echo
 * differed (CP2P_EPROTO), the stream was reset or closed, the stream could
 * not be opened (the codes of cp2p_host_new_stream), CP2P_ECANCELED. */
typedef void (*cp2p_ping_cb)(int status, uint64_t rtt_us, void *arg);

/** One ping on a fresh stream, closed afterwards. cb runs exactly once, never
 * before this returns. */
CP2P_API int cp2p_ping(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_ping_cb cb, void *arg);

/** A ping session: one stream reused for repeated pings. The stream is opened
 * by the first cp2p_ping_send(); after an error the next send opens a new one. */
typedef struct cp2p_ping cp2p_ping_t;

/** A session to peer; free it with cp2p_ping_free. */
CP2P_API int cp2p_ping_new(cp2p_host_t *h, const cp2p_peer_id_t *peer, cp2p_ping_t **out);
/** One ping at a time (CP2P_ESTATE while one is outstanding). cb runs exactly
 * once, never before this returns. */
CP2P_API int cp2p_ping_send(cp2p_ping_t *p, cp2p_ping_cb cb, void *arg);
/** p is gone at once; an outstanding ping's cb runs with CP2P_ECANCELED on a
 * later loop turn. */
CP2P_API void cp2p_ping_free(cp2p_ping_t *p);

#ifdef __cplusplus
}
#endif
#endif
