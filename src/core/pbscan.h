/* Walking a protobuf message's fields on the wire without decoding it: to
 * count repeated fields before protobuf-c unpacks (and allocates for) them,
 * so a peer cannot make a small message cost a large allocation. */
#ifndef CP2P_CORE_PBSCAN_H
#define CP2P_CORE_PBSCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp2p_pb_field {
    uint32_t num;        /* field number */
    unsigned wire;       /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    const uint8_t *data; /* wire 2: the bytes */
    size_t len;
    uint64_t value;      /* wire 0: the varint */
} cp2p_pb_field_t;

/* The field at *off in p[0..n), *off moved past it: 1, or 0 at the end, or
 * CP2P_EPARSE (a truncated field, a bad tag or wire type; groups are refused). */
int cp2p_pb_next(const uint8_t *p, size_t n, size_t *off, cp2p_pb_field_t *f);

/* Occurrences of field num in p (top level only), or CP2P_EPARSE. */
long cp2p_pb_count(const uint8_t *p, size_t n, uint32_t num);

#endif
