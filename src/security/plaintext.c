/* The /plaintext/2.0.0 security session (libp2p specs plaintext/README.md, "Protocol"):
 * one uvarint-prefixed Exchange message each way, then bytes pass through untouched.
 * Nothing proves that the remote holds the key it sends: the peer it is
 * taken for is only the one it claims to be. Tests and trusted networks only. */
#include <stdlib.h>
#include <string.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/varint.h"
#include "plaintext.pb-c.h"
#include "security/security.h"

/* The largest key the keys module accepts (8192-bit RSA) encodes in about 1.1 KB. */
#define EXCHANGE_MAX 8192

struct cp2p_sec {
    cp2p_sec_base_t base; /* first: see security.h */
    const cp2p_privkey_t *identity;
    cp2p_peer_id_t expected;
    int has_expected;
    int sent;
    cp2p_buf_t rx; /* the remote's Exchange until it is complete, at most EXCHANGE_MAX + 9 */
};

static int sec_create(cp2p_sec_t **out, int initiator, const cp2p_privkey_t *identity,
                      const cp2p_peer_id_t *expected_remote)
{
    if (!out || !identity)
        return CP2P_EINVAL;
    cp2p_sec_t *s = calloc(1, sizeof *s);
    if (!s)
        return CP2P_ENOMEM;
    s->identity = identity;
    if (expected_remote) {
        s->expected = *expected_remote;
        s->has_expected = 1;
    }
    *out = s;
    return 0;
}

static void sec_destroy(cp2p_sec_t *s)
{
    if (!s)
        return;
    cp2p_buf_free(&s->rx);
    cp2p_pubkey_free(s->base.remote_key);
    free(s);
}

static int send_exchange(cp2p_sec_t *s, cp2p_buf_t *wire_out)
{
    cp2p_buf_t key = {0};
    cp2p_peer_id_t id;
    const cp2p_pubkey_t *pub = cp2p_privkey_public(s->identity);
    int rc = cp2p_pubkey_marshal(pub, &key);
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(pub, &id);
    if (!rc) {
        Plaintext__Exchange ex = PLAINTEXT__EXCHANGE__INIT;
        ex.has_id = 1;
        ex.id.data = id.bytes;
        ex.id.len = id.len;
        ex.has_pubkey = 1;
        ex.pubkey.data = key.data;
        ex.pubkey.len = key.len;
        size_t n = plaintext__exchange__get_packed_size(&ex);
        rc = cp2p_buf_reserve(wire_out, CP2P_UVARINT_MAX + n);
        if (!rc) {
            wire_out->len += cp2p_uvarint_encode(n, wire_out->data + wire_out->len);
            wire_out->len += plaintext__exchange__pack(&ex, wire_out->data + wire_out->len);
            s->sent = 1;
        }
    }
    cp2p_buf_free(&key);
    return rc;
}

/* The remote's id must be the one its key gives, and the one we dialled. */
static int check_exchange(cp2p_sec_t *s, const uint8_t *p, size_t n)
{
    Plaintext__Exchange *ex = plaintext__exchange__unpack(NULL, n, p);
    if (!ex)
        return CP2P_EPARSE;
    cp2p_pubkey_t *key = NULL;
    int rc = ex->has_id && ex->has_pubkey ? 0 : CP2P_EPROTO;
    if (!rc)
        rc = cp2p_pubkey_unmarshal(ex->pubkey.data, ex->pubkey.len, &key);
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(key, &s->base.remote_peer);
    if (!rc && (ex->id.len != s->base.remote_peer.len ||
                memcmp(ex->id.data, s->base.remote_peer.bytes, ex->id.len) != 0))
        rc = CP2P_EPROTO;
    if (!rc && s->has_expected && !cp2p_peer_id_equal(&s->expected, &s->base.remote_peer))
        rc = CP2P_EPEERID;
    plaintext__exchange__free_unpacked(ex, NULL);
    if (rc) {
        cp2p_pubkey_free(key);
        return rc;
    }
    s->base.remote_key = key;
    return 0;
}

/* Buffers the remote's Exchange from *in, advancing it; 1 once the message is
 * complete and checked, 0 if more bytes are needed. */
static int read_exchange(cp2p_sec_t *s, const uint8_t **in, size_t *n)
{
    for (;;) {
        uint64_t len = 0;
        int hdr = cp2p_uvarint_decode(s->rx.data, s->rx.len, &len);
        if (hdr == CP2P_ETRUNC) {
            if (*n == 0)
                return 0;
            int rc = cp2p_buf_append_byte(&s->rx, **in);
            if (rc)
                return rc;
            ++*in;
            --*n;
            continue;
        }
        if (hdr < 0)
            return hdr;
        if (len > EXCHANGE_MAX)
            return CP2P_EOVERFLOW;
        size_t want = (size_t)hdr + (size_t)len - s->rx.len;
        size_t k = want < *n ? want : *n;
        int rc = k ? cp2p_buf_append(&s->rx, *in, k) : 0;
        if (rc)
            return rc;
        *in += k;
        *n -= k;
        if (k < want)
            return 0;
        rc = check_exchange(s, s->rx.data + hdr, (size_t)len);
        cp2p_buf_free(&s->rx);
        return rc ? rc : 1;
    }
}

static int sec_start(cp2p_sec_t *s, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out != NULL, 0);
    if (rc)
        return rc;
    /* Both sides speak first: each sends its Exchange without waiting. */
    return cp2p_sec_settle(s, "plaintext", s->sent ? 0 : send_exchange(s, wire_out));
}

static int sec_input(cp2p_sec_t *s, const uint8_t *in, size_t n, cp2p_buf_t *wire_out,
                     cp2p_buf_t *plain_out)
{
    int rc = cp2p_sec_begin(s, wire_out && plain_out && (in || !n), 0);
    if (rc)
        return rc;
    if (!s->base.established) {
        if (!s->sent)
            rc = send_exchange(s, wire_out);
        if (!rc)
            rc = read_exchange(s, &in, &n);
        if (rc == 1) {
            rc = 0;
            s->base.established = 1;
            if (cp2p_log_enabled(CP2P_LOG_DEBUG)) {
                char id[CP2P_PEER_ID_STRMAX];
                if (cp2p_peer_id_to_string(&s->base.remote_peer, id, sizeof id) == 0)
                    cp2p_log_debug("plaintext", "insecure connection with %s", id);
            }
        }
    }
    /* Whatever follows the Exchange in the same read is already application data. */
    if (!rc && s->base.established && n)
        rc = cp2p_buf_append(plain_out, in, n);
    return cp2p_sec_settle(s, "plaintext", rc);
}

static int sec_seal(cp2p_sec_t *s, const uint8_t *p, size_t n, cp2p_buf_t *wire_out)
{
    int rc = cp2p_sec_begin(s, wire_out && (p || !n), 1);
    return rc ? rc : cp2p_sec_settle(s, "plaintext", n ? cp2p_buf_append(wire_out, p, n) : 0);
}

const cp2p_sec_vtable_t cp2p_plaintext_vtable = {
    .protocol_id = "/plaintext/2.0.0",
    .create = sec_create,
    .destroy = sec_destroy,
    .start = sec_start,
    .input = sec_input,
    .seal = sec_seal,
};
