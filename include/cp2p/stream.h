/** @file
 * A stream: one muxed, protocol-negotiated byte stream of a connection.
 * Reference counted: the callback that hands a stream over gives the callee a
 * reference (see host.h); cp2p_stream_unref() drops it. Loop thread only.
 * Backpressure: a write completes when the muxer has taken the bytes; a
 * stopped reader leaves the muxer window shut so the remote stops sending. */
#ifndef CP2P_STREAM_H
#define CP2P_STREAM_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/conn.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_stream cp2p_stream_t;

typedef void (*cp2p_stream_write_cb)(cp2p_stream_t *s, int status, void *arg);
/** status 0: data in p[0..n) (valid during the call only); CP2P_ECLOSED: the
 * remote closed its side (EOF, no more data); another negative code: reset or
 * error, the last call. */
typedef void (*cp2p_stream_read_cb)(cp2p_stream_t *s, int status, const uint8_t *p, size_t n,
                                    void *arg);

/** The result of opening a stream: s is a new reference the callee owns (NULL
 * when status < 0). */
typedef void (*cp2p_stream_open_cb)(int status, cp2p_stream_t *s, void *arg);

/** Copies p. cb (may be NULL) runs once the muxer has taken all n bytes, or
 * with a negative status if the stream died first; never inside this call,
 * always on a later loop turn. Writes are queued in order; the queue is
 * bounded by the host's max_stream_buffer (CP2P_EAGAIN past it). */
CP2P_API int cp2p_stream_write(cp2p_stream_t *s, const uint8_t *p, size_t n, cp2p_stream_write_cb cb,
                               void *arg);
/** As much of p[0..n) as the muxer takes now, with no copy and no callback
 * (uv_try_write): the count taken (0 when the window or the connection's
 * output is full, or writes are queued), or a negative code if the stream
 * cannot be written. A bulk sender writes with it until it takes less than
 * asked, then hands the rest to cp2p_stream_write. */
CP2P_API long cp2p_stream_try_write(cp2p_stream_t *s, const uint8_t *p, size_t n);
/** Start delivering data. Bytes buffered while stopped (and a pending EOF or
 * error) are delivered on a later loop turn, never inside this call; what
 * arrives meanwhile comes after them. */
CP2P_API int cp2p_stream_read_start(cp2p_stream_t *s, cp2p_stream_read_cb cb, void *arg);
/** While stopped, incoming data stays buffered (bounded by max_stream_buffer)
 * and the muxer window stays shut. */
CP2P_API int cp2p_stream_read_stop(cp2p_stream_t *s);
/** Half-close: send EOF after the queued writes. Reading continues. */
CP2P_API int cp2p_stream_close_write(cp2p_stream_t *s);
/** Abort both directions now; queued writes fail with CP2P_ERESET. */
CP2P_API int cp2p_stream_reset(cp2p_stream_t *s);

/** Take a reference (s stays valid until the matching unref), and drop
 * one: the last unref of an open stream resets it. */
CP2P_API void cp2p_stream_ref(cp2p_stream_t *s);
CP2P_API void cp2p_stream_unref(cp2p_stream_t *s);

/** A protocol that assembles what the remote sends (a message read in parts)
 * counts those bytes in the host's resource scopes (include/cp2p/resources.h)
 * with delta > 0, and gives them back with delta < 0 before it drops its
 * last reference. The bytes are counted whatever the result; past the
 * system's or the peer's memory limit the connection is not read until
 * memory is given back, and CP2P_ELIMIT says the stream's protocol is over
 * its limit: the caller should reset the stream. */
CP2P_API int cp2p_stream_charge(cp2p_stream_t *s, long delta);

/** The negotiated protocol id. */
CP2P_API const char *cp2p_stream_protocol(const cp2p_stream_t *s);
CP2P_API const cp2p_peer_id_t *cp2p_stream_peer(const cp2p_stream_t *s);
CP2P_API cp2p_conn_t *cp2p_stream_conn(cp2p_stream_t *s);
CP2P_API int cp2p_stream_is_inbound(const cp2p_stream_t *s);

#ifdef __cplusplus
}
#endif
#endif
