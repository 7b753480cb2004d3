/* Names for the CP2P_E* error codes of include/cp2p/error.h. */
#include "cp2p/error.h"

const char *cp2p_strerror(int err)
{
    switch (err) {
    case CP2P_OK: return "success";
    case CP2P_EINVAL: return "invalid argument";
    case CP2P_ENOMEM: return "out of memory";
    case CP2P_EPARSE: return "malformed input";
    case CP2P_ETRUNC: return "input truncated";
    case CP2P_EOVERFLOW: return "value too large";
    case CP2P_EUNSUPPORTED: return "unsupported";
    case CP2P_ECRYPTO: return "cryptographic operation failed";
    case CP2P_ESIG: return "invalid signature";
    case CP2P_EIO: return "input/output error";
    case CP2P_ENOTFOUND: return "not found";
    case CP2P_EPROTO: return "protocol violation by remote";
    case CP2P_ECLOSED: return "closed";
    case CP2P_ETIMEOUT: return "timed out";
    case CP2P_ELIMIT: return "resource limit reached";
    case CP2P_EAGAIN: return "try again";
    case CP2P_ERESET: return "reset by remote";
    case CP2P_ENEGOTIATE: return "no protocol in common";
    case CP2P_EPEERID: return "remote peer id mismatch";
    case CP2P_ECONNREFUSED: return "connection refused";
    case CP2P_EUNREACHABLE: return "peer unreachable";
    case CP2P_ESTATE: return "invalid state";
    case CP2P_ECANCELED: return "cancelled";
    case CP2P_EEXIST: return "already exists";
    case CP2P_EREFUSED: return "refused by the remote";
    case CP2P_EQUORUM: return "too few peers for the quorum";
    case CP2P_ENORESERVATION: return "the relay has no reservation for the peer (NO_RESERVATION)";
    default: return "unknown error";
    }
}
