/* Yamux session internals that the glue and the tests may look at; the session
 * itself is cp2p_yamux_vtable (muxer.h). */
#ifndef CP2P_YAMUX_H
#define CP2P_YAMUX_H

#include <stddef.h>
#include <stdint.h>

#include "muxer/muxer.h"

/* Streams the session holds, counting those closed both ways but not yet released. */
size_t cp2p_yamux_stream_count(const cp2p_mux_t *m);
/* The opaque value of the last ping answer (Ping with ACK) received.
 * 0, or CP2P_ENOTFOUND if no answer has arrived yet. */
int cp2p_yamux_last_pong(const cp2p_mux_t *m, uint32_t *opaque);
/* send_window: bytes we may still send; recv_window: the window we currently
 * grant the remote (grows with auto-tuning). Either pointer may be NULL. */
int cp2p_yamux_stream_windows(const cp2p_mux_t *m, cp2p_mux_stream_id_t id,
                              uint32_t *send_window, uint32_t *recv_window);

#endif
