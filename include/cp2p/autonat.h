/** @file
 * AutoNAT v1, /libp2p/autonat/1.0.0 (libp2p specs autonat/autonat-v1.md):
 * is this host reachable from the internet?
 *
 * The service answers a peer's Dial request by dialling the peer back on
 * the addresses it gave whose IP is the one its connection came from (the
 * spec's rule: no third party can be made a target), from a separate dialer
 * host with a key of its own, so the dial-back is always a new connection;
 * requests are rate limited per peer and in all, as go-libp2p's are.
 *
 * The client asks connected peers that speak the protocol to dial it back
 * and turns their answers into the host's reachability (public, private,
 * unknown) with go-libp2p's confidence: public is taken at the first
 * success, leaving it takes several disagreeing answers in a row
 * (cp2p_host_reachability, CP2P_EVENT_REACHABILITY). A host whose config
 * forces its reachability does not probe. */
#ifndef CP2P_AUTONAT_H
#define CP2P_AUTONAT_H

#include "cp2p/export.h"

#include <stddef.h>
#include <stdint.h>

#include "cp2p/buf.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_AUTONAT_V1_PROTOCOL_ID "/libp2p/autonat/1.0.0"
/** go-libp2p's cap on one message (maxMsgSize); a longer one resets the stream. */
#define CP2P_AUTONAT_MAX_MESSAGE 4096
/** Addresses of one Dial request kept (go-libp2p's maxPeerAddresses); more are ignored. */
#define CP2P_AUTONAT_MAX_ADDRS 16
#define CP2P_AUTONAT_MAX_STATUS_TEXT 256
/** go-libp2p's maxConfidence. */
#define CP2P_AUTONAT_MAX_CONFIDENCE 3

/** Defaults (go-libp2p's) for the zero fields of cp2p_autonat_config_t. */
#define CP2P_AUTONAT_DEFAULT_GLOBAL_MAX 30        /**< dial-backs per reset period, all peers */
#define CP2P_AUTONAT_DEFAULT_PEER_MAX 3           /**< dial-backs per reset period, one peer */
#define CP2P_AUTONAT_DEFAULT_RESET_MS 60000
#define CP2P_AUTONAT_DEFAULT_DIAL_TIMEOUT_MS 15000
#define CP2P_AUTONAT_DEFAULT_STREAM_TIMEOUT_MS 60000
#define CP2P_AUTONAT_DEFAULT_BOOT_DELAY_MS 15000
#define CP2P_AUTONAT_DEFAULT_RETRY_MS 90000       /**< next probe while not confident */
#define CP2P_AUTONAT_DEFAULT_REFRESH_MS (15 * 60 * 1000) /**< next probe once confident */
#define CP2P_AUTONAT_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define CP2P_AUTONAT_DEFAULT_PEER_PERIOD_MS 90000 /**< the client asks one server once per period */
#define CP2P_AUTONAT_MAX_SERVERS 64               /**< candidate servers the client keeps */

typedef enum {
    CP2P_AUTONAT_OK = 0,
    CP2P_AUTONAT_E_DIAL_ERROR = 100,
    CP2P_AUTONAT_E_DIAL_REFUSED = 101,
    CP2P_AUTONAT_E_BAD_REQUEST = 200,
    CP2P_AUTONAT_E_INTERNAL_ERROR = 300,
} cp2p_autonat_status_t;

/** One decoded (or to be encoded) v1 message. type 0 is DIAL (peer, addrs),
 * 1 DIAL_RESPONSE (status, text, addr); after decoding everything is owned
 * by the struct: cp2p_autonat_msg_free(). Addresses that do not parse are
 * skipped, and past CP2P_AUTONAT_MAX_ADDRS ignored (n_addrs_dropped counts
 * both). */
typedef struct cp2p_autonat_msg {
    int type;                 /**< 0 DIAL, 1 DIAL_RESPONSE, -1 absent */
    int has_peer_id;
    cp2p_peer_id_t peer;
    cp2p_multiaddr_t addrs[CP2P_AUTONAT_MAX_ADDRS];
    size_t n_addrs;
    size_t n_addrs_dropped;
    int has_dial;
    int has_response;
    int status;               /**< cp2p_autonat_status_t, or what the remote sent */
    char text[CP2P_AUTONAT_MAX_STATUS_TEXT]; /**< statusText, cut to fit */
    cp2p_multiaddr_t addr;    /**< len 0 when absent */
} cp2p_autonat_msg_t;

