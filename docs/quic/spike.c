/* QUIC v1 spike for cp2p: ngtcp2 0.12.1 + its GnuTLS helper on libuv UDP
 * handles. One loop, a server and a client on 127.0.0.1 (one uv_udp each),
 * TLS 1.3 with ALPN "libp2p", both sides presenting a libp2p certificate
 * (self-signed P-256, built here with GnuTLS, carrying the libp2p Public Key
 * Extension signed with a cp2p host key) and both checking the peer's with
 * cp2p's own cp2p_tls_cert_check (linked from build/libcp2p.a). Then the
 * client opens a bidi stream, sends a message with FIN, the server echoes it.
 *
 * Modes (argv[1]): ok (default), nocert (client presents no certificate:
 * the server must refuse), badalpn (client offers only "h3": refused),
 * idle (keep-alive: idle timeout 1 s, client keep-alive 300 ms, stream
 * opened 2.5 s after the handshake), idle-nokeepalive (the same without
 * keep-alive: the connection must die of idle timeout), vn (first a packet
 * of an unknown version: the server answers Version Negotiation), dial IP
 * PORT (client only, against a real libp2p peer listening on /quic-v1 with
 * an /echo/1.0.0 handler: multistream-select on the QUIC stream, no yamux),
 * listen [PORT] (server only for 20 s: a real libp2p peer dials it and runs
 * /echo/1.0.0; other protocols, e.g. identify, get "na"). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <stdarg.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <uv.h>

#include "cp2p/buf.h"
#include "cp2p/keys.h"
#include "cp2p/peer.h"

/* Internal to cp2p (src/security/tls.h); present in libcp2p.a. */
int cp2p_tls_cert_check(const uint8_t *der, size_t n, cp2p_pubkey_t **host_key);
int cp2p_tls_cert_generate(const cp2p_privkey_t *identity, cp2p_buf_t *der);

#define SCID_LEN 18
#define MAX_UDP 1452
/* QUIC forbids TLS 1.3 middlebox compatibility mode (RFC 9001 8.4). */
#define PRIORITY "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3"

static const char *mode = "ok";

typedef struct peer {
    const char *name;
    int server;
    uv_loop_t *loop;
    uv_udp_t udp;
    uv_timer_t timer, later;
    struct sockaddr_in local, remote;
    ngtcp2_conn *conn;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
    ngtcp2_crypto_conn_ref ref;
    cp2p_privkey_t *id;
    cp2p_pubkey_t *peer_key; /* from the verify callback */
    ngtcp2_cid odcid;        /* server: the client's first DCID (demux of its Initials) */
    int64_t sid;
    uint8_t out[4096];       /* stream bytes not yet taken by ngtcp2; kept until ACKed */
    size_t out_off, out_len;
    int fin_pending, fin_sent;
    uint8_t in[4096];
    size_t in_len;
    int got_fin, closed, handshake_ok;
    int want_close;          /* set inside ngtcp2 callbacks, acted on after read_pkt returns */
} peer_t;

/* listen mode: a server's streams, each with multistream-select (responder)
 * then an echo. Bytes given to ngtcp2 must stay put until ACKed, so each
 * stream's output is one fixed buffer (cp2p: a chunk list freed on ACK). */
#define LSTREAMS 16
#define LOUT (4 * 1024 * 1024)
typedef struct lstream {
    int64_t sid;
    int used, echo, fin_in, fin_queued, fin_sent;
    uint8_t in[512];           /* negotiation bytes not yet parsed */
    size_t in_len;
    uint8_t *out;              /* LOUT bytes */
    size_t out_off, out_len;
} lstream_t;
static lstream_t lst[LSTREAMS];
static int listening;

static lstream_t *lfind(int64_t sid)
{
    for (int i = 0; i < LSTREAMS; i++)
        if (lst[i].used && lst[i].sid == sid)
            return &lst[i];
    return NULL;
}

static void lqueue(lstream_t *t, const void *p, size_t n)
{
    if (t->out_len + n <= LOUT) {
        memcpy(t->out + t->out_len, p, n);
        t->out_len += n;
    }
}

/* multistream-select 1.0, responder side: varint-length messages. */
static void lnegotiate(lstream_t *t)
{
    size_t off = 0;
    while (!t->echo && off < t->in_len) {
        size_t n = t->in[off];
        if (n >= 128 || off + 1 + n > t->in_len)
            break; /* spike: one-byte lengths only; wait for more */
        const char *m = (const char *)t->in + off + 1;
        uint8_t hdr[64];
        if (n == 19 && memcmp(m, "/multistream/1.0.0\n", 19) == 0) {
            hdr[0] = 19;
            memcpy(hdr + 1, m, 19);
            lqueue(t, hdr, 20);
        } else if (n == 12 && memcmp(m, "/echo/1.0.0\n", 12) == 0) {
            hdr[0] = 12;
            memcpy(hdr + 1, m, 12);
            lqueue(t, hdr, 13);
            t->echo = 1;
        } else {
            printf("[server] stream %lld: proposes %.*s -> na\n", (long long)t->sid, (int)n - 1, m);
            lqueue(t, "\x03na\n", 4);
        }
        off += 1 + n;
    }
    if (t->echo && off < t->in_len) /* data that came with the proposal */
        lqueue(t, t->in + off, t->in_len - off);
    memmove(t->in, t->in + off, t->in_len - off);
    t->in_len -= t->echo ? t->in_len : off;
}

