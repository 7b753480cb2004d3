/* The connection manager's tag table: which peers the application values
 * (tags with weights) and which are the least valuable to disconnect when
 * the host has too many connections. Sans-I/O: the host feeds it connection
 * events and closes what it picks. */
#ifndef CP2P_HOST_CONNMGR_H
#define CP2P_HOST_CONNMGR_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"

#define CP2P_CONNMGR_MAX_TAGS 16      /* tags per peer */
#define CP2P_CONNMGR_MAX_TAG_LEN 64   /* bytes in a tag name */
#define CP2P_CONNMGR_MAX_PEERS 4096   /* peers tracked: connected or tagged */

typedef struct cp2p_connmgr cp2p_connmgr_t;

int cp2p_connmgr_new(cp2p_connmgr_t **out);
void cp2p_connmgr_free(cp2p_connmgr_t *m);

/* Set (or replace) the weight of a tag on peer. CP2P_EINVAL: empty or too
 * long a tag; CP2P_ELIMIT: too many tags on peer or peers tracked. */
int cp2p_connmgr_tag(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, const char *tag, int weight);
/* Removing a tag that is not there is not an error (as in go-libp2p). */
int cp2p_connmgr_untag(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, const char *tag);
/* Sum of peer's tag weights (0 if untracked). */
int64_t cp2p_connmgr_value(const cp2p_connmgr_t *m, const cp2p_peer_id_t *peer);

/* One more or one less open connection to peer (now_ms: when). A peer that
 * cannot be tracked (CP2P_ELIMIT) is simply never picked by trim. */
int cp2p_connmgr_connected(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer, uint64_t now_ms);
void cp2p_connmgr_disconnected(cp2p_connmgr_t *m, const cp2p_peer_id_t *peer);

/* The connected peers to disconnect so that at least excess connections go:
 * lowest value first, untagged before tagged at equal value, then the
 * longest connected first. Peers connected after spare_after_ms are spared
 * (a grace period: UINT64_MAX spares none). Fills out[0..cap) and returns how many. */
size_t cp2p_connmgr_victims(const cp2p_connmgr_t *m, size_t excess, uint64_t spare_after_ms,
                            cp2p_peer_id_t *out, size_t cap);

#endif
