/* DNS message codec: RFC 1035 sections 3.1, 4.1 (with 4.1.4 compression on
 * decode), RFC 2782 (SRV), RFC 3596 (AAAA) and the mDNS class bits of RFC 6762. */
#include "discovery/dns.h"

#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"

/* Strictly backward pointers already rule out loops; this also bounds the
 * work one name can cost. */
#define MAX_POINTER_HOPS 64

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int cp2p_dns_name_from_text(const char *s, cp2p_dns_name_t *out)
{
    if (!s || !out)
        return CP2P_EINVAL;
    size_t len = 0;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        if (l == 0 || l > CP2P_DNS_LABEL_MAX)
            return CP2P_EINVAL;
        if (len + 1 + l + 1 > CP2P_DNS_NAME_MAX)
            return CP2P_EINVAL;
        out->wire[len++] = (uint8_t)l;
        memcpy(out->wire + len, s, l);
        len += l;
        s += l;
        if (*s == '.')
            s++;
    }
    out->wire[len++] = 0;
    out->len = (uint8_t)len;
    return 0;
}

static int plain(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int cp2p_dns_name_to_text(const cp2p_dns_name_t *n, char *out, size_t cap)
{
    if (!n || !out || cap == 0)
        return CP2P_EINVAL;
    size_t o = 0, i = 0;
    while (i < n->len && n->wire[i]) {
        size_t l = n->wire[i++];
        if (o) {
            if (o + 1 >= cap)
                return CP2P_EOVERFLOW;
            out[o++] = '.';
        }
        for (size_t k = 0; k < l && i < n->len; k++, i++) {
            uint8_t c = n->wire[i];
            if (plain(c)) {
                if (o + 1 >= cap)
                    return CP2P_EOVERFLOW;
                out[o++] = (char)c;
            } else {
                if (o + 4 >= cap)
                    return CP2P_EOVERFLOW;
                out[o++] = '\\';
                out[o++] = (char)('0' + c / 100);
                out[o++] = (char)('0' + c / 10 % 10);
                out[o++] = (char)('0' + c % 10);
            }
        }
    }
    out[o] = 0;
    return 0;
}

int cp2p_dns_name_equal(const cp2p_dns_name_t *a, const cp2p_dns_name_t *b)
{
    if (a->len != b->len)
        return 0;
    /* Length bytes are at most 63, below 'A', so folding them is harmless. */
    for (size_t i = 0; i < a->len; i++)
        if (lower(a->wire[i]) != lower(b->wire[i]))
            return 0;
    return 1;
}

int cp2p_dns_name_child_label(const cp2p_dns_name_t *n, const cp2p_dns_name_t *parent,
                              const uint8_t **label, size_t *len)
{
    if (n->len < 2 || n->wire[0] == 0)
        return 0;
    size_t l = n->wire[0];
    if ((size_t)n->len != 1 + l + parent->len)
        return 0;
    for (size_t i = 0; i < parent->len; i++)
        if (lower(n->wire[1 + l + i]) != lower(parent->wire[i]))
            return 0;
    *label = n->wire + 1;
    *len = l;
    return 1;
}

int cp2p_dns_name_prepend(const char *label, size_t len, const cp2p_dns_name_t *parent,
                          cp2p_dns_name_t *out)
{
    if (len == 0 || len > CP2P_DNS_LABEL_MAX || 1 + len + parent->len > CP2P_DNS_NAME_MAX)
        return CP2P_EINVAL;
    cp2p_dns_name_t t;
    t.wire[0] = (uint8_t)len;
    memcpy(t.wire + 1, label, len);
    memcpy(t.wire + 1 + len, parent->wire, parent->len);
    t.len = (uint8_t)(1 + len + parent->len);
    *out = t;
    return 0;
}

/* ---- decoding ---- */

/* The name at *off, followed through compression pointers. Every pointer
 * must point before the label sequence it interrupts, so a chain of pointers
 * strictly descends and cannot loop. *off ends after the name's own bytes. */
static int read_name(const uint8_t *p, size_t n, size_t *off, cp2p_dns_name_t *out)
{
    size_t pos = *off, seq_start = *off, end = 0, len = 0;
    unsigned hops = 0;
    for (;;) {
        if (pos >= n)
            return CP2P_ETRUNC;
        uint8_t c = p[pos];
        if (c == 0) {
            if (!hops)
                end = pos + 1;
            break;
        }
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= n)
                return CP2P_ETRUNC;
            size_t target = (size_t)(c & 0x3f) << 8 | p[pos + 1];
            if (!hops)
                end = pos + 2;
            if (target >= seq_start || ++hops > MAX_POINTER_HOPS)
                return CP2P_EPARSE;
            pos = seq_start = target;
            continue;
        }
        if (c & 0xc0) /* the obsolete extended label types (RFC 6891) */
            return CP2P_EPARSE;
        if (pos + 1 + c > n)
            return CP2P_ETRUNC;
        if (len + 1 + c + 1 > CP2P_DNS_NAME_MAX)
            return CP2P_EOVERFLOW;
        memcpy(out->wire + len, p + pos, 1 + (size_t)c);
        len += 1 + (size_t)c;
        pos += 1 + (size_t)c;
    }
    out->wire[len++] = 0;
    out->len = (uint8_t)len;
    *off = end;
    return 0;
}