static peer_t srv, cli;
static int result = 1;
static int dialing;                 /* mode dial: client only, against a real peer */
static const char *payload = "hello from cp2p over QUIC v1";

static ngtcp2_tstamp now_ns(void)
{
    return uv_hrtime();
}

static void rnd(uint8_t *p, size_t n)
{
    gnutls_rnd(GNUTLS_RND_RANDOM, p, n);
}

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    rnd(dest, destlen);
}

static int cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
    (void)conn;
    (void)ud;
    rnd(cid->data, cidlen);
    cid->datalen = cidlen;
    rnd(token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
}

/* ---- the libp2p certificate, made with GnuTLS ---- */

/* DER: SEQUENCE { OCTET STRING a, OCTET STRING b } (lengths < 64 KiB). */
static size_t der_len(uint8_t *o, size_t n)
{
    if (n < 128) {
        o[0] = (uint8_t)n;
        return 1;
    }
    if (n < 256) {
        o[0] = 0x81, o[1] = (uint8_t)n;
        return 2;
    }
    o[0] = 0x82, o[1] = (uint8_t)(n >> 8), o[2] = (uint8_t)n;
    return 3;
}

static size_t der_signed_key(uint8_t *out, const cp2p_buf_t *a, const cp2p_buf_t *b)
{
    uint8_t body[4096];
    size_t k = 0;
    body[k++] = 0x04;
    k += der_len(body + k, a->len);
    memcpy(body + k, a->data, a->len), k += a->len;
    body[k++] = 0x04;
    k += der_len(body + k, b->len);
    memcpy(body + k, b->data, b->len), k += b->len;
    size_t m = 0;
    out[m++] = 0x30;
    m += der_len(out + m, k);
    memcpy(out + m, body, k);
    return m + k;
}

#define CK(x)                                                                                      \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0) {                                                                              \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, gnutls_strerror(r_));       \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* What cp2p would do instead: make the certificate with OpenSSL in tls.c
 * (cert and PKCS#8 key as DER) and hand both DERs to the same
 * gnutls_certificate_set_x509_key_mem2 call below. */
static void make_cred(peer_t *p, int with_cert)
{
    CK(gnutls_certificate_allocate_credentials(&p->cred));
    if (!with_cert)
        return;
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    CK(gnutls_x509_privkey_init(&key));
    CK(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    CK(gnutls_x509_crt_init(&crt));
    CK(gnutls_x509_crt_set_version(crt, 3));
    uint8_t serial[16];
    rnd(serial, sizeof serial);
    serial[0] &= 0x7f;
    CK(gnutls_x509_crt_set_serial(crt, serial, sizeof serial));
    time_t t = time(NULL);
    CK(gnutls_x509_crt_set_activation_time(crt, t - 3600));
    CK(gnutls_x509_crt_set_expiration_time(crt, t + 100L * 86400));
    CK(gnutls_x509_crt_set_key(crt, key));

    /* The signed key: sign("libp2p-tls-handshake:" || SubjectPublicKeyInfo). */
    gnutls_pubkey_t pub;
    CK(gnutls_pubkey_init(&pub));
    CK(gnutls_pubkey_import_x509(pub, crt, 0));
    gnutls_datum_t spki;
    CK(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki));
    cp2p_buf_t msg = {0}, sig = {0}, pk = {0};
    cp2p_buf_append(&msg, "libp2p-tls-handshake:", 21);
    cp2p_buf_append(&msg, spki.data, spki.size);
    if (cp2p_privkey_sign(p->id, msg.data, msg.len, &sig) ||
        cp2p_pubkey_marshal(cp2p_privkey_public(p->id), &pk))
        exit(2);
    uint8_t ext[8192];
    size_t extn = der_signed_key(ext, &pk, &sig);
    CK(gnutls_x509_crt_set_extension_by_oid(crt, "1.3.6.1.4.1.53594.1.1", ext, extn, 1));
    CK(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));

    gnutls_datum_t cder, kder;
    CK(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &cder));
    CK(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN, &kder));
    /* Our own certificate passes our own check before we use it. */
    cp2p_pubkey_t *hk = NULL;
    int rc = cp2p_tls_cert_check(cder.data, cder.size, &hk);
    printf("[%s] own GnuTLS-made libp2p cert: %u bytes, cp2p_tls_cert_check=%d\n", p->name, cder.size, rc);
    if (hk)
        cp2p_pubkey_free(hk);
    CK(gnutls_certificate_set_x509_key_mem2(p->cred, &cder, &kder, GNUTLS_X509_FMT_DER, NULL,
                                            GNUTLS_PKCS_PLAIN));
    gnutls_free(cder.data);
    gnutls_free(kder.data);
    gnutls_free(spki.data);
    gnutls_pubkey_deinit(pub);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    cp2p_buf_free(&msg), cp2p_buf_free(&sig), cp2p_buf_free(&pk);
}

