/* What the library's own modules may do to a host that programs may not:
 * emit events (identify emits CP2P_EVENT_PEER_IDENTIFIED, mDNS
 * CP2P_EVENT_PEER_DISCOVERED). Every subscriber sees the event, during the
 * call only. */
#ifndef CP2P_HOST_PRIV_H
#define CP2P_HOST_PRIV_H

#include "cp2p/host.h"

void cp2p_host_emit(cp2p_host_t *h, const cp2p_event_t *ev);

/* The host's swarm, for the protocols that steer dials and connections
 * themselves (DCUtR). */
struct cp2p_swarm;
struct cp2p_swarm *cp2p_host_swarm(cp2p_host_t *h);

#endif
