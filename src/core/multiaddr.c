/* Multiaddr (multiformats/multiaddr spec and protocols.csv): binary and string
 * forms, strictly validated in both directions. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/cid.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/multibase.h"
#include "cp2p/multihash.h"
#include "cp2p/varint.h"

/* How a protocol's value is written as text and checked as bytes. */
typedef enum { K_NONE, K_IP4, K_IP6, K_PORT, K_CIDR, K_NAME, K_UNIX, K_P2P, K_CERTHASH } kind_t;

typedef struct {
    uint64_t code;
    const char *name;
    int size; /* value bytes; -1 for a varint length prefix */
    kind_t kind;
} proto_t;

static const proto_t PROTOS[] = {
    {CP2P_MA_IP4, "ip4", 4, K_IP4},
    {CP2P_MA_TCP, "tcp", 2, K_PORT},
    {CP2P_MA_UDP, "udp", 2, K_PORT},
    {CP2P_MA_IP6, "ip6", 16, K_IP6},
    {CP2P_MA_IP6ZONE, "ip6zone", -1, K_NAME},
    {CP2P_MA_IPCIDR, "ipcidr", 1, K_CIDR},
    {CP2P_MA_DNS, "dns", -1, K_NAME},
    {CP2P_MA_DNS4, "dns4", -1, K_NAME},
    {CP2P_MA_DNS6, "dns6", -1, K_NAME},
    {CP2P_MA_DNSADDR, "dnsaddr", -1, K_NAME},
    {CP2P_MA_UNIX, "unix", -1, K_UNIX},
    {CP2P_MA_P2P, "p2p", -1, K_P2P},
    {CP2P_MA_TLS, "tls", 0, K_NONE},
    {CP2P_MA_SNI, "sni", -1, K_NAME},
    {CP2P_MA_NOISE, "noise", 0, K_NONE},
    {CP2P_MA_QUIC, "quic", 0, K_NONE},
    {CP2P_MA_QUIC_V1, "quic-v1", 0, K_NONE},
    {CP2P_MA_WEBTRANSPORT, "webtransport", 0, K_NONE},
    {CP2P_MA_CERTHASH, "certhash", -1, K_CERTHASH},
    {CP2P_MA_HTTP, "http", 0, K_NONE},
    {CP2P_MA_WS, "ws", 0, K_NONE},
    {CP2P_MA_WSS, "wss", 0, K_NONE},
    {CP2P_MA_WEBRTC_DIRECT, "webrtc-direct", 0, K_NONE},
    {CP2P_MA_WEBRTC, "webrtc", 0, K_NONE},
    {CP2P_MA_P2P_CIRCUIT, "p2p-circuit", 0, K_NONE},
};
#define NPROTOS (sizeof(PROTOS) / sizeof(PROTOS[0]))

static const proto_t *by_code(uint64_t code)
{
    for (size_t i = 0; i < NPROTOS; i++)
        if (PROTOS[i].code == code)
            return &PROTOS[i];
    return NULL;
}

static const proto_t *by_name(const char *s, size_t n)
{
    if (n == 4 && memcmp(s, "ipfs", 4) == 0)
        return by_code(CP2P_MA_P2P);
    for (size_t i = 0; i < NPROTOS; i++)
        if (strlen(PROTOS[i].name) == n && memcmp(PROTOS[i].name, s, n) == 0)
            return &PROTOS[i];
    return NULL;
}

int cp2p_multiaddr_protocol_code(const char *name, uint64_t *code)
{
    const proto_t *p = by_name(name, strlen(name));
    if (!p)
        return CP2P_ENOTFOUND;
    *code = p->code;
    return 0;
}

const char *cp2p_multiaddr_protocol_name(uint64_t code)
{
    const proto_t *p = by_code(code);
    return p ? p->name : NULL;
}

/* A peer ID is an identity or sha2-256 multihash (peer-ids spec). */
static int check_peer_mh(const uint8_t *v, size_t n)
{
    cp2p_multihash_view_t mh;
    int rc = cp2p_multihash_parse_exact(v, n, &mh);
    if (rc < 0)
        return CP2P_EPARSE;
    return mh.code == CP2P_MH_IDENTITY || mh.code == CP2P_MH_SHA2_256 ? 0 : CP2P_EPARSE;
}

/* Checks on a binary value that its length alone does not give. Text values
 * must not hold '/' or NUL, or the string form would not read back the same. */