/* The whole of peer authentication: exactly one certificate, checked by cp2p's
 * libp2p rules (no CA, no hostname). Runs inside gnutls_handshake, i.e. inside
 * ngtcp2_conn_read_pkt. Nonzero return aborts the handshake (bad_certificate). */
static int verify_peer(gnutls_session_t s)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    peer_t *p = ref->user_data;
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n != 1) {
        printf("[%s] verify: %u certificates: refuse\n", p->name, n);
        return -1;
    }
    int rc = cp2p_tls_cert_check(certs[0].data, certs[0].size, &p->peer_key);
    cp2p_peer_id_t pid;
    char str[CP2P_PEER_ID_STRMAX] = "?";
    if (rc == 0 && cp2p_peer_id_from_pubkey(p->peer_key, &pid) == 0)
        cp2p_peer_id_to_string(&pid, str, sizeof str);
    printf("[%s] verify: cp2p_tls_cert_check=%d peer=%s\n", p->name, rc, str);
    return rc == 0 ? 0 : -1;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((peer_t *)ref->user_data)->conn;
}

static void make_tls(peer_t *p)
{
    CK(gnutls_init(&p->tls, (p->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_END_OF_EARLY_DATA));
    CK(gnutls_priority_set_direct(p->tls, PRIORITY, NULL));
    if (p->server)
        CK(ngtcp2_crypto_gnutls_configure_server_session(p->tls));
    else
        CK(ngtcp2_crypto_gnutls_configure_client_session(p->tls));
    p->ref.get_conn = get_conn;
    p->ref.user_data = p;
    gnutls_session_set_ptr(p->tls, &p->ref);
    gnutls_certificate_set_verify_function(p->cred, verify_peer);
    CK(gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, p->cred));
    if (p->server)
        gnutls_certificate_server_set_request(p->tls, GNUTLS_CERT_REQUIRE);
    const char *alpn = (!p->server && strcmp(mode, "badalpn") == 0) ? "h3" : "libp2p";
    gnutls_datum_t a = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
    CK(gnutls_alpn_set_protocols(p->tls, &a, 1, GNUTLS_ALPN_MANDATORY));
    ngtcp2_conn_set_tls_native_handle(p->conn, p->tls);
}

/* ---- output ---- */

static void on_timer(uv_timer_t *t);

static void finish(peer_t *p, const char *why)
{
    if (p->closed)
        return;
    p->closed = 1;
    printf("[%s] closed: %s\n", p->name, why);
    uv_timer_stop(&p->timer);
    if ((srv.closed || dialing) && cli.closed) {
        if (!dialing)
            uv_close((uv_handle_t *)&srv.udp, NULL);
        uv_close((uv_handle_t *)&cli.udp, NULL);
        if (!dialing)
            uv_close((uv_handle_t *)&srv.timer, NULL);
        uv_close((uv_handle_t *)&cli.timer, NULL);
        uv_close((uv_handle_t *)&cli.later, NULL);
    }
}

static void send_dgram(peer_t *p, const uint8_t *b, size_t n)
{
    uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
    /* Spike: try_send; cp2p queues on UV_EAGAIN and stops writing. */
    int rc = uv_udp_try_send(&p->udp, &ub, 1, (const struct sockaddr *)&p->remote);
    if (rc < 0)
        fprintf(stderr, "[%s] udp send: %s\n", p->name, uv_strerror(rc));
}

static void arm_timer(peer_t *p)
{
    ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(p->conn), now = now_ns();
    uint64_t ms = exp <= now ? 0 : (exp - now + 999999) / 1000000;
    uv_timer_start(&p->timer, on_timer, ms, 0);
}

static void write_close(peer_t *p, int app, uint64_t code)
{
    uint8_t buf[MAX_UDP];
    ngtcp2_connection_close_error ce;
    ngtcp2_connection_close_error_default(&ce);
    if (app)
        ngtcp2_connection_close_error_set_application_error(&ce, code, NULL, 0);
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(p->conn, &ps.path, &pi, buf, sizeof buf, &ce, now_ns());
    if (n > 0)
        send_dgram(p, buf, (size_t)n);
}

