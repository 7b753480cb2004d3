/* The transport vtable: turns a multiaddr into raw, unsecured byte-stream
 * connections, dialled or accepted (tcp now; quic and websocket later). The
 * swarm upgrades what a transport produces; a transport knows nothing above. */
#ifndef CP2P_TRANSPORT_H
#define CP2P_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cp2p/buf.h"
#include "cp2p/multiaddr.h"

/* Framing some transports put between the socket and the connection's
 * bytes (websocket; TLS and websocket for /wss), run by the swarm's
 * connection on what it reads and writes, on the state w. */
#define CP2P_WIRE_MAX_HEAD 14
typedef struct cp2p_wire_vtable {
    /* The connection's bytes in p[0..n) (just read), decoded into p, whose
     * room is cap: their length, or negative on a violation. Frames to send
     * as they are (pongs) go to reply; *eof when the peer closed. */
    ssize_t (*decode)(void *w, uint8_t *p, size_t n, size_t cap, cp2p_buf_t *reply, int *eof);
    /* Either frame: a head for p[0..n) (p may change in place: masking),
     * its length; the head and p then go out as they are (websocket) */
    size_t (*frame)(void *w, uint8_t *p, size_t n, uint8_t *head);
    /* or encode: what p[0..n) becomes on the wire, appended (/wss). */
    int (*encode)(void *w, uint8_t *p, size_t n, cp2p_buf_t *out);
    /* The wire's goodbye (a close frame), ready to send, appended. */
    int (*close_frame)(void *w, cp2p_buf_t *out);
    /* Reads take at most this (0: no limit), so that decode's output,
     * which may hold bytes of earlier reads (a TLS record), fits. */
    size_t read_max;
    void (*free)(void *w); /* NULL: free() */
} cp2p_wire_vtable_t;

/* Frees a wire's state as its vtable says. */
void cp2p_wire_free(const cp2p_wire_vtable_t *vt, void *w);

/* A connected socket. Whoever receives one owns it and ends it with
 * cp2p_rawconn_free(), which closes the handle (asynchronously) and frees all. */
typedef struct cp2p_rawconn {
    uv_stream_t *stream;
    cp2p_multiaddr_t local;   /* /ip4|ip6/<addr>/tcp/<port>[/ws], /unix/<path> */
    cp2p_multiaddr_t remote;
    const cp2p_wire_vtable_t *wire; /* NULL: the socket's bytes are the connection's */
    void *wire_state;               /* freed with free() */
    cp2p_buf_t early;               /* bytes read already (after a websocket upgrade) */
} cp2p_rawconn_t;

void cp2p_rawconn_free(cp2p_rawconn_t *rc);

typedef struct cp2p_listener cp2p_listener_t;

/* What some listeners need beyond the address (/wss: a certificate). */
typedef struct cp2p_listen_opts {
    const char *tls_cert_file, *tls_key_file; /* PEM; the first may hold the chain */
} cp2p_listen_opts_t;
typedef struct cp2p_dial cp2p_dial_t;

/* rc is owned by the callee. */
typedef void (*cp2p_accept_fn)(void *arg, cp2p_rawconn_t *rc);
/* Exactly once per dial unless cancelled: status 0 and rc (owned by the
 * callee), or a negative code (CP2P_ECONNREFUSED, CP2P_EUNREACHABLE, CP2P_EIO). */
typedef void (*cp2p_dial_fn)(void *arg, int status, cp2p_rawconn_t *rc);

typedef struct cp2p_transport_vtable {
    const char *name;
    /* 1 if this transport can dial / listen on ma (a trailing /p2p/ is allowed). */
    int (*matches)(const cp2p_multiaddr_t *ma);
    int (*listen)(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_accept_fn fn, void *arg,
                  cp2p_listener_t **out);
    /* Optional (NULL: listen): listen, with options. */
    int (*listen_with)(uv_loop_t *loop, const cp2p_multiaddr_t *ma, const cp2p_listen_opts_t *o,
                       cp2p_accept_fn fn, void *arg, cp2p_listener_t **out);
    /* Appends the bound addresses (wildcards expanded to the interfaces' addresses)
     * to *addrs (a realloc'd array of *n values; the caller frees each .bytes). */
    int (*listener_addrs)(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n);
    /* Stops accepting; the listener frees itself once its handle is closed. */
    void (*listener_close)(cp2p_listener_t *l);
    int (*dial)(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                cp2p_dial_t **out);
    /* fn will not run; the dial frees itself once its requests are done. */
    void (*dial_cancel)(cp2p_dial_t *d);
    /* Optional (NULL: dial is used). Like dial, from the port of one of ls
     * (listeners of this transport, borrowed for the call only) that fits
     * the destination, so the remote and NATs see our listen port (port
     * reuse, needed by hole punching's simultaneous open); from any port if
     * none fits, or, unless strict, if that 4-tuple is taken (a connection
     * between the same two ports exists: for a hole punch, likely the one
     * the remote's simultaneous dial made, so strict fails instead). */
    int (*dial_reuse)(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_listener_t *const *ls,
                      size_t nls, int strict, cp2p_dial_fn fn, void *arg, cp2p_dial_t **out);
} cp2p_transport_vtable_t;

extern const cp2p_transport_vtable_t cp2p_tcp_transport;
extern const cp2p_transport_vtable_t cp2p_unix_transport;
extern const cp2p_transport_vtable_t cp2p_ws_transport;

#endif
