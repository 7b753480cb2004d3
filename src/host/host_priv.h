/* What the library's own modules may do to a host that programs may not:
 * emit events (identify emits CP2P_EVENT_PEER_IDENTIFIED, mDNS
 * CP2P_EVENT_PEER_DISCOVERED). Every subscriber sees the event, during the
 * call only. */
#ifndef CP2P_HOST_PRIV_H
#define CP2P_HOST_PRIV_H

#include "cp2p/host.h"

void cp2p_host_emit(cp2p_host_t *h, const cp2p_event_t *ev);
/* AutoNAT's verdict: stored and told (CP2P_EVENT_REACHABILITY) if it
 * changes, unless the config forces the reachability. */
void cp2p_host_set_reachability(cp2p_host_t *h, cp2p_reachability_t r);

#endif