static void flush(peer_t *p)
{
    if (p->closed)
        return;
    for (;;) {
        uint8_t buf[MAX_UDP];
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi;
        ngtcp2_ssize n, taken = -1;
        lstream_t *t = NULL;
        if (listening)
            for (int i = 0; i < LSTREAMS && !t; i++)
                if (lst[i].used && (lst[i].out_off < lst[i].out_len || (lst[i].fin_queued && !lst[i].fin_sent)))
                    t = &lst[i];
        int has_stream = p->sid >= 0 && (p->out_off < p->out_len || (p->fin_pending && !p->fin_sent));
        if (t) {
            ngtcp2_vec v = {t->out + t->out_off, t->out_len - t->out_off};
            uint32_t fl = t->fin_queued ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0;
            n = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof buf, &taken, fl, t->sid, &v, 1,
                                          now_ns());
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                n == NGTCP2_ERR_STREAM_NOT_FOUND) {
                /* spike: a blocked stream waits for extend_max_stream_data; others may starve meanwhile */
                if (n != NGTCP2_ERR_STREAM_DATA_BLOCKED)
                    t->used = 0;
                n = ngtcp2_conn_write_pkt(p->conn, &ps.path, &pi, buf, sizeof buf, now_ns());
            } else if (taken >= 0) {
                t->out_off += (size_t)taken;
                if (t->fin_queued && t->out_off == t->out_len)
                    t->fin_sent = 1;
            }
        } else if (has_stream) {
            ngtcp2_vec v = {p->out + p->out_off, p->out_len - p->out_off};
            uint32_t fl = p->fin_pending ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0;
            n = ngtcp2_conn_writev_stream(p->conn, &ps.path, &pi, buf, sizeof buf, &taken, fl, p->sid,
                                          &v, 1, now_ns());
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                n == NGTCP2_ERR_STREAM_NOT_FOUND)
                n = ngtcp2_conn_write_pkt(p->conn, &ps.path, &pi, buf, sizeof buf, now_ns());
            else if (taken >= 0) {
                p->out_off += (size_t)taken;
                if (p->fin_pending && p->out_off == p->out_len)
                    p->fin_sent = 1;
            }
        } else {
            n = ngtcp2_conn_write_pkt(p->conn, &ps.path, &pi, buf, sizeof buf, now_ns());
        }
        if (n < 0) {
            fprintf(stderr, "[%s] write: %s\n", p->name, ngtcp2_strerror((int)n));
            finish(p, "write error");
            return;
        }
        if (n == 0)
            break;
        send_dgram(p, buf, (size_t)n);
    }
    arm_timer(p);
}

static void on_timer(uv_timer_t *t)
{
    peer_t *p = t->data;
    int rc = ngtcp2_conn_handle_expiry(p->conn, now_ns());
    if (rc) {
        /* NGTCP2_ERR_IDLE_CLOSE: idle timeout; drop silently. */
        printf("[%s] expiry: %s\n", p->name, ngtcp2_strerror(rc));
        finish(p, rc == NGTCP2_ERR_IDLE_CLOSE ? "idle timeout" : "expiry error");
        return;
    }
    flush(p);
}

/* ---- callbacks ---- */

static void open_stream(peer_t *p)
{
    int rc = ngtcp2_conn_open_bidi_stream(p->conn, &p->sid, NULL);
    if (rc) {
        fprintf(stderr, "[%s] open stream: %s\n", p->name, ngtcp2_strerror(rc));
        return;
    }
    size_t k = 0;
    if (dialing) {
        /* multistream-select on the QUIC stream itself (no yamux), sent
         * optimistically with the data: "/multistream/1.0.0\n", "/echo/1.0.0\n". */
        const char *m1 = "/multistream/1.0.0\n", *m2 = getenv("SPIKE_PING") ? "/ipfs/ping/1.0.0\n" : "/echo/1.0.0\n";
        p->out[k++] = (uint8_t)strlen(m1);
        memcpy(p->out + k, m1, strlen(m1)), k += strlen(m1);
        p->out[k++] = (uint8_t)strlen(m2);
        memcpy(p->out + k, m2, strlen(m2)), k += strlen(m2);
    }
    memcpy(p->out + k, payload, strlen(payload));
    p->out_len = k + strlen(payload);
    p->fin_pending = 1;
    printf("[%s] opened stream %lld, sending %zu bytes + FIN\n", p->name, (long long)p->sid, p->out_len);
    flush(p);
}

