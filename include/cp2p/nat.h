/** @file
 * Port mapping on the home gateway: each TCP port the host listens on over
 * IPv4 is mapped with NAT-PMP (RFC 6886, through libnatpmp) or UPnP IGD
 * (WANIPConnection AddPortMapping, through libminiupnpc), renewed at half its
 * lease and removed when the port map is closed. The external address
 * (gateway's public IP, mapped port) is a candidate: it is told through the
 * callback, and advertised (added to the host's announce addresses) only if
 * the configuration says so, since nothing here proves the outside can
 * reach it (AutoNAT does).
 *
 * libminiupnpc's discovery and requests block: they run on libuv's thread
 * pool, never on the loop. libnatpmp is non-blocking and runs on the loop.
 * Every call and callback is on the loop thread. */
#ifndef CP2P_NAT_H
#define CP2P_NAT_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/host.h"
#include "cp2p/multiaddr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_nat cp2p_nat_t;

/** Mapping methods, a bit mask. */
#define CP2P_NAT_NATPMP 1u
#define CP2P_NAT_UPNP 2u

#define CP2P_NAT_DEFAULT_LEASE_S 3600     /**< asked for; renewed at half of what is granted */
#define CP2P_NAT_DEFAULT_TIMEOUT_MS 2000  /**< NAT-PMP reply, UPnP discovery (SSDP) */
#define CP2P_NAT_MAX_MAPPINGS 8           /**< listen ports mapped; more are ignored */
#define CP2P_NAT_MIN_RENEW_S 2            /**< a lease granted shorter is renewed this often */

/** Zero fields take the defaults. */
typedef struct cp2p_nat_config {
    unsigned methods;        /**< CP2P_NAT_NATPMP | CP2P_NAT_UPNP (0 = both: NAT-PMP first, it is quicker) */
    uint32_t lease_s;        /**< lifetime asked for each mapping */
    uint32_t timeout_ms;     /**< how long a gateway has to answer */
    const char *gateway;     /**< NAT-PMP: the gateway's IPv4 address (NULL = the default route's) */
    const char *description; /**< UPnP mapping description (NULL = "cp2p") */
    /** Add the external addresses to the host's announce addresses as soon
     * as they are mapped (cp2p_host_set_announce_addrs: the listen addresses
     * plus the mapped ones; an announce list the program set is replaced),
     * without waiting for AutoNAT to confirm them. Put back on close. */
    int advertise;
    int loopback; /**< also map ports that listen on loopback (tests) */
} cp2p_nat_config_t;

typedef enum {
    CP2P_NAT_MAPPED, /**< a port is mapped: external is its address (again after a renewal
                          only if it changed) */
    CP2P_NAT_LOST,   /**< a renewal failed: external is no longer mapped (retried later) */
    CP2P_NAT_FAILED  /**< no gateway answered, or it refused: error, reason; the host goes on */
} cp2p_nat_event_type_t;

typedef struct cp2p_nat_event {
    cp2p_nat_event_type_t type;
    unsigned method;                  /**< CP2P_NAT_NATPMP or CP2P_NAT_UPNP; 0 for "no gateway" */
    uint16_t internal_port;           /**< 0 when no port is concerned */
    const cp2p_multiaddr_t *external; /**< /ip4/(public address)/tcp/(port); MAPPED and LOST */
    uint32_t lifetime_s;              /**< MAPPED: the lease granted (0 = permanent) */
    int error;                        /**< FAILED, LOST: a CP2P_E* code */
    const char *reason;               /**< FAILED, LOST: in words */
} cp2p_nat_event_t;

/** Valid during the call only. */
typedef void (*cp2p_nat_event_fn)(const cp2p_nat_event_t *ev, void *arg);

/** Start mapping h's IPv4 TCP listen ports (those it has now and those it
 * gets later). cfg and fn may be NULL. Nothing is sent before a later loop
 * turn; the callback never runs inside this call. The host must outlive
 * the port map. CP2P_EINVAL (bad gateway address, methods), CP2P_ENOMEM. */
CP2P_API int cp2p_nat_start(cp2p_host_t *h, const cp2p_nat_config_t *cfg, cp2p_nat_event_fn fn,
                            void *arg, cp2p_nat_t **out);
/** Remove the mappings from the gateway (waiting for a request under way to
 * finish, at most the timeout for each removal), then free n; done (may be
 * NULL) runs once that is over, on a later loop turn. No event is delivered
 * after this call. */
CP2P_API void cp2p_nat_close(cp2p_nat_t *n, void (*done)(void *arg), void *arg);
/** The external addresses mapped now, as for cp2p_host_listen_addrs (free
 * with cp2p_multiaddr_array_free). */
CP2P_API int cp2p_nat_addrs(const cp2p_nat_t *n, cp2p_multiaddr_t **addrs, size_t *count);
/** "NAT-PMP", "UPnP" or "none": the method in use once a gateway answered. */
CP2P_API const char *cp2p_nat_method_name(unsigned method);

#ifdef __cplusplus
}
#endif
#endif
