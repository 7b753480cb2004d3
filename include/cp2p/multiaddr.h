/** @file
 * Multiaddr (multiformats multiaddr spec, protocols.csv): self-describing
 * network addresses. A cp2p_multiaddr_t owns its binary form, which every
 * constructor here has validated; the string form is made on demand.
 *
 * Limits: the binary form is at most CP2P_MULTIADDR_MAX bytes and the string
 * form given to cp2p_multiaddr_parse() at most CP2P_MULTIADDR_STRMAX characters
 * (CP2P_EOVERFLOW beyond). Only the protocols listed below are known; any other
 * name or code is CP2P_EUNSUPPORTED. */
#ifndef CP2P_MULTIADDR_H
#define CP2P_MULTIADDR_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_MULTIADDR_MAX 1024
#define CP2P_MULTIADDR_STRMAX 8192 /**< enough for the text of any valid binary form */

/** Protocol codes (protocols.csv). */
#define CP2P_MA_IP4 4
#define CP2P_MA_TCP 6
#define CP2P_MA_UDP 273
#define CP2P_MA_IP6 41
#define CP2P_MA_IP6ZONE 42
#define CP2P_MA_IPCIDR 43
#define CP2P_MA_DNS 53
#define CP2P_MA_DNS4 54
#define CP2P_MA_DNS6 55
#define CP2P_MA_DNSADDR 56
#define CP2P_MA_UNIX 400
#define CP2P_MA_P2P 421 /**< "ipfs" is accepted as its name on input */
#define CP2P_MA_TLS 448
#define CP2P_MA_SNI 449
#define CP2P_MA_NOISE 454
#define CP2P_MA_QUIC 460
#define CP2P_MA_QUIC_V1 461
#define CP2P_MA_WEBTRANSPORT 465
#define CP2P_MA_CERTHASH 466
#define CP2P_MA_HTTP 480
#define CP2P_MA_WS 477
#define CP2P_MA_WSS 478
#define CP2P_MA_WEBRTC_DIRECT 280
#define CP2P_MA_WEBRTC 281
#define CP2P_MA_P2P_CIRCUIT 290

typedef struct cp2p_multiaddr {
    uint8_t *bytes; /**< malloc'd binary form; NULL when len is 0 */
    size_t len;
} cp2p_multiaddr_t;

/** One component, pointing into the multiaddr it came from. */
typedef struct cp2p_multiaddr_component {
    uint64_t code;
    const char *name;      /**< static */
    const uint8_t *value;  /**< binary value without its length prefix */
    size_t value_len;      /**< 0 for protocols without a value */
    const uint8_t *raw;    /**< the whole component: code, length, value */
    size_t raw_len;
} cp2p_multiaddr_component_t;

typedef struct cp2p_multiaddr_iter {
    const cp2p_multiaddr_t *ma;
    size_t off;
} cp2p_multiaddr_iter_t;

/** "/ip4/127.0.0.1/tcp/4001". Trailing slashes are ignored; "" and "/" are
 * errors. unix takes the rest of the string as its path ("/unix/tmp/s" is the
 * path "/tmp/s"), so it must come last. /p2p/ takes a base58btc multihash or a
 * CIDv1 with the libp2p-key codec in any multibase; /certhash/ a multibase
 * multihash. On error *out is untouched. */
CP2P_API int cp2p_multiaddr_parse(const char *s, cp2p_multiaddr_t *out);
/** Validating copy of a binary multiaddr (non-empty, exactly n bytes). */
CP2P_API int cp2p_multiaddr_from_bytes(const uint8_t *p, size_t n, cp2p_multiaddr_t *out);
/** Append the canonical string form + NUL (not counted in len). ip6 is written
 * as inet_ntop does, p2p as base58btc, certhash as base64url multibase. An empty
 * multiaddr gives "". */