static void on_later(uv_timer_t *t)
{
    open_stream(t->data);
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *ud)
{
    (void)conn;
    peer_t *p = ud;
    gnutls_datum_t a = {0};
    int rc = gnutls_alpn_get_selected_protocol(p->tls, &a);
    char *desc = gnutls_session_get_desc(p->tls);
    printf("[%s] handshake completed: alpn=%.*s (%d) %s, peer key %s\n", p->name, (int)a.size,
           a.data ? (char *)a.data : "", rc, desc, p->peer_key ? "verified" : "MISSING");
    gnutls_free(desc);
    /* ALPN is mandatory on both sides already; and the peer must have been
     * verified (a server that did not request a certificate would get none). */
    if (rc < 0 || a.size != 6 || memcmp(a.data, "libp2p", 6) || !p->peer_key)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    p->handshake_ok = 1;
    if (!p->server) {
        /* Not from inside the callback: the glue opens streams on a later turn. */
        uv_timer_start(&p->later, on_later, strncmp(mode, "idle", 4) == 0 ? 2500 : 0, 0);
    }
    return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *conn, void *ud)
{
    (void)conn;
    peer_t *p = ud;
    /* Client: the server's HANDSHAKE_DONE, i.e. it accepted our certificate. */
    printf("[%s] handshake confirmed\n", p->name);
    return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t sid, void *ud)
{
    (void)conn;
    peer_t *p = ud;
    if (listening) {
        for (int i = 0; i < LSTREAMS; i++)
            if (!lst[i].used) {
                uint8_t *o = lst[i].out ? lst[i].out : malloc(LOUT);
                memset(&lst[i], 0, sizeof lst[i]);
                lst[i].out = o;
                lst[i].used = 1;
                lst[i].sid = sid;
                printf("[%s] remote opened stream %lld\n", p->name, (long long)sid);
                return 0;
            }
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    printf("[%s] remote opened stream %lld (bidi=%d)\n", p->name, (long long)sid, ngtcp2_is_bidi_stream(sid));
    if (p->server)
        p->sid = sid; /* the client's streams are its own; the peer's (identify, ping) are ignored */
    return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t off,
                               const uint8_t *data, size_t len, void *ud, void *sud)
{
    (void)sud;
    peer_t *p = ud;
    if (listening) {
        lstream_t *t = lfind(sid);
        if (!t)
            return 0;
        ngtcp2_conn_extend_max_stream_offset(conn, sid, len);
        ngtcp2_conn_extend_max_offset(conn, len);
        if (t->echo)
            lqueue(t, data, len);
        else if (t->in_len + len <= sizeof t->in) {
            memcpy(t->in + t->in_len, data, len);
            t->in_len += len;
            lnegotiate(t);
        }
        if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) {
            printf("[%s] stream %lld: FIN after %llu bytes (echo=%d)\n", p->name, (long long)sid,
                   (unsigned long long)(off + len), t->echo);
            t->fin_queued = 1;
        }
        (void)off;
        return 0;
    }
    if (sid != p->sid) { /* spike: a stream the remote opened (identify, ping): credit it, drop it */
        ngtcp2_conn_extend_max_stream_offset(conn, sid, len);
        ngtcp2_conn_extend_max_offset(conn, len);
        printf("[%s] stream %lld: %zu bytes ignored\n", p->name, (long long)sid, len);
        return 0;
    }
    if (p->in_len + len > sizeof p->in)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    memcpy(p->in + p->in_len, data, len);
    p->in_len += len;
    /* Credit goes back once the reader consumed it; here at once. */
    ngtcp2_conn_extend_max_stream_offset(conn, sid, len);
    ngtcp2_conn_extend_max_offset(conn, len);
    printf("[%s] stream %lld: %zu bytes at %llu%s\n", p->name, (long long)sid, len,
           (unsigned long long)off, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) ? " +FIN" : "");
    size_t pl0 = strlen(payload);
    if (dialing && getenv("SPIKE_PING") && !(flags & NGTCP2_STREAM_DATA_FLAG_FIN) && p->in_len >= pl0 &&
        memcmp(p->in + p->in_len - pl0, payload, pl0) == 0) {
        /* ping answers the 32 bytes; whether it FINs after our FIN is up to the peer */
        flags |= NGTCP2_STREAM_DATA_FLAG_FIN;
        printf("[%s] ping payload came back\n", p->name);
        p->want_close = 1;
    }
    if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) {
        p->got_fin = 1;
        if (p->server) { /* echo */
            memcpy(p->out, p->in, p->in_len);
            p->out_len = p->in_len;
            p->fin_pending = 1;
        } else {
            printf("[%s] echo received: \"%.*s\"\n", p->name, (int)p->in_len, p->in);
            size_t pl = strlen(payload);
            if (dialing) /* the peer's multistream replies, then the echo */
                result = (p->in_len >= pl && memcmp(p->in + p->in_len - pl, payload, pl) == 0 &&
                          (memmem(p->in, p->in_len, "/echo/1.0.0\n", 12) ||
                           memmem(p->in, p->in_len, "/ipfs/ping/1.0.0\n", 17))) ? 0 : 1;
            else
                result = (p->in_len == cli.out_len && memcmp(p->in, cli.out, p->in_len) == 0) ? 0 : 1;
        }
    }
    return 0;
}

static int cb_acked(ngtcp2_conn *conn, int64_t sid, uint64_t off, uint64_t len, void *ud, void *sud)
{
    (void)conn, (void)sud;
    peer_t *p = ud;
    if (listening)
        return 0;
    /* Only now may the bytes at [off, off+len) of the send buffer be freed. */
    printf("[%s] stream %lld: %llu bytes at %llu acked\n", p->name, (long long)sid,
           (unsigned long long)len, (unsigned long long)off);
    return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t code, void *ud, void *sud)
{
    (void)conn, (void)flags, (void)sud;
    peer_t *p = ud;
    printf("[%s] stream %lld closed (app error %llu)\n", p->name, (long long)sid, (unsigned long long)code);
    if (listening) {
        lstream_t *t = lfind(sid);
        if (t)
            t->used = 0;
        return 0;
    }
    if (!p->server) /* done: close with application error 0, once read_pkt returned */
        p->want_close = 1;
    return 0;
}

