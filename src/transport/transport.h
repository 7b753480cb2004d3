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
 * bytes (websocket), run by the swarm's connection on what it reads and
 * writes. The calls are cp2p_ws_decode, cp2p_ws_frame and
 * cp2p_ws_close_frame's (transport/ws_proto.h), on the state w. */
#define CP2P_WIRE_MAX_HEAD 14
typedef struct cp2p_wire_vtable {
    ssize_t (*decode)(void *w, uint8_t *p, size_t n, cp2p_buf_t *reply, int *eof);
    size_t (*frame)(void *w, uint8_t *p, size_t n, uint8_t *head);
    int (*close_frame)(void *w, cp2p_buf_t *out);
} cp2p_wire_vtable_t;

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
    /* Appends the bound addresses (wildcards expanded to the interfaces' addresses)
     * to *addrs (a realloc'd array of *n values; the caller frees each .bytes). */
    int (*listener_addrs)(cp2p_listener_t *l, cp2p_multiaddr_t **addrs, size_t *n);
    /* Stops accepting; the listener frees itself once its handle is closed. */
    void (*listener_close)(cp2p_listener_t *l);
    int (*dial)(uv_loop_t *loop, const cp2p_multiaddr_t *ma, cp2p_dial_fn fn, void *arg,
                cp2p_dial_t **out);
    /* fn will not run; the dial frees itself once its requests are done. */
    void (*dial_cancel)(cp2p_dial_t *d);
} cp2p_transport_vtable_t;

extern const cp2p_transport_vtable_t cp2p_tcp_transport;
extern const cp2p_transport_vtable_t cp2p_unix_transport;
extern const cp2p_transport_vtable_t cp2p_ws_transport;

#endif
