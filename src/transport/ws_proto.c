/* WebSocket engines (RFC 6455 sections 4 and 5): the opening handshake,
 * parsed with libhttp-parser, and binary framing decoded in place. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "cp2p/error.h"
#include "transport/ws_proto.h"

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* ---- the upgrade ---- */

/* base64(SHA-1(key GUID)), the Sec-WebSocket-Accept of key. */
static int accept_of(const char *key, size_t n, char out[29])
{
    char buf[64 + sizeof GUID];
    uint8_t md[20];
    unsigned mdlen = 0;
    if (n > 64)
        return CP2P_EPARSE;
    memcpy(buf, key, n);
    memcpy(buf + n, GUID, sizeof GUID - 1);
    if (!EVP_Digest(buf, n + sizeof GUID - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return CP2P_ECRYPTO;
    sodium_bin2base64(out, 29, md, 20, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

int cp2p_ws_client_start(cp2p_ws_handshake_t *h, const char *host, cp2p_buf_t *out)
{
    memset(h, 0, sizeof *h);
    h->client = 1;
    uint8_t nonce[16];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(h->key, sizeof h->key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    char req[512];
    int len = snprintf(req, sizeof req,
                       "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                       host, h->key);
    if (len < 0 || (size_t)len >= sizeof req)
        return CP2P_EINVAL;
    return cp2p_buf_append(out, req, (size_t)len);
}

void cp2p_ws_server_init(cp2p_ws_handshake_t *h)
{
    memset(h, 0, sizeof *h);
}

void cp2p_ws_handshake_free(cp2p_ws_handshake_t *h)
{
    cp2p_buf_free(&h->in);
}

/* What the head says, collected by the parser's callbacks. */
typedef struct head {
    enum { H_NONE, H_UPGRADE, H_CONNECTION, H_KEY, H_VERSION, H_ACCEPT, H_OTHER } field;
    int upgrade_ws, connection_upgrade, version13;
    char key[65], accept[65];
    int complete;
} head_t;

/* 1 if the comma-separated list v[0..n) has token t (any case). */
static int has_token(const char *v, size_t n, const char *t)
{
    size_t tl = strlen(t);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t e = j;
        while (e > i && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - i == tl && !strncasecmp(v + i, t, tl))
            return 1;
        i = j;
    }
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    head_t *hd = p->data;
#define IS(s) (n == sizeof(s) - 1 && !strncasecmp(at, s, n))
    hd->field = IS("upgrade")                ? H_UPGRADE
                : IS("connection")           ? H_CONNECTION
                : IS("sec-websocket-key")    ? H_KEY
                : IS("sec-websocket-version") ? H_VERSION
                : IS("sec-websocket-accept") ? H_ACCEPT
                                             : H_OTHER;
#undef IS
    return 0;
}

static void copy_value(char *dst, const char *at, size_t n)
{
    while (n && (*at == ' ' || *at == '\t'))
        at++, n--;
    while (n && (at[n - 1] == ' ' || at[n - 1] == '\t'))
        n--;
    if (n > 64)
        n = 64; /* too long to be right: the comparison fails */
    memcpy(dst, at, n);
    dst[n] = 0;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    head_t *hd = p->data;
    char v[65];
    switch (hd->field) {
    case H_UPGRADE: hd->upgrade_ws |= has_token(at, n, "websocket"); break;
    case H_CONNECTION: hd->connection_upgrade |= has_token(at, n, "upgrade"); break;
    case H_KEY: copy_value(hd->key, at, n); break;
    case H_ACCEPT: copy_value(hd->accept, at, n); break;
    case H_VERSION:
        copy_value(v, at, n);
        hd->version13 = !strcmp(v, "13");
        break;
    default: break;
    }
    return 0;
}

static int on_complete(http_parser *p)
{
    ((head_t *)p->data)->complete = 1;
    return 1; /* no body: stop at the head's end */
}

static int refuse(cp2p_ws_handshake_t *h, cp2p_buf_t *out, const char *status)
{
    if (!h->client) {
        char r[128];
        int n = snprintf(r, sizeof r, "HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status);
        cp2p_buf_append(out, r, (size_t)n);
    }
    return CP2P_EPROTO;
}

int cp2p_ws_handshake_input(cp2p_ws_handshake_t *h, const uint8_t *in, size_t n, size_t *used,
                            cp2p_buf_t *out)
{
    *used = 0;
    if (h->done)
        return 1;
    /* Only as far as the head's end: what follows is frames. */
    size_t had = h->in.len, take = 0;
    const uint8_t *end = NULL;
    for (size_t i = 0; i < n && !end; i++) {
        size_t at = had + i + 1; /* bytes of head if it ended at in[i] */
        if (in[i] != '\n' || at < 4)
            continue;
        uint8_t last[4];
        for (size_t k = 0; k < 4; k++) {
            size_t pos = at - 4 + k;
            last[k] = pos < had ? h->in.data[pos] : in[pos - had];
        }
        if (!memcmp(last, "\r\n\r\n", 4))
            end = in + i + 1;
    }
    take = end ? (size_t)(end - in) : n;
    if (had + take > CP2P_WS_MAX_HEAD) {
        refuse(h, out, "431 Request Header Fields Too Large");
        return CP2P_EOVERFLOW;
    }
    if (cp2p_buf_append(&h->in, in, take))
        return CP2P_ENOMEM;
    *used = take;
    if (!end)
        return 0;

    head_t hd = {0};
    http_parser p;
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_header_field = on_field;
    s.on_header_value = on_value;
    s.on_headers_complete = on_complete;
    http_parser_init(&p, h->client ? HTTP_RESPONSE : HTTP_REQUEST);
    p.data = &hd;
    http_parser_execute(&p, &s, (const char *)h->in.data, h->in.len);
    if (!hd.complete || (HTTP_PARSER_ERRNO(&p) != HPE_OK && HTTP_PARSER_ERRNO(&p) != HPE_CB_headers_complete))
        return refuse(h, out, "400 Bad Request");
    if (h->client) {
        char want[29];
        if (p.status_code != 101 || !hd.upgrade_ws || !hd.connection_upgrade ||
            accept_of(h->key, strlen(h->key), want) || strcmp(want, hd.accept))
            return CP2P_EPROTO;
        h->done = 1;
        return 1;
    }
    uint8_t raw[16];
    size_t raw_len = 0;
    if (p.method != HTTP_GET || !hd.upgrade_ws || !hd.connection_upgrade || !hd.version13 ||
        sodium_base642bin(raw, sizeof raw, hd.key, strlen(hd.key), NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) ||
        raw_len != 16)
        return refuse(h, out, hd.version13 || !hd.upgrade_ws ? "400 Bad Request"
                                                             : "426 Upgrade Required\r\nSec-WebSocket-Version: 13");
    char acc[29], r[256];
    if (accept_of(hd.key, strlen(hd.key), acc))
        return CP2P_ECRYPTO;
    int len = snprintf(r, sizeof r,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: %s\r\n\r\n",
                       acc);
    h->done = 1;
    return cp2p_buf_append(out, r, (size_t)len) ? CP2P_ENOMEM : 1;
}

/* ---- framing ---- */

void cp2p_ws_framer_init(cp2p_ws_framer_t *f, int client)
{
    memset(f, 0, sizeof *f);
    f->client = client;
    f->head_need = 2;
    randombytes_buf(&f->rng, sizeof f->rng);
}

/* xorshift32: mask keys need not be secret, only not chosen by the app. */
static uint32_t next_mask(cp2p_ws_framer_t *f)
{
    uint32_t x = f->rng ? f->rng : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return f->rng = x;
}

static void xor_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t off)
{
    size_t i = 0;
    /* Eight bytes at a time once the mask is lined up with p: the mask
     * repeats every 4 bytes, so one 64-bit word of it fits any position. */
    uint8_t m8[8];
    for (size_t k = 0; k < 8; k++)
        m8[k] = mask[(off + k) & 3];
    uint64_t w;
    memcpy(&w, m8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= w;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++)
        p[i] ^= mask[(off + i) & 3];
}

/* One frame's head, mask applied to p[0..n) when masking. */
static size_t put_head(cp2p_ws_framer_t *f, uint8_t op, uint8_t *p, size_t n, uint8_t *head)
{
    size_t k = 0;
    head[k++] = (uint8_t)(0x80 | op);
    uint8_t m = f->client ? 0x80 : 0;
    if (n < 126) {
        head[k++] = (uint8_t)(m | n);
    } else if (n <= 0xffff) {
        head[k++] = m | 126;
        head[k++] = (uint8_t)(n >> 8);
        head[k++] = (uint8_t)n;
    } else {
        head[k++] = m | 127;
        for (int i = 7; i >= 0; i--)
            head[k++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (f->client) {
        uint32_t key = next_mask(f);
        memcpy(head + k, &key, 4);
        xor_mask(p, n, head + k, 0);
        k += 4;
    }
    return k;
}

size_t cp2p_ws_frame(cp2p_ws_framer_t *f, uint8_t *p, size_t n, uint8_t *head)
{
    return put_head(f, OP_BINARY, p, n, head);
}

static int control_frame(cp2p_ws_framer_t *f, uint8_t op, const uint8_t *payload, size_t n,
                         cp2p_buf_t *out)
{
    uint8_t frame[CP2P_WS_MAX_FRAME_HEAD + 125];
    memcpy(frame + CP2P_WS_MAX_FRAME_HEAD, payload, n);
    uint8_t head[CP2P_WS_MAX_FRAME_HEAD];
    size_t h = put_head(f, op, frame + CP2P_WS_MAX_FRAME_HEAD, n, head);
    int rc = cp2p_buf_append(out, head, h);
    return rc ? rc : cp2p_buf_append(out, frame + CP2P_WS_MAX_FRAME_HEAD, n);
}

int cp2p_ws_close_frame(cp2p_ws_framer_t *f, cp2p_buf_t *out)
{
    static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000 */
    return control_frame(f, OP_CLOSE, normal, 2, out);
}

/* The head is whole: check it and set up the payload. */
static int head_done(cp2p_ws_framer_t *f)
{
    const uint8_t *h = f->head;
    f->fin = h[0] >> 7;
    f->opcode = h[0] & 0x0f;
    f->masked = h[1] >> 7;
    if (h[0] & 0x70)
        return CP2P_EPROTO; /* reserved bits: no extension was agreed */
    if (f->masked != !f->client)
        return CP2P_EPROTO; /* clients mask, servers do not (5.1) */
    uint64_t len = h[1] & 0x7f;
    size_t k = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        k = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63)
            return CP2P_EPROTO;
        k = 10;
    }
    if (f->masked)
        memcpy(f->mask, h + k, 4);
    f->mask_off = 0;
    f->left = len;
    switch (f->opcode) {
    case OP_BINARY:
        if (f->in_message)
            return CP2P_EPROTO; /* a new message inside a fragmented one */
        f->in_message = !f->fin;
        break;
    case OP_CONT:
        if (!f->in_message)
            return CP2P_EPROTO;
        f->in_message = !f->fin;
        break;
    case OP_CLOSE:
    case OP_PING:
    case OP_PONG:
        if (!f->fin || len > sizeof f->ctl)
            return CP2P_EPROTO;
        f->ctl_have = 0;
        break;
    default: /* text (libp2p speaks binary) and reserved opcodes */
        return CP2P_EPROTO;
    }
    return 0;
}

/* A control frame's payload is whole. */
static int control_done(cp2p_ws_framer_t *f, cp2p_buf_t *reply, int *eof)
{
    if (f->opcode == OP_PING)
        return control_frame(f, OP_PONG, f->ctl, f->ctl_have, reply);
    if (f->opcode == OP_CLOSE) {
        f->closed = 1;
        *eof = 1;
        return cp2p_ws_close_frame(f, reply);
    }
    return 0; /* pong: nothing to do */
}

ssize_t cp2p_ws_decode(cp2p_ws_framer_t *f, uint8_t *p, size_t n, cp2p_buf_t *reply, int *eof)
{
    size_t r = 0, w = 0;
    int rc;
    while (r < n && !f->closed) {
        if (f->head_have < f->head_need) {
            f->head[f->head_have++] = p[r++];
            if (f->head_have == 2) {
                uint8_t l = f->head[1] & 0x7f;
                f->head_need = 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + (f->head[1] & 0x80 ? 4 : 0);
            }
            if (f->head_have < f->head_need)
                continue;
            if ((rc = head_done(f)) < 0)
                return rc;
            if (f->left == 0 && (f->opcode & 8) && (rc = control_done(f, reply, eof)) < 0)
                return rc;
            if (f->left == 0)
                f->head_have = 0, f->head_need = 2;
            continue;
        }
        size_t k = n - r;
        if (k > f->left)
            k = (size_t)f->left;
        if (f->masked)
            xor_mask(p + r, k, f->mask, f->mask_off);
        f->mask_off += k;
        if (f->opcode & 8) {
            memcpy(f->ctl + f->ctl_have, p + r, k);
            f->ctl_have += k;
        } else {
            if (w != r)
                memmove(p + w, p + r, k);
            w += k;
        }
        r += k;
        f->left -= k;
        if (f->left == 0) {
            if ((f->opcode & 8) && (rc = control_done(f, reply, eof)) < 0)
                return rc;
            f->head_have = 0;
            f->head_need = 2;
        }
    }
    if (f->closed)
        *eof = 1;
    return (ssize_t)w;
}
