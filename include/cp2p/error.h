/** @file
 * Error codes: every fallible function returns 0 or a negative CP2P_E* code. */
#ifndef CP2P_ERROR_H
#define CP2P_ERROR_H

#include "cp2p/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CP2P_OK = 0,
    CP2P_EINVAL = -1,       /**< bad argument from the caller */
    CP2P_ENOMEM = -2,       /**< allocation failed */
    CP2P_EPARSE = -3,       /**< malformed input (remote or user supplied) */
    CP2P_ETRUNC = -4,       /**< input ends too early; more bytes may complete it */
    CP2P_EOVERFLOW = -5,    /**< a value or length is larger than allowed */
    CP2P_EUNSUPPORTED = -6, /**< well formed, but not something we implement */
    CP2P_ECRYPTO = -7,      /**< a cryptographic operation failed */
    CP2P_ESIG = -8,         /**< a signature did not verify */
    CP2P_EIO = -9,          /**< reading or writing a file or socket failed */
    CP2P_ENOTFOUND = -10,   /**< no such entry */
    CP2P_EPROTO = -11,      /**< the remote broke the protocol */
    CP2P_ECLOSED = -12,     /**< the connection or stream is closed */
    CP2P_ETIMEOUT = -13,    /**< a deadline passed */
    CP2P_ELIMIT = -14,      /**< a resource limit was reached */
    CP2P_EAGAIN = -15,      /**< not now: try again when there is room or data */
    CP2P_ERESET = -16,      /**< the stream or connection was reset */
    CP2P_ENEGOTIATE = -17,  /**< no protocol in common with the remote */
    CP2P_EPEERID = -18,     /**< the remote is not the peer we dialled */
    CP2P_ECONNREFUSED = -19,/* the remote refused the connection */
    CP2P_EUNREACHABLE = -20,/* no route, no address, or name did not resolve */
    CP2P_ESTATE = -21,      /**< the call is not valid in this state */
    CP2P_ECANCELED = -22,   /**< the operation was cancelled */
    CP2P_EEXIST = -23,      /**< already there */
    CP2P_EREFUSED = -24,    /**< the remote answered, and declined the request */
    CP2P_EQUORUM = -25,     /**< some peers took it, fewer than the quorum needs */
    CP2P_ENORESERVATION = -26, /**< a circuit relay holds no reservation for the target (NO_RESERVATION) */
    CP2P_ERR_LAST = -27
};

/** A short, static, English description of an error code. Never NULL. */
CP2P_API const char *cp2p_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