/** Append the varint length-prefixed message (CP2P_EOVERFLOW past CP2P_AUTONAT_MAX_MESSAGE). */
CP2P_API int cp2p_autonat_encode(const cp2p_autonat_msg_t *m, cp2p_buf_t *out);
/** Decode one length-prefixed message from p[0..n): *used (may be NULL) is
 * its size with the prefix. CP2P_ETRUNC if more bytes may complete it,
 * CP2P_EOVERFLOW if its length is over CP2P_AUTONAT_MAX_MESSAGE,
 * CP2P_EPARSE otherwise. */
CP2P_API int cp2p_autonat_decode(const uint8_t *p, size_t n, cp2p_autonat_msg_t *out, size_t *used);
/** Free what a decode left in m. */
CP2P_API void cp2p_autonat_msg_free(cp2p_autonat_msg_t *m);
/** "OK", "E_DIAL_ERROR", ... for a v1 status. */
CP2P_API const char *cp2p_autonat_status_name(int status);

/* ---- AutoNAT v2 (libp2p specs autonat/autonat-v2.md) ---- */

#define CP2P_AUTONAT_V2_DIAL_REQUEST_ID "/libp2p/autonat/2/dial-request"
#define CP2P_AUTONAT_V2_DIAL_BACK_ID "/libp2p/autonat/2/dial-back"
/** go-libp2p's caps: a dial-request stream's message, a dial-back's. */
#define CP2P_AUTONAT_V2_MAX_MESSAGE 8192
#define CP2P_AUTONAT_V2_MAX_DIAL_BACK 1024
/** Addresses of one request considered (go-libp2p's maxPeerAddresses). */
#define CP2P_AUTONAT_V2_MAX_ADDRS 50
/** The spec's amplification protection: the bytes a server asks for before
 * it dials an IP other than the one the request came from. A client sends
 * at most the maximum, whatever a server asks. */
#define CP2P_AUTONAT_V2_MIN_DIAL_DATA 30000
#define CP2P_AUTONAT_V2_MAX_DIAL_DATA 100000
#define CP2P_AUTONAT_V2_DIAL_DATA_CHUNK 4096
/** Server rate limits (go-libp2p's defaults), per minute. */
#define CP2P_AUTONAT_V2_DEFAULT_RPM 60
#define CP2P_AUTONAT_V2_DEFAULT_PEER_RPM 12
#define CP2P_AUTONAT_V2_DEFAULT_DIAL_DATA_RPM 12
#define CP2P_AUTONAT_V2_MAX_CONCURRENT_PER_PEER 2

enum {
    CP2P_AUTONAT2_NONE = 0,
    CP2P_AUTONAT2_DIAL_REQUEST = 1,
    CP2P_AUTONAT2_DIAL_RESPONSE = 2,
    CP2P_AUTONAT2_DIAL_DATA_REQUEST = 3,
    CP2P_AUTONAT2_DIAL_DATA_RESPONSE = 4,
};
/** DialResponse.status and DialStatus. */
enum {
    CP2P_AUTONAT2_E_INTERNAL_ERROR = 0,
    CP2P_AUTONAT2_E_REQUEST_REJECTED = 100,
    CP2P_AUTONAT2_E_DIAL_REFUSED = 101,
    CP2P_AUTONAT2_RESPONSE_OK = 200,
    CP2P_AUTONAT2_DIAL_UNUSED = 0,
    CP2P_AUTONAT2_DIAL_ERROR = 100,
    CP2P_AUTONAT2_DIAL_BACK_ERROR = 101,
    CP2P_AUTONAT2_DIAL_OK = 200,
};

/** One v2 Message (the oneof's kind says which fields mean something).
 * After decoding, addrs are owned: cp2p_autonat2_msg_free(). A
 * DialDataResponse's data is not kept, only its length; to encode one, data
 * points to data_len bytes. */
typedef struct cp2p_autonat2_msg {
    int kind;
    cp2p_multiaddr_t addrs[CP2P_AUTONAT_V2_MAX_ADDRS]; /**< DialRequest */
    size_t n_addrs, n_addrs_dropped;
    uint64_t nonce;                 /**< DialRequest */
    uint32_t status, addr_idx, dial_status; /**< DialResponse (addr_idx: DialDataRequest too) */
    uint64_t num_bytes;             /**< DialDataRequest */
    const uint8_t *data;            /**< DialDataResponse, for encoding */
    size_t data_len;
} cp2p_autonat2_msg_t;