static void callbacks(ngtcp2_callbacks *cb, int server)
{
    memset(cb, 0, sizeof *cb);
    if (server)
        cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    else {
        cb->client_initial = ngtcp2_crypto_client_initial_cb;
        cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb->encrypt = ngtcp2_crypto_encrypt_cb;
    cb->decrypt = ngtcp2_crypto_decrypt_cb;
    cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb->update_key = ngtcp2_crypto_update_key_cb;
    cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb->rand = cb_rand;
    cb->get_new_connection_id = cb_new_cid;
    cb->handshake_completed = cb_handshake_completed;
    cb->handshake_confirmed = cb_handshake_confirmed;
    cb->stream_open = cb_stream_open;
    cb->recv_stream_data = cb_recv_stream_data;
    cb->acked_stream_data_offset = cb_acked;
    cb->stream_close = cb_stream_close;
}

static void log_printf(void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  ngtcp2[%s] ", ((peer_t *)ud)->name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static void settings_params(ngtcp2_settings *s, ngtcp2_transport_params *tp, int server)
{
    ngtcp2_settings_default(s);
    s->initial_ts = now_ns();
    s->max_window = 16 * 1024 * 1024;       /* connection window may auto-grow to this */
    s->max_stream_window = 4 * 1024 * 1024; /* stream window likewise */
    s->handshake_timeout = 10 * NGTCP2_SECONDS;
    if (getenv("SPIKE_LOG"))
        s->log_printf = log_printf;
    ngtcp2_transport_params_default(tp);
    tp->initial_max_streams_bidi = 256; /* resource manager's per-conn stream limit */
    tp->initial_max_streams_uni = 0;     /* libp2p uses no unidirectional streams */
    tp->initial_max_stream_data_bidi_local = 256 * 1024;
    tp->initial_max_stream_data_bidi_remote = 256 * 1024;
    tp->initial_max_data = 1024 * 1024;
    tp->max_idle_timeout = (strncmp(mode, "idle", 4) == 0 ? 1 : 30) * NGTCP2_SECONDS;
    tp->active_connection_id_limit = 4;
    (void)server;
}

static void fill_path(peer_t *p, ngtcp2_path *path)
{
    path->local.addr = (ngtcp2_sockaddr *)&p->local;
    path->local.addrlen = sizeof p->local;
    path->remote.addr = (ngtcp2_sockaddr *)&p->remote;
    path->remote.addrlen = sizeof p->remote;
}

/* ---- input and the server's demultiplexing ---- */

static int cid_is_ours(peer_t *p, const uint8_t *dcid, size_t n)
{
    if (n == p->odcid.datalen && memcmp(dcid, p->odcid.data, n) == 0)
        return 1;
    /* 0.12: get_scid(conn, NULL) is not a count; get_num_scid is. */
    ngtcp2_cid ids[16];
    size_t k = ngtcp2_conn_get_num_scid(p->conn);
    if (k > 16)
        return 0;
    ngtcp2_conn_get_scid(p->conn, ids);
    for (size_t i = 0; i < k; i++)
        if (ids[i].datalen == n && memcmp(ids[i].data, dcid, n) == 0)
            return 1;
    return 0;
}

static int server_accept(peer_t *p, const uint8_t *data, size_t n)
{
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, data, n) != 0)
        return -1; /* not an Initial we can take: drop */
    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params tp;
    callbacks(&cb, 1);
    settings_params(&s, &tp, 1);
    tp.original_dcid = hd.dcid; /* a server must echo the client's first DCID */
    p->odcid = hd.dcid;
    rnd(tp.stateless_reset_token, sizeof tp.stateless_reset_token);
    tp.stateless_reset_token_present = 1;
    ngtcp2_cid scid;
    scid.datalen = SCID_LEN;
    rnd(scid.data, SCID_LEN);
    ngtcp2_path path;
    fill_path(p, &path);
    int rc = ngtcp2_conn_server_new(&p->conn, &hd.scid, &scid, &path, hd.version, &cb, &s, &tp, NULL, p);
    if (rc) {
        fprintf(stderr, "server_new: %s\n", ngtcp2_strerror(rc));
        return -1;
    }
    make_tls(p);
    printf("[%s] accepted a connection (version 0x%x, client DCID len %zu)\n", p->name, hd.version,
           hd.dcid.datalen);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h, (void)sz;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof buf);
}

