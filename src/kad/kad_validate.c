/* Record validators and selectors per key namespace (libp2p kad-dht spec,
 * "Entry validation"; IPNS records per ipfs/specs ipns-record.md). */
#include <string.h>
#include <time.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"
#include "kad/ipns.h"
#include "kad/kad_validate.h"

/* "/ns/rest": sets the namespace and the rest; 0 when key has no namespace. */
static int split(const uint8_t *key, size_t key_len, const uint8_t **ns, size_t *ns_len,
                 const uint8_t **rest, size_t *rest_len)
{
    if (key_len < 3 || key[0] != '/')
        return 0;
    const uint8_t *slash = memchr(key + 1, '/', key_len - 1);
    if (!slash || slash == key + 1)
        return 0;
    *ns = key + 1;
    *ns_len = (size_t)(slash - key - 1);
    *rest = slash + 1;
    *rest_len = key_len - (size_t)(slash + 1 - key);
    return 1;
}

static int validate_pk(const uint8_t *id_bytes, size_t id_len, const uint8_t *value,
                       size_t value_len)
{
    cp2p_peer_id_t id;
    cp2p_pubkey_t *k = NULL;
    if (cp2p_peer_id_from_bytes(id_bytes, id_len, &id) ||
        cp2p_pubkey_unmarshal(value, value_len, &k))
        return CP2P_EPARSE;
    int ok = cp2p_peer_id_matches_pubkey(&id, k);
    cp2p_pubkey_free(k);
    return ok ? 0 : CP2P_EPEERID;
}

static int is_ns(const uint8_t *ns, size_t ns_len, const char *name)
{
    return ns_len == strlen(name) && !memcmp(ns, name, ns_len);
}

int cp2p_kad_validate_at(const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len, int64_t now)
{
    if ((!key && key_len) || (!value && value_len))
        return CP2P_EINVAL;
    const uint8_t *ns, *rest;
    size_t ns_len, rest_len;
    if (!split(key, key_len, &ns, &ns_len, &rest, &rest_len))
        return 0;
    if (is_ns(ns, ns_len, "pk"))
        return validate_pk(rest, rest_len, value, value_len);
    if (is_ns(ns, ns_len, "ipns"))
        return cp2p_ipns_validate(rest, rest_len, value, value_len, now, NULL);
    return CP2P_EUNSUPPORTED;
}

int cp2p_kad_validate(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len)
{
    return cp2p_kad_validate_at(key, key_len, value, value_len, (int64_t)time(NULL));
}

int cp2p_kad_select_at(const uint8_t *key, size_t key_len, const uint8_t *const *values,
                       const size_t *lens, size_t n, int64_t now)
{
    if ((!key && key_len) || (n && (!values || !lens)))
        return CP2P_EINVAL;
    const uint8_t *ns, *rest;
    size_t ns_len, rest_len;
    if (split(key, key_len, &ns, &ns_len, &rest, &rest_len) && is_ns(ns, ns_len, "ipns")) {
        int best = CP2P_ENOTFOUND;
        cp2p_ipns_data_t best_d = {0}, d;
        for (size_t i = 0; i < n && i <= INT32_MAX; i++)
            if (cp2p_ipns_validate(rest, rest_len, values[i], lens[i], now, &d) == 0 &&
                (best < 0 || cp2p_ipns_compare(&d, &best_d) > 0)) {
                best = (int)i;
                best_d = d;
            }
        return best;
    }
    for (size_t i = 0; i < n && i <= INT32_MAX; i++)
        if (cp2p_kad_validate_at(key, key_len, values[i], lens[i], now) == 0)
            return (int)i;
    return CP2P_ENOTFOUND;
}

int cp2p_kad_select(const uint8_t *key, size_t key_len, const uint8_t *const *values,
                    const size_t *lens, size_t n)
{
    return cp2p_kad_select_at(key, key_len, values, lens, n, (int64_t)time(NULL));
}