/* A name that must fill rdata exactly (PTR target, SRV target). */
static int read_rdata_name(const uint8_t *p, size_t n, size_t off, size_t rd_end,
                           cp2p_dns_name_t *out)
{
    /* Pointers may reach the whole message; the name's own bytes must end
     * exactly where the rdata does. */
    int rc = read_name(p, n, &off, out);
    if (rc)
        return rc;
    return off == rd_end ? 0 : CP2P_EPARSE;
}

static int check_txt(const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        i += 1 + (size_t)d[i];
        if (i > n)
            return CP2P_EPARSE;
    }
    return 0;
}

static int read_rr(const uint8_t *p, size_t n, size_t *off, cp2p_dns_rr_t *rr)
{
    int rc = read_name(p, n, off, &rr->name);
    if (rc)
        return rc;
    if (n - *off < 10)
        return CP2P_ETRUNC;
    const uint8_t *h = p + *off;
    rr->type = get16(h);
    rr->cls = get16(h + 2) & 0x7fff;
    rr->cache_flush = (h[2] & 0x80) != 0;
    rr->ttl = get32(h + 4);
    if (rr->ttl > 0x7fffffff) /* RFC 2181 8: read as zero */
        rr->ttl = 0;
    rr->rdlen = get16(h + 8);
    *off += 10;
    if (n - *off < rr->rdlen)
        return CP2P_ETRUNC;
    rr->rdata = p + *off;
    size_t rd = *off, rd_end = *off + rr->rdlen;
    *off = rd_end;
    rr->target.len = 0;
    switch (rr->type) {
    case CP2P_DNS_TYPE_A:
        return rr->rdlen == 4 ? 0 : CP2P_EPARSE;
    case CP2P_DNS_TYPE_AAAA:
        return rr->rdlen == 16 ? 0 : CP2P_EPARSE;
    case CP2P_DNS_TYPE_PTR:
        if (rr->rdlen < 1)
            return CP2P_EPARSE;
        return read_rdata_name(p, n, rd, rd_end, &rr->target);
    case CP2P_DNS_TYPE_SRV:
        if (rr->rdlen < 7)
            return CP2P_EPARSE;
        rr->priority = get16(p + rd);
        rr->weight = get16(p + rd + 2);
        rr->port = get16(p + rd + 4);
        return read_rdata_name(p, n, rd + 6, rd_end, &rr->target);
    case CP2P_DNS_TYPE_TXT:
        return check_txt(rr->rdata, rr->rdlen);
    default:
        return 0;
    }
}

void cp2p_dns_msg_free(cp2p_dns_msg_t *m)
{
    if (!m)
        return;
    free(m->q);
    free(m->rr);
    memset(m, 0, sizeof *m);
}

