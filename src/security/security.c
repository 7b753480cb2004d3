/* What every security session shares: the outcome of its handshake and its
 * sticky error, read the same way for noise, tls and plaintext. */
#include "security/security.h"

#include "cp2p/error.h"
#include "cp2p/log.h"

static const cp2p_sec_base_t *base(const cp2p_sec_t *s)
{
    return (const cp2p_sec_base_t *)s;
}

int cp2p_sec_established(const cp2p_sec_t *s)
{
    return s && base(s)->established && !base(s)->err;
}

const cp2p_pubkey_t *cp2p_sec_remote_key(const cp2p_sec_t *s)
{
    return s && base(s)->established ? base(s)->remote_key : NULL;
}

const cp2p_peer_id_t *cp2p_sec_remote_peer(const cp2p_sec_t *s)
{
    return s && base(s)->established ? &base(s)->remote_peer : NULL;
}

int cp2p_sec_begin(const cp2p_sec_t *s, int args_ok, int need_established)
{
    if (!s || !args_ok)
        return CP2P_EINVAL;
    if (base(s)->err)
        return base(s)->err;
    return need_established && !base(s)->established ? CP2P_ESTATE : 0;
}

int cp2p_sec_settle(cp2p_sec_t *s, const char *name, int rc)
{
    cp2p_sec_base_t *b = (cp2p_sec_base_t *)s;
    if (rc < 0 && !b->err) {
        b->err = rc;
        cp2p_log_debug(name, "%s failed: %s", b->established ? "transport" : "handshake",
                       cp2p_strerror(rc));
    }
    return rc;
}
