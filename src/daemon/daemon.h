/* The cp2pd control server (go-libp2p-daemon specs/CONTROL.md): clients on a
 * unix or tcp control socket drive a host with p2pd requests; streams are
 * bridged between host streams and client sockets. Loop thread only. */
#ifndef CP2P_DAEMON_H
#define CP2P_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/dht.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/pubsub.h"

/* Two pools, so that neither side can take the other's slots: control
 * connections (local clients; a STREAM_OPEN's bridge stays one), and the
 * streams remote peers open to a STREAM_HANDLER, bridged to its address.
 * Bridged streams also count in the host's resource manager scopes (each
 * peer's and each protocol's inbound streams and memory), which refuse or
 * reset them first when lower. */
#define CP2P_DAEMON_DEFAULT_MAX_CLIENTS 1024 /* control connections */
#define CP2P_DAEMON_DEFAULT_MAX_STREAMS 1024 /* bridged streams, every peer's */
/* bridged streams of one peer, by default: an eighth of max_streams */
#define CP2P_DAEMON_DEFAULT_STREAMS_PER_PEER_DIVISOR 8
#define CP2P_DAEMON_MAX_HANDLERS 256         /* protocols with a STREAM_HANDLER */
#define CP2P_DAEMON_DEFAULT_UNIX_MODE 0600   /* the unix control socket's */

typedef struct cp2p_daemon cp2p_daemon_t;

/* The control address decides what a STREAM_HANDLER may point at (what the
 * daemon dials for remote peers' streams), and never at the control socket:
 *   /unix/<path>   unix sockets that exist (S_ISSOCK), and loopback TCP
 *                  (@libp2p/daemon-client listens on 127.0.0.1 for handlers)
 *   loopback TCP   (127.0.0.0/8, ::1) loopback TCP only, not the control port
 *   other TCP      refused unless allow_remote (then a loud warning); handler
 *                  addresses are then any TCP address but the control port
 * A unix control path that exists is refused (CP2P_EEXIST) unless it is a
 * stale socket of ours (a socket of our user that refuses connect()), which
 * is replaced. The socket is made with unix_mode whatever the umask. */
typedef struct cp2p_daemon_config {
    const char *control;  /* /unix/<path> or /ip4|ip6/<ip>/tcp/<port> */
    cp2p_dht_t *dht;      /* borrowed, must outlive the daemon; NULL: DHT requests fail */
    cp2p_pubsub_t *pubsub; /* borrowed, must outlive the daemon; NULL: PUBSUB requests fail */
    uint32_t max_clients; /* 0 = CP2P_DAEMON_DEFAULT_MAX_CLIENTS */
    uint32_t max_streams; /* 0 = CP2P_DAEMON_DEFAULT_MAX_STREAMS */
    uint32_t max_streams_per_peer; /* 0 = max_streams / 8 (at least 1) */
    unsigned unix_mode;   /* 0 = CP2P_DAEMON_DEFAULT_UNIX_MODE; at most 0777 */
    int allow_remote;     /* take a TCP control address that is not loopback */
    char *error;          /* optional: why cp2p_daemon_new failed, one line */
    size_t error_cap;
} cp2p_daemon_config_t;

typedef struct cp2p_daemon_stats {
    uint64_t clients;          /* control connections accepted */
    uint64_t clients_rejected; /* closed at once: over max_clients */
    uint64_t open_clients;     /* control connections open now (STREAM_OPEN bridges too) */
    uint64_t bad_requests;     /* malformed or invalid requests, broken framing */
    uint64_t streams;          /* host streams bridged to a client socket */
    uint64_t handler_failures; /* inbound streams whose handler address did not answer */
    uint64_t open_streams;     /* remote peers' streams bridged to handlers now */
    uint64_t streams_rejected; /* remote peers' streams reset: over max_streams or
                                  max_streams_per_peer */
    uint64_t handlers_refused; /* STREAM_HANDLER addresses refused (see above) */
} cp2p_daemon_stats_t;

/* 1 if control (a multiaddr string) is a unix path or loopback TCP, 0 if it
 * is TCP on another address (allow_remote needed), CP2P_E* if it is neither. */
int cp2p_daemon_control_is_local(const char *control);

/* Listen on cfg->control (see cp2p_daemon_config_t for what is refused). h
 * is borrowed and must outlive the daemon. */
int cp2p_daemon_new(cp2p_host_t *h, const cp2p_daemon_config_t *cfg, cp2p_daemon_t **out);
/* The control address with the bound port (a copy the caller frees). */
int cp2p_daemon_control_addr(const cp2p_daemon_t *d, cp2p_multiaddr_t *out);
void cp2p_daemon_stats(const cp2p_daemon_t *d, cp2p_daemon_stats_t *out);
/* Stop listening, reset bridged streams, close clients, remove our stream
 * handlers from the host; done runs once every handle is closed and d is freed. */
void cp2p_daemon_close(cp2p_daemon_t *d, void (*done)(void *arg), void *arg);

#endif
