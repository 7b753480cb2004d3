/* The cp2pd control server (go-libp2p-daemon specs/CONTROL.md): clients on a
 * unix or tcp control socket drive a host with p2pd requests; streams are
 * bridged between host streams and client sockets. Loop thread only. */
#ifndef CP2P_DAEMON_H
#define CP2P_DAEMON_H

#include <stdint.h>

#include "cp2p/dht.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"

#define CP2P_DAEMON_DEFAULT_MAX_CLIENTS 1024 /* control connections and bridged streams */
#define CP2P_DAEMON_MAX_HANDLERS 256         /* protocols with a STREAM_HANDLER */

typedef struct cp2p_daemon cp2p_daemon_t;

typedef struct cp2p_daemon_config {
    const char *control;  /* /unix/<path> or /ip4|ip6/<ip>/tcp/<port> */
    cp2p_dht_t *dht;      /* borrowed, must outlive the daemon; NULL: DHT requests fail */
    uint32_t max_clients; /* 0 = CP2P_DAEMON_DEFAULT_MAX_CLIENTS */
} cp2p_daemon_config_t;

typedef struct cp2p_daemon_stats {
    uint64_t clients;          /* control connections accepted */
    uint64_t clients_rejected; /* closed at once: over max_clients */
    uint64_t open_clients;     /* control connections and bridged streams open now */
    uint64_t bad_requests;     /* malformed or invalid requests, broken framing */
    uint64_t streams;          /* host streams bridged to a client socket */
    uint64_t handler_failures; /* inbound streams whose handler address did not answer */
} cp2p_daemon_stats_t;

/* Listen on cfg->control (a stale unix socket file is replaced). h is
 * borrowed and must outlive the daemon. */
int cp2p_daemon_new(cp2p_host_t *h, const cp2p_daemon_config_t *cfg, cp2p_daemon_t **out);
/* The control address with the bound port (a copy the caller frees). */
int cp2p_daemon_control_addr(const cp2p_daemon_t *d, cp2p_multiaddr_t *out);
void cp2p_daemon_stats(const cp2p_daemon_t *d, cp2p_daemon_stats_t *out);
/* Stop listening, reset bridged streams, close clients, remove our stream
 * handlers from the host; done runs once every handle is closed and d is freed. */
void cp2p_daemon_close(cp2p_daemon_t *d, void (*done)(void *arg), void *arg);

#endif