static int check_value(const proto_t *p, const uint8_t *v, size_t n)
{
    cp2p_multihash_view_t mh;
    switch (p->kind) {
    case K_NAME:
        return memchr(v, '/', n) || memchr(v, 0, n) ? CP2P_EPARSE : 0;
    case K_UNIX:
        if (n < 2 || v[0] != '/' || v[n - 1] == '/' || memchr(v, 0, n))
            return CP2P_EPARSE;
        return 0;
    case K_P2P:
        return check_peer_mh(v, n);
    case K_CERTHASH:
        return cp2p_multihash_parse_exact(v, n, &mh) < 0 ? CP2P_EPARSE : 0;
    default:
        return 0;
    }
}

/* Read one component at p[0..n); returns its length or an error. */
static int read_component(const uint8_t *p, size_t n, cp2p_multiaddr_component_t *c)
{
    uint64_t code, len;
    int a = cp2p_uvarint_decode(p, n, &code);
    if (a < 0)
        return a;
    const proto_t *pr = by_code(code);
    if (!pr)
        return CP2P_EUNSUPPORTED;
    size_t off = (size_t)a;
    if (pr->size >= 0) {
        len = (uint64_t)pr->size;
    } else {
        int b = cp2p_uvarint_decode(p + off, n - off, &len);
        if (b < 0)
            return b;
        off += (size_t)b;
        if (len == 0)
            return CP2P_EPARSE;
    }
    if (len > n - off)
        return CP2P_ETRUNC;
    int rc = check_value(pr, p + off, (size_t)len);
    if (rc)
        return rc;
    c->code = code;
    c->name = pr->name;
    c->value = p + off;
    c->value_len = (size_t)len;
    c->raw = p;
    c->raw_len = off + (size_t)len;
    return (int)c->raw_len;
}

/* Where a unix path that starts at q ends: at end, unless it ends in
 * /p2p/<id> (one more component, no slash in it), which is then the peer's:
 * "/unix/tmp/a.sock/p2p/12D3..." is how a listener's address is printed, and
 * a socket path with such a tail is not one anybody names. */
static const char *unix_path_end(const char *q, const char *end)
{
    const char *last = end;
    while (last > q && last[-1] != '/')
        last--;
    if (last == end || last - q < 6 || memcmp(last - 5, "/p2p/", 5))
        return end;
    return last - 5;
}

static int validate(const uint8_t *p, size_t n)
{
    if (n == 0)
        return CP2P_EPARSE;
    if (n > CP2P_MULTIADDR_MAX)
        return CP2P_EOVERFLOW;
    for (size_t off = 0; off < n;) {
        cp2p_multiaddr_component_t c;
        int rc = read_component(p + off, n - off, &c);
        if (rc < 0)
            return rc;
        off += (size_t)rc;
        /* A path swallows the rest of the string form, but for a trailing
         * /p2p/<id> (see unix_path_end): only that may follow it, and the
         * path itself may not end like one, so the string form round-trips. */
        if (c.code == CP2P_MA_UNIX) {
            const char *v = (const char *)c.value;
            if (unix_path_end(v + 1, v + c.value_len) != v + c.value_len)
                return CP2P_EPARSE;
            if (off != n) {
                rc = read_component(p + off, n - off, &c);
                if (rc < 0 || c.code != CP2P_MA_P2P || off + (size_t)rc != n)
                    return rc < 0 ? rc : CP2P_EPARSE;
                return 0;
            }
        }
    }
    return 0;
}

static int set_bytes(const uint8_t *p, size_t n, cp2p_multiaddr_t *out)
{
    uint8_t *copy = NULL;
    if (n) {
        copy = malloc(n);
        if (!copy)
            return CP2P_ENOMEM;
        memcpy(copy, p, n);
    }
    out->bytes = copy;
    out->len = n;
    return 0;
}

int cp2p_multiaddr_from_bytes(const uint8_t *p, size_t n, cp2p_multiaddr_t *out)
{
    int rc = validate(p, n);
    return rc ? rc : set_bytes(p, n, out);
}

/* Decimal 0..max, no sign, no leading zeros. */
static int parse_uint(const char *s, size_t n, unsigned max, unsigned *out)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return CP2P_EPARSE;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CP2P_EPARSE;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return CP2P_EPARSE;
    *out = v;
    return 0;
}

static int parse_p2p(const char *s, size_t n, cp2p_buf_t *v)
{
    /* "Qm..." and "1..." are bare base58btc multihashes; anything else is a CID. */
    if (s[0] == 'Q' || s[0] == '1')
        return cp2p_base_decode(CP2P_BASE58BTC, s, n, v);
    cp2p_buf_t bin = {0};
    cp2p_cid_view_t cid;
    int rc = cp2p_cid_parse(s, n, &bin, &cid);
    if (!rc && (cid.version != 1 || cid.codec != CP2P_CODEC_LIBP2P_KEY))
        rc = CP2P_EPARSE;
    if (!rc)
        rc = cp2p_buf_append(v, cid.mh_bytes, cid.mh_len);
    cp2p_buf_free(&bin);
    return rc;
}

