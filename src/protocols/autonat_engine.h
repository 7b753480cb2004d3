/* AutoNAT v1's sans-I/O parts (libp2p specs autonat/autonat-v1.md): which
 * addresses a server may dial back, its rate limits, and the client's
 * reachability with confidence. No sockets, no timers: time comes in. */
#ifndef CP2P_AUTONAT_ENGINE_H
#define CP2P_AUTONAT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/autonat.h"
#include "cp2p/host.h"

/* Dial-backs per period, per peer and in all (go-libp2p's throttle). The
 * peer table holds at most global_max entries: a peer enters it only by
 * taking one of the global slots. */
typedef struct an_throttle {
    uint32_t global_max, peer_max, reset_ms;
    uint32_t global;
    uint64_t reset_at;
    struct an_peer_count {
        cp2p_peer_id_t id;
        uint32_t n;
    } *peers;
    size_t npeers;
} an_throttle_t;

int an_throttle_init(an_throttle_t *t, uint32_t global_max, uint32_t peer_max, uint32_t reset_ms);
void an_throttle_free(an_throttle_t *t);
/* 0 and one slot taken, or CP2P_ELIMIT. */
int an_throttle_take(an_throttle_t *t, const cp2p_peer_id_t *peer, uint64_t now_ms);

/* A server's answer to one request: either addresses to dial back (owned
 * copies in dial[0..*ndial), without /p2p/; the observed address first) or a
 * refusal to send at once. */
typedef struct an_verdict {
    int dial;                  /* 1: dial dial[0..ndial); 0: send refusal */
    cp2p_multiaddr_t dial_addrs[CP2P_AUTONAT_MAX_ADDRS];
    size_t ndial;
    size_t refused;            /* addresses not taken */
    int rate_limited;
    int status;                /* the refusal's status ... */
    const char *text;          /* ... and statusText */
} an_verdict_t;

/* The spec's rules: the peer in the request (if given) is the one asking;
 * only addresses whose IP is the observed one, never relayed ones, loopback
 * and private ones only with allow_private; then the rate limits. */
void an_server_decide(an_throttle_t *t, uint64_t now_ms, int allow_private,
                      const cp2p_peer_id_t *remote, const cp2p_multiaddr_t *observed,
                      const cp2p_autonat_msg_t *req, an_verdict_t *out);
void an_verdict_free(an_verdict_t *v);
/* A copy of a to dial (its /p2p/, if the remote's, cut); CP2P_EINVAL if it
 * is relayed or names another peer. */
int an_dialable_copy(const cp2p_multiaddr_t *a, const cp2p_peer_id_t *remote, cp2p_multiaddr_t *out);

/* AutoNAT v2's server: the first address of the request it will dial
 * (*idx), and whether that needs the dial data first (*need_data: its IP is
 * not the observed one). CP2P_ENOTFOUND if none. */
int an2_pick(const cp2p_multiaddr_t *observed, const cp2p_autonat2_msg_t *req, int allow_private,
             const cp2p_peer_id_t *remote, size_t *idx, int *need_data);

/* An answer's meaning for the client: OK public, E_DIAL_ERROR private,
 * anything else (refused, bad request, no answer) unknown. */
cp2p_reachability_t an_observation(int status);

typedef struct an_reach {
    cp2p_reachability_t status;
    int confidence;
} an_reach_t;
/* go-libp2p's recordObservation: 1 if status changed. */
int an_reach_record(an_reach_t *r, cp2p_reachability_t obs);

/* Address candidates: where peers say they see us (identify's observedAddr).
 * One becomes worth a dial-back once `threshold` distinct peers saw it
 * (go-libp2p's ActivationThresh is 4). Bounded: a full table forgets the
 * oldest candidate not confirmed. */
#define AN_MAX_CANDIDATES 16
#define AN_MAX_OBSERVERS 8
enum { AN_CAND_OBSERVED, AN_CAND_DUE, AN_CAND_PROBING, AN_CAND_CONFIRMED, AN_CAND_FAILED };
typedef struct an_candidate {
    cp2p_multiaddr_t addr;
    cp2p_peer_id_t observers[AN_MAX_OBSERVERS];
    size_t nobs;
    int state;
    uint64_t seen;
} an_candidate_t;
typedef struct an_candidates {
    an_candidate_t c[AN_MAX_CANDIDATES];
    size_t n;
    uint32_t threshold;
} an_candidates_t;
/* Count observer's sighting of addr; the candidate's index once it is
 * due a dial-back (this sighting made it so), else -1. */
int an_candidates_observe(an_candidates_t *t, const cp2p_multiaddr_t *addr,
                          const cp2p_peer_id_t *observer, uint64_t now);
void an_candidates_free(an_candidates_t *t);

#endif