/** Append the varint length-prefixed message (CP2P_EOVERFLOW past CP2P_AUTONAT_V2_MAX_MESSAGE). */
CP2P_API int cp2p_autonat2_encode(const cp2p_autonat2_msg_t *m, cp2p_buf_t *out);
/** As cp2p_autonat_decode, with CP2P_AUTONAT_V2_MAX_MESSAGE. */
CP2P_API int cp2p_autonat2_decode(const uint8_t *p, size_t n, cp2p_autonat2_msg_t *out, size_t *used);
/** Free what a decode left in m (its addresses). */
CP2P_API void cp2p_autonat2_msg_free(cp2p_autonat2_msg_t *m);
/** DialBack{nonce} and DialBackResponse{OK}, length-prefixed. */
CP2P_API int cp2p_autonat2_encode_dial_back(uint64_t nonce, cp2p_buf_t *out);
/** The nonce of a DialBack in p[0..n) (CP2P_ETRUNC, CP2P_EOVERFLOW past 1 KiB, CP2P_EPARSE). */
CP2P_API int cp2p_autonat2_decode_dial_back(const uint8_t *p, size_t n, uint64_t *nonce, size_t *used);
/** Append a DialBackResponse{OK}. */
CP2P_API int cp2p_autonat2_encode_dial_back_response(cp2p_buf_t *out);

typedef struct cp2p_autonat_config {
    int service;     /**< answer dial-back requests */
    int client;      /**< probe connected peers for our reachability */
    /** Dial back (service) and ask to be dialled on (client) loopback and
     * private addresses, and count a private server's answers. Off, as in
     * go-libp2p for a host on the internet: a private address proves
     * nothing about the internet. Tests and private networks turn it on. */
    int allow_private;
    /** AutoNAT v2 is on beside v1 (the service serves both; the client asks
     * v2 where the server has it, else v1); disable_v2 turns it off. */
    int disable_v2;
    uint32_t global_max;       /**< dial-backs per reset period, all peers */
    uint32_t peer_max;         /**< dial-backs per reset period, one peer */
    uint32_t reset_ms;
    uint32_t dial_timeout_ms;  /**< one dial-back, all its addresses */
    uint32_t stream_timeout_ms;
    uint32_t boot_delay_ms;    /**< first probe after enable (or after the first identified server) */
    uint32_t retry_ms;
    uint32_t refresh_ms;
    uint32_t request_timeout_ms;
    uint32_t peer_period_ms;
    /** What the service's dialer host is made with (security, muxers, a
     * private network's key: what the host's peers accept); read during
     * cp2p_autonat_enable only. Its identity is always a fresh key. NULL:
     * the defaults. */
    const cp2p_host_config_t *dialer_config;
    /** Observed-address confirmation (client): where peers say they see us
     * (identify), on connections to our listening port, becomes a
     * candidate; once this many distinct peers saw it (0: 4, go-libp2p's
     * ActivationThresh) a server is asked to dial it back (v2 where it has
     * it, else v1 with that address alone), and if it answers the address
     * is advertised (cp2p_host_addrs: identify, the signed peer record, the
     * DHT). */
    uint32_t observed_threshold;
} cp2p_autonat_config_t;

typedef struct cp2p_autonat_stats {
    uint64_t requests;          /**< Dial requests read (service) */
    uint64_t dialbacks;         /**< dial-backs started */
    uint64_t answered_ok, answered_dial_error, answered_refused, answered_bad;
    uint64_t rate_limited;      /**< refused for the rate limits */
    uint64_t addrs_refused;     /**< addresses not dialled: another IP, private, relayed */
    uint64_t probes;            /**< requests we sent (client) */
    uint64_t probe_ok, probe_dial_error, probe_other; /**< their answers */
    uint64_t requests_v2;       /**< v2 dial requests read (service) */
    uint64_t dial_data_asked;   /**< v2 requests made to send the dial data first */
    uint64_t rejected_v2;       /**< v2 requests refused for the rate limits */
    uint64_t probes_v2;         /**< probes made with v2 (client; also in probes) */
    uint64_t dial_backs_v2;     /**< v2 dial-backs received with our nonce (client) */
    uint64_t candidates_confirmed; /**< observed addresses confirmed and advertised */
    uint64_t candidates_failed;    /**< observed addresses a dial-back did not reach */
    int confidence;
} cp2p_autonat_stats_t;

typedef struct cp2p_autonat cp2p_autonat_t;

/** Start AutoNAT on h (cfg NULL: client only, defaults). Call after
 * cp2p_identify_enable (the client learns servers from identify). The
 * service creates its own dialer host on h's loop. out may be NULL if it
 * lives as long as the host; else cp2p_autonat_free() it before closing h. */
CP2P_API int cp2p_autonat_enable(cp2p_host_t *h, const cp2p_autonat_config_t *cfg,
                                 cp2p_autonat_t **out);
/** Stop: handlers removed, requests under way reset, the dialer host closed
 * (asynchronously; nothing to wait for). Before cp2p_host_close. */
CP2P_API void cp2p_autonat_free(cp2p_autonat_t *a);
/** The counters now. */
CP2P_API void cp2p_autonat_stats(const cp2p_autonat_t *a, cp2p_autonat_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