/* Text value s[0..n) of protocol p into its binary value in v. */
static int value_from_string(const proto_t *p, const char *s, size_t n, cp2p_buf_t *v)
{
    char tmp[64];
    unsigned u;
    int rc;
    if (n == 0 || memchr(s, 0, n))
        return CP2P_EPARSE;
    switch (p->kind) {
    case K_IP4:
    case K_IP6:
        if (n >= sizeof tmp)
            return CP2P_EPARSE;
        memcpy(tmp, s, n);
        tmp[n] = 0;
        rc = cp2p_buf_reserve(v, 16);
        if (rc)
            return rc;
        if (inet_pton(p->kind == K_IP4 ? AF_INET : AF_INET6, tmp, v->data + v->len) != 1)
            return CP2P_EPARSE;
        v->len += (size_t)p->size;
        return 0;
    case K_PORT:
        rc = parse_uint(s, n, 65535, &u);
        if (rc)
            return rc;
        uint8_t be[2] = {(uint8_t)(u >> 8), (uint8_t)u};
        return cp2p_buf_append(v, be, 2);
    case K_CIDR:
        rc = parse_uint(s, n, 255, &u);
        return rc ? rc : cp2p_buf_append_byte(v, (uint8_t)u);
    case K_NAME:
    case K_UNIX:
        return cp2p_buf_append(v, s, n);
    case K_P2P:
        return parse_p2p(s, n, v);
    case K_CERTHASH:
        return cp2p_multibase_decode(s, n, NULL, v);
    case K_NONE:
        break;
    }
    return CP2P_EPARSE;
}

int cp2p_multiaddr_parse(const char *s, cp2p_multiaddr_t *out)
{
    size_t n = strnlen(s, CP2P_MULTIADDR_STRMAX + 1);
    if (n > CP2P_MULTIADDR_STRMAX)
        return CP2P_EOVERFLOW;
    while (n > 0 && s[n - 1] == '/')
        n--;
    if (n == 0 || s[0] != '/')
        return CP2P_EPARSE;
    cp2p_buf_t b = {0}, v = {0};
    int rc = 0;
    const char *end = s + n, *q = s + 1;
    while (q <= end && !rc) {
        const char *slash = memchr(q, '/', (size_t)(end - q));
        const char *tok_end = slash ? slash : end;
        const proto_t *p = by_name(q, (size_t)(tok_end - q));
        if (!p) {
            rc = CP2P_EUNSUPPORTED;
            break;
        }
        q = tok_end + 1;
        rc = cp2p_buf_append_uvarint(&b, p->code);
        if (rc || p->size == 0)
            continue;
        if (q > end) {
            rc = CP2P_EPARSE;
            break;
        }
        /* unix keeps its leading slash and takes everything after it. */
        const char *vs = p->kind == K_UNIX ? q - 1 : q;
        const char *ve = p->kind == K_UNIX ? unix_path_end(q, end) : memchr(q, '/', (size_t)(end - q));
        if (!ve)
            ve = end;
        cp2p_buf_reset(&v);
        rc = value_from_string(p, vs, (size_t)(ve - vs), &v);
        if (!rc && p->size < 0)
            rc = cp2p_buf_append_uvarint(&b, v.len);
        else if (!rc && v.len != (size_t)p->size)
            rc = CP2P_EPARSE;
        if (!rc)
            rc = cp2p_buf_append(&b, v.data, v.len);
        q = ve + 1;
    }
    /* Validating the result checks each value the same way as bytes from a peer. */
    if (!rc)
        rc = validate(b.data, b.len);
    if (!rc)
        rc = set_bytes(b.data, b.len, out);
    cp2p_buf_free(&b);
    cp2p_buf_free(&v);
    return rc;
}

static int append_text(cp2p_buf_t *out, const char *s)
{
    return cp2p_buf_append(out, s, strlen(s));
}