int cp2p_dns_decode(const uint8_t *p, size_t n, cp2p_dns_msg_t *out)
{
    if (!p || !out)
        return CP2P_EINVAL;
    memset(out, 0, sizeof *out);
    if (n < CP2P_DNS_HEADER_LEN)
        return CP2P_ETRUNC;
    size_t nq = get16(p + 4), nan = get16(p + 6), nns = get16(p + 8), nar = get16(p + 10);
    size_t nrr = nan + nns + nar;
    if (nq + nrr > CP2P_DNS_MAX_ENTRIES)
        return CP2P_EOVERFLOW;
    /* The smallest question is 5 bytes and the smallest record 11: refuse
     * counts the packet cannot hold before allocating for them. */
    if (nq * 5 + nrr * 11 > n - CP2P_DNS_HEADER_LEN)
        return CP2P_ETRUNC;
    cp2p_dns_msg_t m = {.id = get16(p), .flags = get16(p + 2), .nq = nq, .nan = nan, .nns = nns,
                        .nar = nar};
    if ((nq && !(m.q = calloc(nq, sizeof *m.q))) || (nrr && !(m.rr = calloc(nrr, sizeof *m.rr)))) {
        cp2p_dns_msg_free(&m);
        return CP2P_ENOMEM;
    }
    size_t off = CP2P_DNS_HEADER_LEN;
    int rc = 0;
    for (size_t i = 0; i < nq && !rc; i++) {
        cp2p_dns_question_t *q = &m.q[i];
        rc = read_name(p, n, &off, &q->name);
        if (!rc && n - off < 4)
            rc = CP2P_ETRUNC;
        if (!rc) {
            q->type = get16(p + off);
            q->cls = get16(p + off + 2) & 0x7fff;
            q->unicast_response = (p[off + 2] & 0x80) != 0;
            off += 4;
        }
    }
    for (size_t i = 0; i < nrr && !rc; i++)
        rc = read_rr(p, n, &off, &m.rr[i]);
    if (rc) {
        cp2p_dns_msg_free(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int cp2p_dns_txt_next(const cp2p_dns_rr_t *rr, size_t *off, const uint8_t **s, size_t *len)
{
    if (*off >= rr->rdlen)
        return 0;
    size_t l = rr->rdata[*off];
    if (*off + 1 + l > rr->rdlen)
        return 0;
    *s = rr->rdata + *off + 1;
    *len = l;
    *off += 1 + l;
    return 1;
}

/* ---- encoding ---- */

static int put16(cp2p_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return cp2p_buf_append(b, x, 2);
}

static int put32(cp2p_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return cp2p_buf_append(b, x, 4);
}

int cp2p_dns_put_header(cp2p_buf_t *out, uint16_t id, uint16_t flags, uint16_t nq, uint16_t nan,
                        uint16_t nns, uint16_t nar)
{
    int rc = put16(out, id);
    if (!rc)
        rc = put16(out, flags);
    if (!rc)
        rc = put16(out, nq);
    if (!rc)
        rc = put16(out, nan);
    if (!rc)
        rc = put16(out, nns);
    if (!rc)
        rc = put16(out, nar);
    return rc;
}

int cp2p_dns_put_question(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint16_t type,
                          uint16_t cls)
{
    int rc = cp2p_buf_append(out, name->wire, name->len);
    if (!rc)
        rc = put16(out, type);
    if (!rc)
        rc = put16(out, cls);
    return rc;
}

static int put_rr_head(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint16_t type, uint32_t ttl,
                       size_t rdlen)
{
    if (rdlen > 0xffff)
        return CP2P_EOVERFLOW;
    int rc = cp2p_buf_append(out, name->wire, name->len);
    if (!rc)
        rc = put16(out, type);
    if (!rc)
        rc = put16(out, CP2P_DNS_CLASS_IN);
    if (!rc)
        rc = put32(out, ttl);
    if (!rc)
        rc = put16(out, (uint16_t)rdlen);
    return rc;
}

int cp2p_dns_put_ptr(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                     const cp2p_dns_name_t *target)
{
    int rc = put_rr_head(out, name, CP2P_DNS_TYPE_PTR, ttl, target->len);
    return rc ? rc : cp2p_buf_append(out, target->wire, target->len);
}

int cp2p_dns_put_txt(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                     const char *const *strs, size_t n)
{
    size_t rdlen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strlen(strs[i]) > 255)
            return CP2P_EOVERFLOW;
        rdlen += 1 + strlen(strs[i]);
    }
    int rc = put_rr_head(out, name, CP2P_DNS_TYPE_TXT, ttl, rdlen);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t l = strlen(strs[i]);
        rc = cp2p_buf_append_byte(out, (uint8_t)l);
        if (!rc)
            rc = cp2p_buf_append(out, strs[i], l);
    }
    return rc;
}

int cp2p_dns_put_srv(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl, uint16_t port,
                     const cp2p_dns_name_t *target)
{
    int rc = put_rr_head(out, name, CP2P_DNS_TYPE_SRV, ttl, 6 + (size_t)target->len);
    if (!rc)
        rc = put16(out, 0); /* priority */
    if (!rc)
        rc = put16(out, 0); /* weight */
    if (!rc)
        rc = put16(out, port);
    if (!rc)
        rc = cp2p_buf_append(out, target->wire, target->len);
    return rc;
}

int cp2p_dns_put_a(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                   const uint8_t ip[4])
{
    int rc = put_rr_head(out, name, CP2P_DNS_TYPE_A, ttl, 4);
    return rc ? rc : cp2p_buf_append(out, ip, 4);
}

int cp2p_dns_put_aaaa(cp2p_buf_t *out, const cp2p_dns_name_t *name, uint32_t ttl,
                      const uint8_t ip[16])
{
    int rc = put_rr_head(out, name, CP2P_DNS_TYPE_AAAA, ttl, 16);
    return rc ? rc : cp2p_buf_append(out, ip, 16);
}
