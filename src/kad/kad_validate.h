/* Record validation and selection by key namespace (libp2p kad-dht spec,
 * "Entry validation"): "/pk/<peer id bytes>" holds that peer's public key;
 * "/ipns/<peer id bytes>" holds an IPNS record signed by that peer (ipfs/specs
 * ipns-record.md); keys without a namespace (not "/<ns>/...") hold anything.
 * Every other namespace is refused with CP2P_EUNSUPPORTED. */
#ifndef CP2P_KAD_VALIDATE_H
#define CP2P_KAD_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

/* 0 if value may be stored under key at Unix time now (seconds; only IPNS
 * records expire). CP2P_EPARSE for a malformed key or value, CP2P_EPEERID if
 * the public key is not the key's peer's, CP2P_EUNSUPPORTED for a namespace
 * we cannot check; IPNS errors are those of cp2p_ipns_validate(). */
int cp2p_kad_validate_at(const uint8_t *key, size_t key_len, const uint8_t *value,
                         size_t value_len, int64_t now);
/* cp2p_kad_validate_at() at the current time. */
int cp2p_kad_validate(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);
/* The index of the best of values[0..n) for key at time now, skipping invalid
 * ones; CP2P_ENOTFOUND if none is valid. IPNS records are ordered by
 * Sequence, then Validity; other values have no order, so the first valid one
 * wins (as it does between equal IPNS records). */
int cp2p_kad_select_at(const uint8_t *key, size_t key_len, const uint8_t *const *values,
                       const size_t *lens, size_t n, int64_t now);
/* cp2p_kad_select_at() at the current time. */
int cp2p_kad_select(const uint8_t *key, size_t key_len, const uint8_t *const *values,
                    const size_t *lens, size_t n);

#endif
