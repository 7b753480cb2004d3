/* Iterative Kademlia lookup (libp2p kad-dht spec, "Peer routing"), sans-I/O.
 * The caller seeds it with the closest peers it knows, asks the peers that
 * next() returns, and reports each answer (with the closer peers it carried)
 * or failure. Time comes in as now_ms (any monotonic clock): a request not
 * answered within request_timeout_ms counts as failed, so a silent peer never
 * stalls the lookup; next_deadline() says when to call next() again.
 *
 * The lookup is done when the k closest peers not known to have failed have
 * all answered, or when nothing is left to ask and nothing is in flight. At
 * most max_candidates peers are remembered; farther ones are forgotten. */
#ifndef CP2P_KAD_QUERY_H
#define CP2P_KAD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"
#include "kad/kad_table.h"

#define CP2P_KAD_DEFAULT_MAX_CANDIDATES 256
#define CP2P_KAD_MAX_ALPHA 32
#define CP2P_KAD_MAX_CANDIDATES 4096

/* Zero fields take the defaults. */
typedef struct cp2p_kad_query_config {
    size_t k;                    /* CP2P_DHT_DEFAULT_K (cp2p/dht.h, as alpha and the timeout) */
    size_t alpha;                /* requests in flight at once */
    uint64_t request_timeout_ms;
    size_t max_candidates;       /* at least k */
    const cp2p_peer_id_t *self;  /* never asked or returned; may be NULL */
} cp2p_kad_query_config_t;

typedef enum cp2p_kad_peer_state {
    CP2P_KAD_PEER_HEARD = 0,  /* known, not asked yet */
    CP2P_KAD_PEER_WAITING,    /* asked, no answer yet */
    CP2P_KAD_PEER_SUCCEEDED,  /* answered */
    CP2P_KAD_PEER_FAILED      /* failed, timed out or answered nonsense */
} cp2p_kad_peer_state_t;

typedef struct cp2p_kad_query_stats {
    size_t requests;
    size_t successes;
    size_t failures;
    size_t timeouts;
    size_t dropped; /* candidates forgotten because of max_candidates */
} cp2p_kad_query_stats_t;

typedef struct cp2p_kad_query cp2p_kad_query_t;

/* target is the kad key to look up (cp2p_kad_key_of() of the wire key). cfg may be NULL. */
int cp2p_kad_query_new(const cp2p_kad_key_t *target, const cp2p_kad_query_config_t *cfg,
                       cp2p_kad_query_t **out);
void cp2p_kad_query_free(cp2p_kad_query_t *q);

/* Add peers as candidates (seeds, or peers learned elsewhere). Known peers
 * keep their state. */
int cp2p_kad_query_add_peers(cp2p_kad_query_t *q, const cp2p_peer_id_t *peers, size_t n);
/* Expire overdue requests, then pick up to cap peers to ask now, closest
 * first, keeping at most alpha in flight; they are WAITING with a deadline
 * of now_ms + request_timeout_ms. Returns how many were written to out. */
size_t cp2p_kad_query_next(cp2p_kad_query_t *q, uint64_t now_ms, cp2p_peer_id_t *out, size_t cap);
/* peer answered with closer[0..n). CP2P_ESTATE if it was not WAITING (a late
 * answer after its timeout, or a peer never asked): then nothing changes. */
int cp2p_kad_query_on_response(cp2p_kad_query_t *q, const cp2p_peer_id_t *peer,
                               const cp2p_peer_id_t *closer, size_t n);
/* The request to peer failed. CP2P_ESTATE if it was not WAITING. */
int cp2p_kad_query_on_failure(cp2p_kad_query_t *q, const cp2p_peer_id_t *peer);
/* End the lookup early (e.g. enough values found). */
void cp2p_kad_query_stop(cp2p_kad_query_t *q);

int cp2p_kad_query_done(const cp2p_kad_query_t *q);
/* The earliest deadline of a request in flight; UINT64_MAX if none. */
uint64_t cp2p_kad_query_next_deadline(const cp2p_kad_query_t *q);
size_t cp2p_kad_query_in_flight(const cp2p_kad_query_t *q);
/* The up to cap closest peers that answered, closest first; returns how many. */
size_t cp2p_kad_query_closest(const cp2p_kad_query_t *q, cp2p_peer_id_t *out, size_t cap);
/* The state of peer in this lookup; CP2P_ENOTFOUND if not a candidate. */
int cp2p_kad_query_peer_state(const cp2p_kad_query_t *q, const cp2p_peer_id_t *peer);
const cp2p_kad_query_stats_t *cp2p_kad_query_stats(const cp2p_kad_query_t *q);

#endif
