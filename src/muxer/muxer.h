/* The muxer vtable: a sans-I/O session that carries many streams over one
 * secured connection (yamux, mplex). It never touches a socket or a timer:
 * bytes from the connection go in through input(), bytes to send and stream
 * events come out through the callbacks it was given.
 *
 * Rules for the glue: send() must not call back into the session; destroy()
 * is never called from inside a callback; after input() fails the session
 * reports no stream_reset for live streams, so the glue tears them down. */
#ifndef CP2P_MUXER_H
#define CP2P_MUXER_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp2p_mux cp2p_mux_t; /* one per connection, defined by each implementation */
typedef uint64_t cp2p_mux_stream_id_t; /* opaque to the caller; unique within a session */

typedef struct cp2p_mux_events {
    void *ctx;
    /* Bytes to put on the connection, in order. Returns 0 or a negative error. */
    int (*send)(void *ctx, const uint8_t *p, size_t n);
    /* The remote opened a stream. Return 0 to accept, negative to reset it. */
    int (*stream_opened)(void *ctx, cp2p_mux_stream_id_t id);
    /* Data for a stream. The session will not grant the remote more window
     * than the caller has consumed (see consumed()). */
    void (*stream_data)(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n);
    /* The remote closed its write side (FIN / close). */
    void (*stream_eof)(void *ctx, cp2p_mux_stream_id_t id);
    /* The stream is gone: reset by the remote or by a protocol error. The id is dead after. */
    void (*stream_reset)(void *ctx, cp2p_mux_stream_id_t id);
    /* The stream can take more data after write() accepted less than asked. */
    void (*stream_writable)(void *ctx, cp2p_mux_stream_id_t id);
    /* The remote will open no more streams (yamux GoAway). May be NULL. */
    void (*goaway)(void *ctx, uint32_t code);
} cp2p_mux_events_t;

typedef struct cp2p_mux_config {
    uint32_t max_streams;        /* concurrent streams; more are reset */
    uint32_t initial_window;     /* per stream receive window (yamux: >= 256 KiB) */
    uint32_t max_window;         /* receive window may grow to this when the reader keeps up */
    uint32_t max_frame;          /* largest data frame we send */
    uint32_t max_buffered;       /* bytes accepted per stream beyond the window (mplex has no flow control) */
} cp2p_mux_config_t;

typedef struct cp2p_mux_vtable {
    const char *protocol_id; /* "/yamux/1.0.0", "/mplex/6.7.0" */
    /* cfg may be NULL for defaults; events is copied. */
    int (*create)(cp2p_mux_t **out, int initiator, const cp2p_mux_config_t *cfg,
                  const cp2p_mux_events_t *events);
    void (*destroy)(cp2p_mux_t *m);
    /* Bytes read from the connection, any amount. Negative return: the
     * connection must be closed (the session already sent what it could). */
    int (*input)(cp2p_mux_t *m, const uint8_t *p, size_t n);
    int (*open_stream)(cp2p_mux_t *m, cp2p_mux_stream_id_t *id);
    /* Returns bytes accepted (0..n); 0 means no window now, wait for
     * stream_writable. Negative: stream closed or reset. */
    long (*write)(cp2p_mux_t *m, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n);
    /* Half-close our side. */
    int (*close_write)(cp2p_mux_t *m, cp2p_mux_stream_id_t id);
    int (*reset)(cp2p_mux_t *m, cp2p_mux_stream_id_t id);
    /* The caller is done with n bytes delivered by stream_data: reopen the window. */
    int (*consumed)(cp2p_mux_t *m, cp2p_mux_stream_id_t id, size_t n);
    /* Our side is done with a stream that is closed both ways; free its state.
     * (Streams that were reset are released by the session itself.) */
    void (*release)(cp2p_mux_t *m, cp2p_mux_stream_id_t id);
    /* Ask the remote to open no more streams (yamux GoAway; mplex: no-op). */
    int (*goaway)(cp2p_mux_t *m);
    /* yamux: send a ping; *opaque gets its value. mplex: CP2P_EUNSUPPORTED. */
    int (*ping)(cp2p_mux_t *m, uint32_t *opaque);
} cp2p_mux_vtable_t;

extern const cp2p_mux_vtable_t cp2p_yamux_vtable;
extern const cp2p_mux_vtable_t cp2p_mplex_vtable;

#endif
