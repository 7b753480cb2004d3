/* The sans-I/O part of mDNS discovery (libp2p discovery/mdns spec, RFC 6762):
 * builds queries and responses, reads datagrams, tracks which discovered
 * addresses are alive by the now_ms it is given. It knows no socket and no
 * timer; the glue in mdns.c feeds it. */
#ifndef CP2P_DISCOVERY_MDNS_ENGINE_H
#define CP2P_DISCOVERY_MDNS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/mdns.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#define CP2P_MDNS_MAX_LINKS 32      /* interfaces x families the rate limit tracks */
#define CP2P_MDNS_MAX_TRACKED 1024  /* (peer, address) pairs remembered */
#define CP2P_MDNS_MAX_PER_PEER 16   /* ... of one peer */
#define CP2P_MDNS_MAX_PER_SOURCE 128 /* ... learnt from one sender (address and port) */
#define CP2P_MDNS_MAX_PACKET 8952   /* RFC 6762 17: 9000 with the IPv6 and UDP headers */
#define CP2P_MDNS_MAX_ANNOUNCED 64  /* our own addresses in one response */
#define CP2P_MDNS_MAX_SOURCE 18     /* a datagram's source: IPv6 address and port */

typedef struct cp2p_mdns_engine cp2p_mdns_engine_t;

typedef struct cp2p_mdns_engine_config {
    const char *service;   /* NULL = CP2P_MDNS_DEFAULT_SERVICE */
    const char *peer_name; /* NULL = random */
    uint32_t ttl_s;        /* 0 = CP2P_MDNS_DEFAULT_TTL_S */
    int loopback;          /* announce loopback addresses too */
} cp2p_mdns_engine_config_t;

typedef enum {
    CP2P_MDNS_ENGINE_DISCOVERED, /* a (peer, address) pair not tracked before */
    CP2P_MDNS_ENGINE_REFRESHED,  /* seen again: its TTL starts over */
    CP2P_MDNS_ENGINE_EXPIRED
} cp2p_mdns_engine_event_t;

/* addr is without /p2p; ttl_s is the record's TTL (0 for an expiry). */
typedef void (*cp2p_mdns_engine_event_fn)(cp2p_mdns_engine_event_t type, const cp2p_peer_id_t *peer,
                                          const cp2p_multiaddr_t *addr, uint32_t ttl_s, void *arg);

int cp2p_mdns_engine_new(const cp2p_mdns_engine_config_t *cfg, const cp2p_peer_id_t *self,
                         cp2p_mdns_engine_event_fn fn, void *arg, cp2p_mdns_engine_t **out);
void cp2p_mdns_engine_free(cp2p_mdns_engine_t *e);
const char *cp2p_mdns_engine_peer_name(const cp2p_mdns_engine_t *e);
/* The TTL our records are announced with, in seconds. */
uint32_t cp2p_mdns_engine_ttl(const cp2p_mdns_engine_t *e);
/* Counters of what came in; the glue adds its tx counts. */
cp2p_mdns_stats_t *cp2p_mdns_engine_stats(cp2p_mdns_engine_t *e);

/* The addresses to announce (copied, without /p2p). Loopback ones are left
 * out unless configured, as are ones whose record would not fit a TXT string. */
int cp2p_mdns_engine_set_addrs(cp2p_mdns_engine_t *e, const cp2p_multiaddr_t *addrs, size_t n);

/* A query for the service's PTR records. */
int cp2p_mdns_engine_query(cp2p_mdns_engine_t *e, cp2p_buf_t *out);
/* Our response: answer <service> PTR <peer-name>.<service>; additional
 * records TXT dnsaddr=<addr>/p2p/<id> per address, SRV, A and AAAA of
 * <peer-name>.local. ttl_s 0 is the goodbye. CP2P_ENOTFOUND if there is no
 * address to announce (then nothing is appended). */
int cp2p_mdns_engine_response(cp2p_mdns_engine_t *e, uint32_t ttl_s, cp2p_buf_t *out);

/* One datagram received on link (an index below CP2P_MDNS_MAX_LINKS the glue
 * chose) from src (the sender's address and port as bytes, at most
 * CP2P_MDNS_MAX_SOURCE; may be empty). A query about us appends a response
 * to reply, unless one went out on that link in the last second (RFC 6762 6).
 * A response gives events.
 * Returns 0, or the error for which the packet was dropped (and counted):
 * a decode error, CP2P_EUNSUPPORTED (opcode or rcode not 0) or CP2P_EPROTO
 * (a record for our service was wrong). */
int cp2p_mdns_engine_input(cp2p_mdns_engine_t *e, unsigned link, const uint8_t *src,
                           size_t src_len, const uint8_t *p, size_t n, uint64_t now_ms,
                           cp2p_buf_t *reply);
/* 1 once after a query about our service came from a source not heard from
 * in the last two minutes: a host that just started, which our responses
 * taught about us but which we know nothing of yet. The glue then queries
 * soon, so both sides learn each other without waiting for an interval. */
int cp2p_mdns_engine_take_new_querier(cp2p_mdns_engine_t *e);
/* A query about us that came within a second of our last answer on its
 * link is answered once that second has passed: when (UINT64_MAX if none),
 * and the answer for link into reply (1 if one was appended, 0 if none is
 * due, or a negative error). */
uint64_t cp2p_mdns_engine_deferred_due(const cp2p_mdns_engine_t *e);
int cp2p_mdns_engine_deferred(cp2p_mdns_engine_t *e, unsigned link, uint64_t now,
                              cp2p_buf_t *reply);

/* Report and forget the addresses whose TTL ran out by now_ms. Returns when
 * the next one runs out (UINT64_MAX if none is tracked). */
uint64_t cp2p_mdns_engine_expire(cp2p_mdns_engine_t *e, uint64_t now_ms);
/* The number of (peer, address) pairs tracked. */
size_t cp2p_mdns_engine_tracked(const cp2p_mdns_engine_t *e);

#endif
