/** @file
 * Perf (/perf/1.0.0, libp2p specs perf/perf.md): a client opens a stream,
 * sends the number of bytes it wants back as a big-endian uint64, uploads
 * some bytes and closes its write side; the server reads to EOF, then sends
 * the asked number of bytes and closes. Loop thread only.
 *
 * The server does what any client asks (up to 2^64-1 bytes back), so enable
 * it only on hosts meant for benchmarks. */
#ifndef CP2P_PERF_H
#define CP2P_PERF_H

#include "cp2p/export.h"

#include <stdint.h>

#include "cp2p/host.h"
#include "cp2p/keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_PERF_PROTOCOL_ID "/perf/1.0.0"
/** The peer ID of the libp2p perf runner's servers: the Ed25519 key whose seed
 * is 32 zero bytes. Its clients dial `/ip4/<ip>/tcp/<port>/p2p/<this>`. */
#define CP2P_PERF_SERVER_PEER_ID "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

/** The runner's fixed server identity (see above); the caller frees it. */
CP2P_API int cp2p_perf_server_identity(cp2p_privkey_t **out);

/** Serve perf on h. out may be NULL when the server may live as long as the
 * process; otherwise cp2p_perf_server_free() it before cp2p_host_close(). */
typedef struct cp2p_perf_server cp2p_perf_server_t;
/** Serve /perf/1.0.0 on h; free the server with cp2p_perf_server_free. */
CP2P_API int cp2p_perf_enable(cp2p_host_t *h, cp2p_perf_server_t **out);
/** Unregister from the host; streams being served are reset. */
CP2P_API void cp2p_perf_server_free(cp2p_perf_server_t *srv);

typedef struct cp2p_perf_server_stats {
    uint64_t streams;   /**< perf streams accepted */
    uint64_t served;    /**< answered in full and closed */
    uint64_t malformed; /**< ended before the 8-byte header: reset */
} cp2p_perf_server_stats_t;
/** The server's counters now. */
CP2P_API void cp2p_perf_server_stats(const cp2p_perf_server_t *srv, cp2p_perf_server_stats_t *out);

/** One perf run on a fresh stream. status 0: every byte went up and exactly
 * `download` bytes came back, then EOF; CP2P_EPROTO: the server sent more or
 * fewer; else the codes of cp2p_host_new_stream, a reset, CP2P_ECANCELED. */
typedef struct cp2p_perf cp2p_perf_t;
typedef void (*cp2p_perf_cb)(int status, void *arg);

/** cb runs exactly once, never before this returns. *out stays the caller's:
 * cp2p_perf_free() it after cb ran (or before, to cancel: cb then runs with
 * CP2P_ECANCELED on a later loop turn, never inside the free). */
CP2P_API int cp2p_perf_start(cp2p_host_t *h, const cp2p_peer_id_t *peer, uint64_t upload,
                             uint64_t download, cp2p_perf_cb cb, void *arg, cp2p_perf_t **out);
/** Bytes the muxer has taken from us (payload only) and bytes received, so far. */
CP2P_API void cp2p_perf_progress(const cp2p_perf_t *p, uint64_t *uploaded, uint64_t *downloaded);
/** Not from inside cb. */
CP2P_API void cp2p_perf_free(cp2p_perf_t *p);

#ifdef __cplusplus
}
#endif
#endif
