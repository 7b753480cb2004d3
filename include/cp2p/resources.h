/** @file
 * Resource limits: how much remote peers may make a host hold, scope by
 * scope, in the manner of go-libp2p's resource manager.
 *
 *   system     the whole host
 *   transient  connections still upgrading and streams still negotiating
 *              (nobody authenticated or no protocol chosen yet)
 *   peer       each remote peer: all its connections and their streams
 *   protocol   each protocol: its streams, every peer's together
 *
 * A connection belongs to the transient scope until its upgrade proves its
 * peer, then to that peer's; a stream to the transient scope until its
 * protocol is negotiated, then to that protocol's. Each also counts in the
 * scopes above it (a stream: its peer and the system). A reservation that
 * would take any of its scopes over a limit is refused: the stream is reset
 * or the connection closed (our own dial or stream open fails with
 * CP2P_ELIMIT), counted per scope and logged (rate-limited, log.h). Memory
 * (output queues, stream buffers, message assembly) cannot be refused once
 * a remote sent it: a connection whose peer or the system is over its memory
 * limit is not read again until that scope is under three quarters of it,
 * and a stream that takes its protocol over is reset. */
#ifndef CP2P_RESOURCES_H
#define CP2P_RESOURCES_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A limit field set to this has no limit; 0 takes the default. */
#define CP2P_RC_UNLIMITED UINT64_MAX

typedef struct cp2p_rc_limits {
    uint64_t memory;                     /**< bytes */
    uint64_t conns, conns_in, conns_out; /**< conns: both directions together */
    uint64_t streams, streams_in, streams_out;
    uint64_t fds;                        /**< sockets (system scope only) */
} cp2p_rc_limits_t;

/** The fields of cp2p_rc_limits_t in the order above, for code that walks
 * them (flags, metrics): i in [0, CP2P_RC_NLIMITS). The name is the field's
 * ("memory", "conns_in" ...); NULL past the end. */
#define CP2P_RC_NLIMITS 8
/** The fields of cp2p_rc_limits_t by index, i < CP2P_RC_NLIMITS: the
 * name ("memory", "conns", ...), and reading and setting one. */
CP2P_API const char *cp2p_rc_limit_name(size_t i);
CP2P_API uint64_t cp2p_rc_limit_get(const cp2p_rc_limits_t *l, size_t i);
CP2P_API void cp2p_rc_limit_set(cp2p_rc_limits_t *l, size_t i, uint64_t v);

typedef enum {
    CP2P_RC_SCOPE_SYSTEM,
    CP2P_RC_SCOPE_TRANSIENT,
    CP2P_RC_SCOPE_PEER,
    CP2P_RC_SCOPE_PROTOCOL
} cp2p_rc_scope_type_t;

/** One scope's use, limits and refusals. For CP2P_RC_SCOPE_PEER the figures
 * cover every peer: used is the largest use of any one peer, limit the
 * per-peer limit, refused the sum, n the number of peers with a connection. */
typedef struct cp2p_rc_scope_stat {
    cp2p_rc_scope_type_t type;
    const char *name; /**< "system", "transient", "peer" or the protocol id */
    size_t n;
    cp2p_rc_limits_t used, limit, refused;
    uint64_t memory_peak;
} cp2p_rc_scope_stat_t;

#ifdef __cplusplus
}
#endif
#endif