/* The value's text without the trailing NUL. */
static int value_text(const cp2p_multiaddr_component_t *c, cp2p_buf_t *out)
{
    const proto_t *p = by_code(c->code);
    char tmp[INET6_ADDRSTRLEN];
    cp2p_buf_t t = {0};
    int rc;
    switch (p ? p->kind : K_NONE) {
    case K_NONE:
        return 0;
    case K_IP4:
    case K_IP6:
        if (!inet_ntop(p->kind == K_IP4 ? AF_INET : AF_INET6, c->value, tmp, sizeof tmp))
            return CP2P_EPARSE;
        return append_text(out, tmp);
    case K_PORT:
    case K_CIDR:
        snprintf(tmp, sizeof tmp, "%u",
                 p->kind == K_PORT ? (unsigned)(c->value[0] << 8 | c->value[1]) : c->value[0]);
        return append_text(out, tmp);
    case K_NAME:
    case K_UNIX:
        return cp2p_buf_append(out, c->value, c->value_len);
    case K_P2P:
    case K_CERTHASH:
        rc = p->kind == K_P2P ? cp2p_base_encode(CP2P_BASE58BTC, c->value, c->value_len, &t)
                              : cp2p_multibase_encode(CP2P_BASE64URL, c->value, c->value_len, &t);
        if (!rc)
            rc = cp2p_buf_append(out, t.data, t.len);
        cp2p_buf_free(&t);
        return rc;
    }
    return CP2P_EPARSE;
}

static int terminate(cp2p_buf_t *out, size_t before, int rc)
{
    if (!rc)
        rc = cp2p_buf_reserve(out, 1);
    if (rc) {
        out->len = before;
        return rc;
    }
    out->data[out->len] = 0;
    return 0;
}

int cp2p_multiaddr_value_to_string(const cp2p_multiaddr_component_t *c, cp2p_buf_t *out)
{
    size_t before = out->len;
    return terminate(out, before, value_text(c, out));
}

int cp2p_multiaddr_to_string(const cp2p_multiaddr_t *ma, cp2p_buf_t *out)
{
    size_t before = out->len;
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    int rc = 0;
    cp2p_multiaddr_iter_init(&it, ma);
    while (!rc && cp2p_multiaddr_iter_next(&it, &c)) {
        rc = cp2p_buf_append_byte(out, '/');
        if (!rc)
            rc = append_text(out, c.name);
        if (!rc && c.value_len && c.code != CP2P_MA_UNIX)
            rc = cp2p_buf_append_byte(out, '/');
        if (!rc)
            rc = value_text(&c, out);
    }
    return terminate(out, before, rc);
}

void cp2p_multiaddr_free(cp2p_multiaddr_t *ma)
{
    free(ma->bytes);
    ma->bytes = NULL;
    ma->len = 0;
}

int cp2p_multiaddr_dup(const cp2p_multiaddr_t *ma, cp2p_multiaddr_t *out)
{
    return set_bytes(ma->bytes, ma->len, out);
}

int cp2p_multiaddr_array_dup(const cp2p_multiaddr_t *addrs, size_t n, cp2p_multiaddr_t **out)
{
    *out = NULL;
    if (!n)
        return 0;
    cp2p_multiaddr_t *copy = calloc(n, sizeof *copy);
    if (!copy)
        return CP2P_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = cp2p_multiaddr_dup(&addrs[i], &copy[i]);
        if (rc) {
            cp2p_multiaddr_array_free(copy, i);
            return rc;
        }
    }
    *out = copy;
    return 0;
}

void cp2p_multiaddr_array_free(cp2p_multiaddr_t *addrs, size_t n)
{
    for (size_t i = 0; addrs && i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
}

int cp2p_multiaddr_equal(const cp2p_multiaddr_t *a, const cp2p_multiaddr_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

int cp2p_multiaddr_encapsulate(const cp2p_multiaddr_t *a, const cp2p_multiaddr_t *b,
                               cp2p_multiaddr_t *out)
{
    if (a->len + b->len > CP2P_MULTIADDR_MAX)
        return CP2P_EOVERFLOW;
    uint8_t tmp[CP2P_MULTIADDR_MAX];
    if (a->len)
        memcpy(tmp, a->bytes, a->len);
    if (b->len)
        memcpy(tmp + a->len, b->bytes, b->len);
    /* Joining can break a rule neither half breaks (something after unix). */
    return cp2p_multiaddr_from_bytes(tmp, a->len + b->len, out);
}

int cp2p_multiaddr_decapsulate_code(cp2p_multiaddr_t *ma, uint64_t code)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    size_t cut = SIZE_MAX;
    cp2p_multiaddr_iter_init(&it, ma);
    while (cp2p_multiaddr_iter_next(&it, &c))
        if (c.code == code)
            cut = (size_t)(c.raw - ma->bytes);
    if (cut == SIZE_MAX)
        return CP2P_ENOTFOUND;
    ma->len = cut;
    if (cut == 0)
        cp2p_multiaddr_free(ma);
    return 0;
}

void cp2p_multiaddr_iter_init(cp2p_multiaddr_iter_t *it, const cp2p_multiaddr_t *ma)
{
    it->ma = ma;
    it->off = 0;
}

int cp2p_multiaddr_iter_next(cp2p_multiaddr_iter_t *it, cp2p_multiaddr_component_t *c)
{
    if (it->off >= it->ma->len)
        return 0;
    /* The bytes were validated on construction; a failure here means the
     * caller built the struct by hand, and ending the walk is the safe answer. */
    int rc = read_component(it->ma->bytes + it->off, it->ma->len - it->off, c);
    if (rc < 0) {
        it->off = it->ma->len;
        return 0;
    }
    it->off += (size_t)rc;
    return 1;
}

int cp2p_multiaddr_get(const cp2p_multiaddr_t *ma, uint64_t code, cp2p_multiaddr_component_t *c)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_iter_init(&it, ma);
    while (cp2p_multiaddr_iter_next(&it, c))
        if (c->code == code)
            return 0;
    return CP2P_ENOTFOUND;
}

