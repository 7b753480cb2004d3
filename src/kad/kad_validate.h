/* Record validation and selection by key namespace (libp2p kad-dht spec,
 * "Entry validation"): "/pk/<peer id bytes>" holds that peer's public key;
 * keys without a namespace (not "/<ns>/...") hold anything. "/ipns/" records
 * are not verified yet and are refused with CP2P_EUNSUPPORTED, as is every
 * other namespace. */
#ifndef CP2P_KAD_VALIDATE_H
#define CP2P_KAD_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

/* 0 if value may be stored under key. CP2P_EPARSE for a malformed /pk/ key or
 * value, CP2P_EPEERID if the public key is not the key's peer's,
 * CP2P_EUNSUPPORTED for a namespace we cannot check. */
int cp2p_kad_validate(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);
/* The index of the best of values[0..n) for key, skipping invalid ones;
 * CP2P_ENOTFOUND if none is valid. Public keys and unnamespaced values have
 * no order, so the first valid one wins. */
int cp2p_kad_select(const uint8_t *key, size_t key_len, const uint8_t *const *values,
                    const size_t *lens, size_t n);

#endif