CP2P_API int cp2p_multiaddr_to_string(const cp2p_multiaddr_t *ma, cp2p_buf_t *out);
CP2P_API void cp2p_multiaddr_free(cp2p_multiaddr_t *ma);
CP2P_API int cp2p_multiaddr_dup(const cp2p_multiaddr_t *ma, cp2p_multiaddr_t *out);
/** A malloc'd array of copies of addrs[0..n) (NULL when n is 0). */
CP2P_API int cp2p_multiaddr_array_dup(const cp2p_multiaddr_t *addrs, size_t n, cp2p_multiaddr_t **out);
/** Frees addrs[0..n) and the malloc'd array itself (NULL is fine). */
CP2P_API void cp2p_multiaddr_array_free(cp2p_multiaddr_t *addrs, size_t n);
/** 1 if the binary forms are equal, else 0. */
CP2P_API int cp2p_multiaddr_equal(const cp2p_multiaddr_t *a, const cp2p_multiaddr_t *b);
/** out = a followed by b (a new multiaddr; a and b are left as they are). */
CP2P_API int cp2p_multiaddr_encapsulate(const cp2p_multiaddr_t *a, const cp2p_multiaddr_t *b,
                                        cp2p_multiaddr_t *out);
/** Cut ma in place before its last component with `code`
 * ("/ip4/1.2.3.4/tcp/1/p2p/Qm.." without p2p is "/ip4/1.2.3.4/tcp/1").
 * The result may be empty. CP2P_ENOTFOUND if there is no such component. */
CP2P_API int cp2p_multiaddr_decapsulate_code(cp2p_multiaddr_t *ma, uint64_t code);

/** Walk the components of a multiaddr made by the functions above. */
CP2P_API void cp2p_multiaddr_iter_init(cp2p_multiaddr_iter_t *it, const cp2p_multiaddr_t *ma);
/** 1 and fills *c while there is a component, then 0. */
CP2P_API int cp2p_multiaddr_iter_next(cp2p_multiaddr_iter_t *it, cp2p_multiaddr_component_t *c);
/** The first component with `code`; CP2P_ENOTFOUND if none. */
CP2P_API int cp2p_multiaddr_get(const cp2p_multiaddr_t *ma, uint64_t code, cp2p_multiaddr_component_t *c);
/** Append the string form of one component's value + NUL ("127.0.0.1", "4001",
 * "/tmp/s" for unix, "" for protocols without a value). */
CP2P_API int cp2p_multiaddr_value_to_string(const cp2p_multiaddr_component_t *c, cp2p_buf_t *out);

/** How far an address's leading IP reaches (no spec; the ranges are IANA's
 * special-purpose registries). Documentation, benchmarking and reserved
 * ranges count as private: nothing on the internet routes them. */
typedef enum cp2p_ip_scope {
    CP2P_IP_NONE = 0,  /**< no ip4/ip6 first (dns, unix, ...): nothing to judge */
    CP2P_IP_UNUSABLE,  /**< unspecified, multicast, broadcast, link-local */
    CP2P_IP_LOOPBACK,
    CP2P_IP_PRIVATE,   /**< 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ... */
    CP2P_IP_PUBLIC,
} cp2p_ip_scope_t;
/** The scope of ma's leading ip4 or ip6 (an ip6zone counts as link-local). */
CP2P_API cp2p_ip_scope_t cp2p_multiaddr_ip_scope(const cp2p_multiaddr_t *ma);
/** The scope of a raw IPv4 (len 4) or IPv6 (len 16) address. */
CP2P_API cp2p_ip_scope_t cp2p_ip_scope(const uint8_t *ip, size_t len);

/** Name to code and back. _code returns 0 or CP2P_ENOTFOUND; _name returns NULL if unknown. */
CP2P_API int cp2p_multiaddr_protocol_code(const char *name, uint64_t *code);
CP2P_API const char *cp2p_multiaddr_protocol_name(uint64_t code);

#ifdef __cplusplus
}
#endif
#endif
