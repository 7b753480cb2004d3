/* Protobuf wire format (protobuf.dev "Encoding"): tags and lengths as
 * varints, which protobuf accepts in non-minimal form too. */
#include "core/pbscan.h"

#include "cp2p/error.h"

static int read_varint(const uint8_t *p, size_t n, size_t *off, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*off >= n)
            return CP2P_EPARSE;
        uint8_t b = p[(*off)++];
        *v |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
        if (!(b & 0x80))
            return 0;
    }
    return CP2P_EPARSE;
}

int cp2p_pb_next(const uint8_t *p, size_t n, size_t *off, cp2p_pb_field_t *f)
{
    if (*off >= n)
        return 0;
    uint64_t tag, v;
    if (read_varint(p, n, off, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return CP2P_EPARSE;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (unsigned)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->value = 0;
    switch (f->wire) {
    case 0:
        return read_varint(p, n, off, &f->value) ? CP2P_EPARSE : 1;
    case 1:
    case 5: {
        size_t w = f->wire == 1 ? 8 : 4;
        if (n - *off < w)
            return CP2P_EPARSE;
        *off += w;
        return 1;
    }
    case 2:
        if (read_varint(p, n, off, &v) || v > n - *off)
            return CP2P_EPARSE;
        f->data = p + *off;
        f->len = (size_t)v;
        *off += (size_t)v;
        return 1;
    default:
        return CP2P_EPARSE;
    }
}

long cp2p_pb_count(const uint8_t *p, size_t n, uint32_t num)
{
    size_t off = 0;
    long count = 0;
    cp2p_pb_field_t f;
    int rc;
    while ((rc = cp2p_pb_next(p, n, &off, &f)) == 1)
        count += f.num == num;
    return rc < 0 ? rc : count;
}
