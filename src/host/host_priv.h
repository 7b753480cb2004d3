/* What the library's own modules may do to a host that programs may not:
 * emit events (identify emits CP2P_EVENT_PEER_IDENTIFIED, mDNS
 * CP2P_EVENT_PEER_DISCOVERED). Every subscriber sees the event, during the
 * call only. */
#ifndef CP2P_HOST_PRIV_H
#define CP2P_HOST_PRIV_H

#include "cp2p/host.h"
#include "transport/transport.h"

void cp2p_host_emit(cp2p_host_t *h, const cp2p_event_t *ev);
/* AutoNAT's verdict: stored and told (CP2P_EVENT_REACHABILITY) if it
 * changes, unless the config forces the reachability. */
void cp2p_host_set_reachability(cp2p_host_t *h, cp2p_reachability_t r);
/* An external address AutoNAT confirmed (a dial-back reached it): advertised
 * after the announce or listen addresses, at most CP2P_HOST_MAX_EXTERNAL_ADDRS
 * (the oldest goes); CP2P_EEXIST if there already. Subscribers hear of it. */
#define CP2P_HOST_MAX_EXTERNAL_ADDRS 8
int cp2p_host_add_external_addr(cp2p_host_t *h, const cp2p_multiaddr_t *ma);

/* The host's swarm, for the protocols that steer dials and connections
 * themselves (DCUtR). */
struct cp2p_swarm;
struct cp2p_swarm *cp2p_host_swarm(cp2p_host_t *h);

/* Addresses the host cannot listen on or dial itself (`/p2p-circuit`): a
 * module above it (the relay client) installs these hooks. listen starts
 * listening (asynchronously: a reservation); listen_addrs appends the
 * addresses it listens on now to *addrs (a realloc'd array of *n); dial and
 * dial_cancel are the swarm's external dialer (swarm/swarm.h). NULL removes
 * the hooks. */
typedef struct cp2p_host_ext_transport {
    void *ctx;
    int (*matches)(void *ctx, const cp2p_multiaddr_t *ma);
    int (*listen)(void *ctx, const cp2p_multiaddr_t *ma);
    int (*listen_addrs)(void *ctx, cp2p_multiaddr_t **addrs, size_t *n);
    int (*dial)(void *ctx, const cp2p_multiaddr_t *ma, const cp2p_peer_id_t *peer,
                cp2p_dial_fn fn, void *arg, void **out);
    void (*dial_cancel)(void *ctx, void *d);
} cp2p_host_ext_transport_t;
void cp2p_host_set_ext_transport(cp2p_host_t *h, const cp2p_host_ext_transport_t *t);
/* An inbound raw connection the hooks accepted (a circuit): upgraded as the
 * responder. Taken over. */
void cp2p_host_accept_raw(cp2p_host_t *h, cp2p_rawconn_t *rc);
/* Tell subscribers of a new address we listen on (CP2P_EVENT_LISTEN_ADDR),
 * or, with NULL, that one went away (identify pushes the new set). */
void cp2p_host_addrs_changed(cp2p_host_t *h, const cp2p_multiaddr_t *added);

#endif