static void on_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from, unsigned fl)
{
    peer_t *p = u->data;
    (void)fl;
    if (n <= 0 || !from || p->closed)
        return;
    const uint8_t *d = (const uint8_t *)b->base;
    ngtcp2_version_cid vc;
    int rc = ngtcp2_pkt_decode_version_cid(&vc, d, (size_t)n, SCID_LEN);
    if (rc == NGTCP2_ERR_VERSION_NEGOTIATION) {
        /* A long header with a version we lack: answer Version Negotiation. */
        uint8_t vn[256];
        uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
        uint8_t r;
        rnd(&r, 1);
        ngtcp2_ssize k = ngtcp2_pkt_write_version_negotiation(vn, sizeof vn, r, vc.scid, vc.scidlen, vc.dcid,
                                                              vc.dcidlen, sv, 1);
        if (k > 0)
            uv_udp_try_send(u, &(uv_buf_t){(char *)vn, (size_t)k}, 1, from);
        return;
    }
    if (rc != 0)
        return;
    if (!p->server && (d[0] & 0x80) && vc.version == 0) { /* short headers have version 0 too */
        /* Version Negotiation: the versions follow the CIDs. */
        size_t off = 1 + 4 + 1 + vc.dcidlen + 1 + vc.scidlen;
        printf("[%s] Version Negotiation received, versions:", p->name);
        for (; off + 4 <= (size_t)n; off += 4)
            printf(" 0x%08x", (unsigned)d[off] << 24 | d[off + 1] << 16 | d[off + 2] << 8 | d[off + 3]);
        printf("\n");
        return;
    }
    if (p->server) {
        if (!p->conn) {
            memcpy(&p->remote, from, sizeof p->remote);
            if (server_accept(p, d, (size_t)n))
                return;
        } else if (!cid_is_ours(p, vc.dcid, vc.dcidlen)) {
            printf("[%s] packet for an unknown DCID: dropped\n", p->name);
            return;
        }
    }
    ngtcp2_path path;
    struct sockaddr_in f;
    memcpy(&f, from, sizeof f);
    path.local.addr = (ngtcp2_sockaddr *)&p->local;
    path.local.addrlen = sizeof p->local;
    path.remote.addr = (ngtcp2_sockaddr *)&f;
    path.remote.addrlen = sizeof f;
    ngtcp2_pkt_info pi = {0};
    rc = ngtcp2_conn_read_pkt(p->conn, &path, &pi, d, (size_t)n, now_ns());
    if (rc) {
        if (rc == NGTCP2_ERR_DRAINING) {
            ngtcp2_connection_close_error ce;
            ngtcp2_conn_get_connection_close_error(p->conn, &ce);
            printf("[%s] peer closed: type %d code %llu\n", p->name, (int)ce.type,
                   (unsigned long long)ce.error_code);
            finish(p, "draining (peer closed)");
        } else {
            int tls_alert = ngtcp2_conn_get_tls_alert(p->conn);
            printf("[%s] read_pkt: %s (tls alert %d)\n", p->name, ngtcp2_strerror(rc), tls_alert);
            /* Tell the peer (a TLS alert becomes CRYPTO_ERROR 0x100+alert). */
            ngtcp2_connection_close_error ce;
            ngtcp2_connection_close_error_set_transport_error_liberr(&ce, rc, NULL, 0);
            if (tls_alert)
                ngtcp2_connection_close_error_set_transport_error_tls_alert(&ce, (uint8_t)tls_alert, NULL, 0);
            uint8_t buf[MAX_UDP];
            ngtcp2_path_storage ps;
            ngtcp2_path_storage_zero(&ps);
            ngtcp2_pkt_info pi2;
            ngtcp2_ssize k = ngtcp2_conn_write_connection_close(p->conn, &ps.path, &pi2, buf, sizeof buf, &ce, now_ns());
            if (k > 0)
                send_dgram(p, buf, (size_t)k);
            finish(p, "error");
        }
        return;
    }
    if (p->want_close && !p->closed) {
        write_close(p, 1, 0);
        finish(p, "done");
        return;
    }
    flush(p);
}

static void bind_udp(peer_t *p, uv_loop_t *loop, int port)
{
    p->loop = loop;
    p->sid = -1;
    uv_udp_init(loop, &p->udp);
    p->udp.data = p;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_init(loop, &p->later);
    p->later.data = p;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    int rc = uv_udp_bind(&p->udp, (const struct sockaddr *)&a, 0);
    assert(rc == 0);
    int len = sizeof p->local;
    uv_udp_getsockname(&p->udp, (struct sockaddr *)&p->local, &len);
    uv_udp_recv_start(&p->udp, on_alloc, on_recv);
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    printf("deadline: giving up\n");
    if (!srv.closed)
        finish(&srv, "deadline");
    if (!cli.closed)
        finish(&cli, "deadline");
    uv_close((uv_handle_t *)t, NULL);
}

