/* IPNS records (ipfs/specs src/ipns/ipns-record.md): verification of the
 * IpnsEntry protobuf with its V2 signature over DAG-CBOR data, and the order
 * in which two valid records of one name are preferred. */
#ifndef CP2P_KAD_IPNS_H
#define CP2P_KAD_IPNS_H

#include <stddef.h>
#include <stdint.h>

/* The spec's "Record Size Limit": larger serialized entries are ignored. */
#define CP2P_IPNS_MAX_RECORD 10240

/* The fields of IpnsEntry.data. value and validity point into the decoded
 * CBOR bytes; eol_s/eol_ns are the parsed Validity when validity_type is 0. */
typedef struct cp2p_ipns_data {
    const uint8_t *value;
    size_t value_len;
    const uint8_t *validity;
    size_t validity_len;
    uint64_t validity_type;
    uint64_t sequence;
    uint64_t ttl;
    int64_t eol_s;
    uint32_t eol_ns;
} cp2p_ipns_data_t;

/* Decode the DAG-CBOR map of IpnsEntry.data. All five spec fields are
 * required; other keys are skipped when their values are byte strings, text
 * strings or unsigned integers (CP2P_EUNSUPPORTED for anything nested).
 * CP2P_EPARSE / CP2P_ETRUNC on malformed or non-canonical CBOR. */
int cp2p_ipns_data_decode(const uint8_t *p, size_t n, cp2p_ipns_data_t *out);

/* RFC 3339 date-time ("2026-01-02T03:04:05.123456789Z" or with +hh:mm) to
 * Unix seconds and nanoseconds. CP2P_EPARSE if malformed. */
int cp2p_ipns_time_parse(const uint8_t *s, size_t n, int64_t *sec, uint32_t *nsec);

/* Verify the serialized IpnsEntry rec for name (the binary peer ID multihash
 * that follows "/ipns/" in a DHT key) at Unix time now (seconds). On success
 * fills out (if not NULL) with the numeric fields; value/validity are NULL
 * there since they would outlive the decoded entry. Errors: CP2P_EOVERFLOW
 * over the size limit, CP2P_EPARSE malformed, CP2P_EPEERID key is not the
 * name's, CP2P_ESIG bad signatureV2, CP2P_EPROTO a V1 field differs from the
 * signed data, CP2P_ETIMEOUT expired, CP2P_EUNSUPPORTED unknown ValidityType. */
int cp2p_ipns_validate(const uint8_t *name, size_t name_len, const uint8_t *rec, size_t rec_len,
                       int64_t now, cp2p_ipns_data_t *out);

/* >0 if a is preferred to b, <0 if b is, 0 if neither: the higher Sequence
 * wins, then the later Validity. */
int cp2p_ipns_compare(const cp2p_ipns_data_t *a, const cp2p_ipns_data_t *b);

#endif