/* ---- IP scopes ---- */

static int in4(const uint8_t *ip, uint32_t net, unsigned bits)
{
    uint32_t a = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
    return bits == 0 || (a ^ net) >> (32 - bits) == 0;
}

static cp2p_ip_scope_t scope4(const uint8_t *ip)
{
    static const struct {
        uint32_t net;
        uint8_t bits;
        uint8_t scope;
    } ranges[] = {
        {0x00000000, 8, CP2P_IP_UNUSABLE},  /* "this network" */
        {0x7f000000, 8, CP2P_IP_LOOPBACK},
        {0xa9fe0000, 16, CP2P_IP_UNUSABLE}, /* link-local */
        {0xe0000000, 4, CP2P_IP_UNUSABLE},  /* multicast */
        {0xf0000000, 4, CP2P_IP_UNUSABLE},  /* reserved, broadcast */
        {0x0a000000, 8, CP2P_IP_PRIVATE},
        {0xac100000, 12, CP2P_IP_PRIVATE},
        {0xc0a80000, 16, CP2P_IP_PRIVATE},
        {0x64400000, 10, CP2P_IP_PRIVATE},  /* shared address space (CGNAT) */
        {0xc0000000, 24, CP2P_IP_PRIVATE},  /* IETF protocol assignments */
        {0xc0000200, 24, CP2P_IP_PRIVATE},  /* documentation */
        {0xc6336400, 24, CP2P_IP_PRIVATE},
        {0xcb007100, 24, CP2P_IP_PRIVATE},
        {0xc6120000, 15, CP2P_IP_PRIVATE},  /* benchmarking */
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (in4(ip, ranges[i].net, ranges[i].bits))
            return (cp2p_ip_scope_t)ranges[i].scope;
    return CP2P_IP_PUBLIC;
}

cp2p_ip_scope_t cp2p_ip_scope(const uint8_t *ip, size_t len)
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (len == 4)
        return scope4(ip);
    if (len != 16)
        return CP2P_IP_NONE;
    if (!memcmp(ip, mapped, 12))
        return scope4(ip + 12);
    int zero15 = 1;
    for (int i = 0; i < 15; i++)
        zero15 &= ip[i] == 0;
    if (zero15)
        return ip[15] == 1 ? CP2P_IP_LOOPBACK : CP2P_IP_UNUSABLE; /* ::1, :: */
    if (ip[0] == 0xff || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80))
        return CP2P_IP_UNUSABLE; /* multicast, link-local */
    if ((ip[0] & 0xfe) == 0xfc)
        return CP2P_IP_PRIVATE; /* unique local */
    if (ip[0] == 0x20 && ip[1] == 0x01 && ip[2] == 0x0d && ip[3] == 0xb8)
        return CP2P_IP_PRIVATE; /* documentation */
    return CP2P_IP_PUBLIC;
}

cp2p_ip_scope_t cp2p_multiaddr_ip_scope(const cp2p_multiaddr_t *ma)
{
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_init(&it, ma);
    if (!cp2p_multiaddr_iter_next(&it, &c))
        return CP2P_IP_NONE;
    if ((c.code == CP2P_MA_IP4 && c.value_len == 4) || (c.code == CP2P_MA_IP6 && c.value_len == 16))
        return cp2p_ip_scope(c.value, c.value_len);
    return c.code == CP2P_MA_IP6ZONE ? CP2P_IP_UNUSABLE : CP2P_IP_NONE;
}