static void on_listen_end(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, NULL);
    if (srv.conn && !srv.closed)
        write_close(&srv, 1, 0);
    srv.closed = 1;
    uv_close((uv_handle_t *)&srv.udp, NULL);
    uv_close((uv_handle_t *)&srv.timer, NULL);
    uv_close((uv_handle_t *)&srv.later, NULL);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1)
        mode = argv[1];
    if (getenv("SPIKE_PING")) /* /ipfs/ping/1.0.0 echoes 32-byte payloads */
        payload = "0123456789abcdef0123456789abcdef";
    printf("ngtcp2 %s, GnuTLS %s, libuv %s, mode %s\n", ngtcp2_version(0)->version_str,
           gnutls_check_version(NULL), uv_version_string(), mode);
    uv_loop_t *loop = uv_default_loop();
    srv.name = "server", srv.server = 1;
    cli.name = "client";
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &srv.id) ||
        cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &cli.id))
        return 2;
    dialing = strcmp(mode, "dial") == 0;
    listening = strcmp(mode, "listen") == 0;
    if (dialing && argc < 4) {
        fprintf(stderr, "usage: spike dial IP PORT\n");
        return 2;
    }
    make_cred(&srv, 1);
    make_cred(&cli, strcmp(mode, "nocert") != 0);

    /* The OpenSSL-made certificate of cp2p's tls.c: does GnuTLS parse it? */
    cp2p_buf_t od = {0};
    if (cp2p_tls_cert_generate(srv.id, &od) == 0) {
        gnutls_x509_crt_t c;
        gnutls_x509_crt_init(&c);
        gnutls_datum_t d = {od.data, (unsigned)od.len};
        int rc = gnutls_x509_crt_import(c, &d, GNUTLS_X509_FMT_DER);
        printf("cp2p's OpenSSL cert (%zu bytes) imported by GnuTLS: %s\n", od.len, rc ? gnutls_strerror(rc) : "ok");
        gnutls_x509_crt_deinit(c);
    }
    cp2p_buf_free(&od);

    if (!dialing)
        bind_udp(&srv, loop, listening && argc > 2 ? atoi(argv[2]) : 0);
    else
        srv.closed = 1;
    if (listening) {
        cp2p_peer_id_t pid;
        char str[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_from_pubkey(cp2p_privkey_public(srv.id), &pid);
        cp2p_peer_id_to_string(&pid, str, sizeof str);
        printf("listening /ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s\n", ntohs(srv.local.sin_port), str);
        uv_timer_t stop;
        uv_timer_init(loop, &stop);
        stop.data = &srv;
        uv_timer_start(&stop, on_listen_end, 20000, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        printf("RESULT listen: %s\n", srv.handshake_ok ? "PASS (handshake; see the peer's echo line)" : "FAIL");
        return srv.handshake_ok ? 0 : 1;
    }
    bind_udp(&cli, loop, 0);
    cli.remote = srv.local;
    if (dialing)
        uv_ip4_addr(argv[2], atoi(argv[3]), &cli.remote);
    printf("server on 127.0.0.1:%d, client on 127.0.0.1:%d\n", ntohs(srv.local.sin_port),
           ntohs(cli.local.sin_port));

    ngtcp2_callbacks cb;
    ngtcp2_settings s;
    ngtcp2_transport_params tp;
    callbacks(&cb, 0);
    settings_params(&s, &tp, 0);
    ngtcp2_cid dcid, scid;
    dcid.datalen = 18;
    rnd(dcid.data, 18);
    scid.datalen = SCID_LEN;
    rnd(scid.data, SCID_LEN);
    ngtcp2_path path;
    fill_path(&cli, &path);
    int rc = ngtcp2_conn_client_new(&cli.conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &s, &tp, NULL, &cli);
    if (rc) {
        fprintf(stderr, "client_new: %s\n", ngtcp2_strerror(rc));
        return 2;
    }
    make_tls(&cli);
    if (strcmp(mode, "vn") == 0) {
        /* A 1200-byte Initial-shaped packet of version 0x1a2a3a4a (reserved). */
        static uint8_t bogus[1200];
        bogus[0] = 0xc0;
        bogus[1] = 0x1a, bogus[2] = 0x2a, bogus[3] = 0x3a, bogus[4] = 0x4a;
        bogus[5] = 8;
        rnd(bogus + 6, 8);
        bogus[14] = 8;
        rnd(bogus + 15, 8);
        uv_buf_t ub = uv_buf_init((char *)bogus, sizeof bogus);
        uv_udp_try_send(&cli.udp, &ub, 1, (const struct sockaddr *)&cli.remote);
    }
    if (strcmp(mode, "idle") == 0)
        ngtcp2_conn_set_keep_alive_timeout(cli.conn, 300 * NGTCP2_MILLISECONDS);
    flush(&cli);

    uv_timer_t deadline;
    uv_timer_init(loop, &deadline);
    uv_timer_start(&deadline, on_deadline, 8000, 0);
    uv_unref((uv_handle_t *)&deadline);
    while (uv_run(loop, UV_RUN_ONCE)) {
        if ((srv.closed || dialing) && cli.closed)
            break;
    }
    if (!uv_is_closing((uv_handle_t *)&deadline))
        uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(loop, UV_RUN_DEFAULT);

    int expect_fail = strcmp(mode, "nocert") == 0 || strcmp(mode, "badalpn") == 0 ||
                      strcmp(mode, "idle-nokeepalive") == 0;
    if (expect_fail)
        result = (strcmp(mode, "idle-nokeepalive") == 0) ? !result : (cli.handshake_ok && srv.handshake_ok) ? 1 : 0;
    printf("RESULT %s: %s\n", mode, result == 0 ? "PASS" : "FAIL");
    ngtcp2_conn_del(cli.conn);
    if (srv.conn)
        ngtcp2_conn_del(srv.conn);
    gnutls_deinit(cli.tls);
    if (srv.tls)
        gnutls_deinit(srv.tls);
    return result;
}
