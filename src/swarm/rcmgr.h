/* The resource manager's accounting (include/cp2p/resources.h says what the
 * scopes are): counters and limits, no I/O. The swarm reserves from it for
 * its connections and streams. */
#ifndef CP2P_RCMGR_H
#define CP2P_RCMGR_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/peer.h"
#include "cp2p/resources.h"

/* The kinds are the fields of cp2p_rc_limits_t, in its order. */
typedef enum {
    RC_MEMORY,
    RC_CONNS,
    RC_CONNS_IN,
    RC_CONNS_OUT,
    RC_STREAMS,
    RC_STREAMS_IN,
    RC_STREAMS_OUT,
    RC_FDS,
    RC_NKINDS
} cp2p_rc_kind_t;

/* Protocol scopes kept at most (their ids come from our own handlers and
 * dials, so a remote cannot make more). */
#define CP2P_RCMGR_MAX_PROTOCOLS 256

typedef struct cp2p_rc_scope cp2p_rc_scope_t;
struct cp2p_rc_scope {
    cp2p_rc_scope_type_t type;
    uint64_t used[RC_NKINDS], limit[RC_NKINDS]; /* limit 0: none */
    uint64_t refused[RC_NKINDS];
    cp2p_rc_kind_t last_refused; /* the resource of the latest refusal */
    uint64_t memory_peak;
    int refs;                 /* peer scopes: connections attached */
    cp2p_peer_id_t peer;
    char *protocol;
    cp2p_rc_scope_t *next;
    struct cp2p_rcmgr *m;
};

typedef struct cp2p_rcmgr cp2p_rcmgr_t;

typedef struct cp2p_rcmgr_config {
    cp2p_rc_limits_t system, transient, peer, protocol; /* 0 fields: no limit */
} cp2p_rcmgr_config_t;

int cp2p_rcmgr_new(const cp2p_rcmgr_config_t *cfg, cp2p_rcmgr_t **out);
void cp2p_rcmgr_free(cp2p_rcmgr_t *m);
cp2p_rc_scope_t *cp2p_rcmgr_system(cp2p_rcmgr_t *m);
cp2p_rc_scope_t *cp2p_rcmgr_transient(cp2p_rcmgr_t *m);
/* The peer's scope, made on first use, with one more reference; NULL when
 * out of memory. cp2p_rcmgr_peer_put drops the reference. */
cp2p_rc_scope_t *cp2p_rcmgr_peer(cp2p_rcmgr_t *m, const cp2p_peer_id_t *peer);
void cp2p_rcmgr_peer_put(cp2p_rc_scope_t *s);
/* The protocol's scope (kept for the manager's life), NULL past
 * CP2P_RCMGR_MAX_PROTOCOLS or out of memory. */
cp2p_rc_scope_t *cp2p_rcmgr_protocol(cp2p_rcmgr_t *m, const char *id);
/* Limits for one protocol instead of the default ones (0 fields: default). */
int cp2p_rcmgr_set_protocol_limits(cp2p_rcmgr_t *m, const char *id, const cp2p_rc_limits_t *l);

/* Take n of kind, and of total (RC_CONNS or RC_STREAMS; RC_NKINDS for none),
 * in every non-NULL scope of sc[0..k) (a scope listed twice counts once): all
 * or nothing. NULL on success, else the first scope that would go over
 * (its refusal is counted). */
cp2p_rc_scope_t *cp2p_rc_reserve(cp2p_rc_scope_t *const *sc, size_t k, cp2p_rc_kind_t kind,
                                 cp2p_rc_kind_t total, uint64_t n);
void cp2p_rc_release(cp2p_rc_scope_t *const *sc, size_t k, cp2p_rc_kind_t kind,
                     cp2p_rc_kind_t total, uint64_t n);
/* Memory a remote already made us hold, added (or, negative, given back) in
 * every non-NULL scope: never refused. */
void cp2p_rc_charge(cp2p_rc_scope_t *const *sc, size_t k, long delta);
/* Over its memory limit; under the mark it is let go at (three quarters). */
int cp2p_rc_mem_over(const cp2p_rc_scope_t *s);
/* Count a refusal of kind that the caller made (memory a stream took over). */
void cp2p_rc_refuse(cp2p_rc_scope_t *s, cp2p_rc_kind_t kind);
/* At or over its limit of kind. */
int cp2p_rc_full(const cp2p_rc_scope_t *s, cp2p_rc_kind_t kind);
int cp2p_rc_mem_under_mark(const cp2p_rc_scope_t *s);
/* Move a connection's or stream's use (used[0..RC_NKINDS) of it) from one
 * scope to another: NULL on success, else `to` (nothing moved; refusal
 * counted) when a count would take it over. Memory always moves. */
cp2p_rc_scope_t *cp2p_rc_move(const uint64_t *use, cp2p_rc_scope_t *from, cp2p_rc_scope_t *to);

const char *cp2p_rc_kind_name(cp2p_rc_kind_t k);
const char *cp2p_rc_scope_name(const cp2p_rc_scope_t *s);
/* Fills out[0..cap) (system, transient, peer, then each protocol); returns
 * the total. Names are valid while the manager lives. */
size_t cp2p_rcmgr_stats(cp2p_rcmgr_t *m, cp2p_rc_scope_stat_t *out, size_t cap);
/* One peer's figures; CP2P_ENOTFOUND if it has no connection. */
int cp2p_rcmgr_peer_stat(cp2p_rcmgr_t *m, const cp2p_peer_id_t *peer, cp2p_rc_scope_stat_t *out);

#endif
