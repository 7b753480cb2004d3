/** @file
 * Health and metrics over HTTP: a tiny HTTP/1.1 server on the host's loop
 * answering GET /healthz (for liveness and readiness probes) and GET /metrics
 * (Prometheus text format 0.0.4) from the host's counters and those of the
 * sources it is given: subsystems above the host (the DHT, mDNS...) each
 * offer a cp2p_metrics_collect_fn, so the host knows none of them. Loop
 * thread only.
 *
 * Every client is hostile: a request is at most CP2P_METRICS_MAX_REQUEST
 * bytes and must arrive within the idle timeout, and each connection serves
 * one request and closes. The slots are shared: a newcomer over
 * max_clients_per_ip makes a client of its own address give way (evicted),
 * one over max_clients a client of the address holding the most; of those, a
 * client already answered goes first, then the oldest still sending its
 * request, one being answered last. So a flood of slow clients cannot keep a
 * probe out, and a probe from an address of its own is the last to go. A
 * request for /healthz is answered on its request line, without waiting for
 * the headers. */
#ifndef CP2P_METRICS_H
#define CP2P_METRICS_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_METRICS_MAX_REQUEST 4096          /**< request line and headers */
#define CP2P_METRICS_DEFAULT_IDLE_TIMEOUT_MS 5000 /**< from accept to a whole request */
#define CP2P_METRICS_DEFAULT_MAX_CLIENTS 64
#define CP2P_METRICS_DEFAULT_MAX_CLIENTS_PER_IP 8 /**< IPv6: per /64 */
/** Connections accepted per loop turn; the rest wait in the listen backlog
 * for the next turn, so that every client accepted is read (a /healthz
 * probe answered) before more newcomers can push it out. */
#define CP2P_METRICS_ACCEPTS_PER_TURN 16
#define CP2P_METRICS_MAX_SOURCES 8
#define CP2P_METRICS_MAX_PER_SOURCE 32

typedef struct cp2p_metrics cp2p_metrics_t;

/** One sample a subsystem reports; the strings are static. */
typedef struct cp2p_metric {
    const char *name; /**< e.g. "cp2p_dht_records" */
    const char *type; /**< "counter" or "gauge" */
    const char *help;
    uint64_t value;
} cp2p_metric_t;

/** Fills out[0..cap) with the subsystem's samples and returns how many it
 * filled. */
typedef size_t (*cp2p_metrics_collect_fn)(const void *subsystem, cp2p_metric_t *out, size_t cap);

typedef struct cp2p_metrics_source {
    cp2p_metrics_collect_fn collect;
    const void *subsystem; /**< borrowed: must outlive the server */
} cp2p_metrics_source_t;

typedef struct cp2p_metrics_config {
    const char *listen;          /**< "IP:PORT", e.g. "0.0.0.0:8080", "[::]:8080", "127.0.0.1:0" */
    /** e.g. cp2p_dht_metrics_source(dht), cp2p_mdns_metrics_source(mdns);
     * a NULL collect ends the list */
    cp2p_metrics_source_t sources[CP2P_METRICS_MAX_SOURCES];
    uint32_t idle_timeout_ms;    /**< 0 = CP2P_METRICS_DEFAULT_IDLE_TIMEOUT_MS */
    uint32_t max_clients;        /**< 0 = CP2P_METRICS_DEFAULT_MAX_CLIENTS */
    uint32_t max_clients_per_ip; /**< 0 = CP2P_METRICS_DEFAULT_MAX_CLIENTS_PER_IP */
    int limit_loopback;          /**< loopback clients count per IP too (by default they do not) */
} cp2p_metrics_config_t;

typedef struct cp2p_metrics_stats {
    uint64_t requests;      /**< answered 200 */
    uint64_t bad_requests;  /**< answered 4xx: malformed, too large, unknown path or method */
    uint64_t timeouts;      /**< closed: no whole request within the idle timeout */
    uint64_t evicted;       /**< closed to make room for a newer client */
} cp2p_metrics_stats_t;

/** Listen on cfg->listen (numeric address only). h is borrowed and must
 * outlive the server. CP2P_EINVAL for a malformed address, CP2P_EIO if it
 * cannot be bound. */
CP2P_API int cp2p_metrics_start(cp2p_host_t *h, const cp2p_metrics_config_t *cfg, cp2p_metrics_t **out);
/** The bound port (useful with port 0). */
CP2P_API int cp2p_metrics_port(const cp2p_metrics_t *m);
CP2P_API void cp2p_metrics_stats(const cp2p_metrics_t *m, cp2p_metrics_stats_t *out);
/** Close the listener and every client; done (may be NULL) runs once m is freed. */
CP2P_API void cp2p_metrics_stop(cp2p_metrics_t *m, void (*done)(void *arg), void *arg);

/** The /metrics body: appends the Prometheus text for h and the sources (up
 * to CP2P_METRICS_MAX_SOURCES; a NULL collect ends the list) to out. */
CP2P_API int cp2p_metrics_render(cp2p_host_t *h, const cp2p_metrics_source_t *sources, cp2p_buf_t *out);

#ifdef __cplusplus
}
#endif
#endif
