/* Rendezvous: the codec against byte vectors and its caps, and a point with
 * clients on loopback: register, discover with cookies and pages, refusals
 * (TTL, namespace, cookie, someone else's record), limits under a flood of
 * identities, expiry, refresh before expiry, unregister on close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <uv.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"
#include "cp2p/rendezvous.h"
#include "discovery/rdv_msg.h"
#include "host_harness.h"

/* ---- codec ---- */

static void test_encode_register_vector(void **state)
{
    uint8_t rec[] = {1, 2, 3};
    rdv_msg_t m = {.type = RDV_REGISTER};
    m.reg.ns = "ns";
    m.reg.record = rec;
    m.reg.record_len = 3;
    m.reg.has_ttl = 1;
    m.reg.ttl = 7200;
    cp2p_buf_t b = {0};
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    const uint8_t want[] = {0x10, 0x08, 0x00, 0x12, 0x0c, 0x0a, 0x02, 'n', 's',
                            0x12, 0x03, 1,    2,    3,    0x18, 0xa0, 0x38};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    size_t hdr, len;
    assert_int_equal(rdv_frame(b.data, b.len, RDV_MAX_REQUEST, &hdr, &len), 0);
    assert_int_equal(hdr, 1);
    assert_int_equal(len, 16);
    assert_int_equal(rdv_frame(b.data, b.len - 1, RDV_MAX_REQUEST, &hdr, &len), CP2P_ETRUNC);
    assert_int_equal(rdv_frame(b.data, b.len, 15, &hdr, &len), CP2P_EOVERFLOW);
    rdv_msg_t d;
    assert_int_equal(rdv_msg_decode(b.data + 1, 16, &d), 0);
    assert_int_equal(d.type, RDV_REGISTER);
    assert_string_equal(d.reg.ns, "ns");
    assert_int_equal(d.reg.record_len, 3);
    assert_memory_equal(d.reg.record, rec, 3);
    assert_true(d.reg.has_ttl);
    assert_int_equal(d.reg.ttl, 7200);
    rdv_msg_free(&d);
    cp2p_buf_free(&b);
}

/* A DISCOVER_RESPONSE as rust-libp2p writes it: one registration, an 8-byte
 * cookie, status OK. */
static void test_decode_discover_response_vector(void **state)
{
    const uint8_t in[] = {0x08, 0x04, 0x32, 0x16, 0x0a, 0x08, 0x0a, 0x01, 'a',  0x12, 0x01, 0xff, 0x18,
                          0x05, 0x12, 0x08, 0,    0,    0,    0,    0,    0,    0,    1,    0x18, 0x00};
    rdv_msg_t m;
    assert_int_equal(rdv_msg_decode(in, sizeof in, &m), 0);
    assert_int_equal(m.type, RDV_DISCOVER_RESPONSE);
    assert_int_equal(m.status, RDV_S_OK);
    assert_int_equal(m.n_regs, 1);
    assert_string_equal(m.regs[0].ns, "a");
    assert_int_equal(m.regs[0].record_len, 1);
    assert_int_equal(m.regs[0].record[0], 0xff);
    assert_int_equal(m.regs[0].ttl, 5);
    assert_true(m.has_cookie);
    assert_int_equal(m.cookie_len, 8);
    assert_int_equal(m.cookie[7], 1);
    /* and back: the same bytes */
    cp2p_buf_t b = {0};
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    assert_int_equal(b.len, sizeof in + 1);
    assert_memory_equal(b.data + 1, in, sizeof in);
    cp2p_buf_free(&b);
    rdv_msg_free(&m);
}

static void test_decode_rejects(void **state)
{
    rdv_msg_t m;
    /* no type */
    const uint8_t no_type[] = {0x2a, 0x00};
    assert_int_equal(rdv_msg_decode(no_type, sizeof no_type, &m), CP2P_EPARSE);
    /* REGISTER without its sub-message */
    const uint8_t no_reg[] = {0x08, 0x00};
    assert_int_equal(rdv_msg_decode(no_reg, sizeof no_reg, &m), CP2P_EPARSE);
    /* an unknown type */
    const uint8_t bad_type[] = {0x08, 0x09};
    assert_int_equal(rdv_msg_decode(bad_type, sizeof bad_type, &m), CP2P_EPARSE);
    /* not protobuf */
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(rdv_msg_decode(junk, sizeof junk, &m), CP2P_EPARSE);
    /* a namespace of 256 bytes */
    rdv_msg_t u = {.type = RDV_UNREGISTER};
    char ns[257];
    memset(ns, 'x', 256);
    ns[256] = 0;
    u.ns = ns;
    cp2p_buf_t b = {0};
    assert_int_equal(rdv_msg_encode(&u, &b), 0);
    size_t hdr, len;
    assert_int_equal(rdv_frame(b.data, b.len, RDV_MAX_REQUEST, &hdr, &len), 0);
    assert_int_equal(rdv_msg_decode(b.data + hdr, len, &m), CP2P_EOVERFLOW);
    /* 255 is fine */
    ns[255] = 0;
    b.len = 0;
    assert_int_equal(rdv_msg_encode(&u, &b), 0);
    assert_int_equal(rdv_frame(b.data, b.len, RDV_MAX_REQUEST, &hdr, &len), 0);
    assert_int_equal(rdv_msg_decode(b.data + hdr, len, &m), 0);
    assert_int_equal(strlen(m.ns), 255);
    rdv_msg_free(&m);
    /* a record over the cap */
    rdv_msg_t r = {.type = RDV_REGISTER};
    uint8_t *big = calloc(1, RDV_MAX_RECORD + 1);
    r.reg.ns = "a";
    r.reg.record = big;
    r.reg.record_len = RDV_MAX_RECORD + 1;
    b.len = 0;
    assert_int_equal(rdv_msg_encode(&r, &b), 0);
    assert_int_equal(rdv_frame(b.data, b.len, RDV_MAX_REQUEST, &hdr, &len), 0);
    assert_int_equal(rdv_msg_decode(b.data + hdr, len, &m), CP2P_EOVERFLOW);
    free(big);
    /* a frame prefix that never ends */
    const uint8_t endless[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(rdv_frame(endless, sizeof endless, RDV_MAX_REQUEST, &hdr, &len), CP2P_EPARSE);
    cp2p_buf_free(&b);
}

/* ---- a point and clients on loopback ---- */

#define MAX_CLIENTS 12

typedef struct net {
    world_t w;
    cp2p_host_t *srv_host;
    cp2p_rendezvous_server_t *srv;
    cp2p_peer_id_t srv_id;
    cp2p_multiaddr_t srv_addr;
    cp2p_host_t *c[MAX_CLIENTS];
    cp2p_rendezvous_t *rz[MAX_CLIENTS];
    int n;
    struct reg_result *res; /* one per do_register: refreshes write there later */
    int n_res;
} net_t;

typedef struct reg_result {
    int done, status, code;
    uint64_t ttl;
} reg_result_t;

static void on_registered(int status, int code, uint64_t ttl, void *arg)
{
    reg_result_t *r = arg;
    r->done++;
    r->status = status;
    r->code = code;
    r->ttl = ttl;
}

typedef struct disc_result {
    int done, status, code;
    size_t n;
    cp2p_peer_id_t peers[64];
    size_t n_addrs[64];
    uint8_t cookie[RDV_MAX_COOKIE];
    size_t cookie_len;
} disc_result_t;

static void on_discovered(int status, int code, const cp2p_rendezvous_peer_t *peers, size_t n,
                          const uint8_t *cookie, size_t cookie_len, void *arg)
{
    disc_result_t *r = arg;
    r->done = 1;
    r->status = status;
    r->code = code;
    r->n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        r->peers[i] = peers[i].peer;
        r->n_addrs[i] = peers[i].n_addrs;
    }
    r->cookie_len = cookie_len;
    if (cookie_len)
        memcpy(r->cookie, cookie, cookie_len);
}

static void net_new(net_t *t, const cp2p_rendezvous_server_config_t *cfg, int clients)
{
    memset(t, 0, sizeof *t);
    t->res = calloc(64, sizeof *t->res);
    world_init(&t->w);
    t->srv_host = host_new(&t->w, NULL);
    t->srv_id = *cp2p_host_peer_id(t->srv_host);
    unsigned port;
    host_listen(t->srv_host, &port, &t->srv_addr);
    assert_int_equal(cp2p_rendezvous_server_new(t->srv_host, cfg, &t->srv), 0);
    t->n = clients;
    for (int i = 0; i < clients; i++) {
        t->c[i] = host_new(&t->w, NULL);
        unsigned p;
        host_listen(t->c[i], &p, NULL);
        assert_int_equal(host_connect_wait(&t->w, t->c[i], &t->srv_addr), 0);
        assert_int_equal(cp2p_rendezvous_new(t->c[i], &t->rz[i]), 0);
    }
}

static void net_end(net_t *t)
{
    int closed = 0, want = 0;
    for (int i = 0; i < t->n; i++)
        if (t->rz[i]) {
            cp2p_rendezvous_close(t->rz[i], count_up, &closed);
            want++;
        }
    world_run_until_n(&t->w, &closed, want, 10000);
    closed = 0;
    cp2p_rendezvous_server_close(t->srv, count_up, &closed);
    world_run_until_n(&t->w, &closed, 1, 10000);
    closed = 0;
    for (int i = 0; i < t->n; i++)
        cp2p_host_close(t->c[i], count_up, &closed);
    cp2p_host_close(t->srv_host, count_up, &closed);
    world_run_until_n(&t->w, &closed, t->n + 1, 10000);
    cp2p_multiaddr_free(&t->srv_addr);
    world_end(&t->w);
    free(t->res);
}

static reg_result_t do_register(net_t *t, int i, const char *ns, uint64_t ttl)
{
    assert_true(t->n_res < 64);
    reg_result_t *r = &t->res[t->n_res++];
    assert_int_equal(cp2p_rendezvous_register(t->rz[i], &t->srv_id, ns, ttl, on_registered, r), 0);
    assert_int_equal(r->done, 0); /* never inside the call */
    world_run_until(&t->w, &r->done, 10000);
    return *r;
}

static disc_result_t *do_discover(net_t *t, int i, const char *ns, uint64_t limit,
                                  const disc_result_t *prev)
{
    disc_result_t *r = calloc(1, sizeof *r);
    assert_int_equal(cp2p_rendezvous_discover(t->rz[i], &t->srv_id, ns, limit,
                                              prev ? prev->cookie : NULL,
                                              prev ? prev->cookie_len : 0, on_discovered, r),
                     0);
    assert_int_equal(r->done, 0);
    world_run_until(&t->w, &r->done, 10000);
    return r;
}

static int has_peer(const disc_result_t *r, cp2p_host_t *h)
{
    for (size_t i = 0; i < r->n; i++)
        if (cp2p_peer_id_equal(&r->peers[i], cp2p_host_peer_id(h)))
            return 1;
    return 0;
}

static void test_register_discover_connect(void **state)
{
    net_t t;
    cp2p_rendezvous_server_config_t cfg = {.min_ttl_s = 1};
    net_new(&t, &cfg, 3);
    reg_result_t r = do_register(&t, 0, "app", 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.ttl, CP2P_RENDEZVOUS_DEFAULT_TTL_S);

    disc_result_t *d = do_discover(&t, 1, "app", 0, NULL);
    assert_int_equal(d->status, 0);
    assert_int_equal(d->n, 1);
    assert_true(has_peer(d, t.c[0]));
    assert_true(d->n_addrs[0] >= 1);
    /* the addresses are in the peerstore: a connect by peer ID works */
    cp2p_multiaddr_t a[4];
    assert_true(cp2p_peerstore_addrs(cp2p_host_peerstore(t.c[1]), cp2p_host_peer_id(t.c[0]),
                                     uv_now(&t.w.loop), a, 4) >= 1);
    connect_result_t cr = {0};
    assert_int_equal(cp2p_host_connect_peer(t.c[1], cp2p_host_peer_id(t.c[0]), on_connect_result, &cr), 0);
    world_run_until(&t.w, &cr.done, 10000);
    assert_int_equal(cr.status, 0);

    /* the cookie: nothing new, then only the newcomer */
    disc_result_t *d2 = do_discover(&t, 1, "app", 0, d);
    assert_int_equal(d2->status, 0);
    assert_int_equal(d2->n, 0);
    r = do_register(&t, 2, "app", 60);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.ttl, 60);
    disc_result_t *d3 = do_discover(&t, 1, "app", 0, d2);
    assert_int_equal(d3->n, 1);
    assert_true(has_peer(d3, t.c[2]));
    /* pages of one: two pages, then none */
    disc_result_t *p1 = do_discover(&t, 1, "app", 1, NULL);
    assert_int_equal(p1->n, 1);
    assert_true(has_peer(p1, t.c[0]));
    disc_result_t *p2 = do_discover(&t, 1, "app", 1, p1);
    assert_int_equal(p2->n, 1);
    assert_true(has_peer(p2, t.c[2]));
    disc_result_t *p3 = do_discover(&t, 1, "app", 1, p2);
    assert_int_equal(p3->n, 0);
    /* every namespace; another namespace is empty */
    r = do_register(&t, 1, "other", 0);
    assert_int_equal(r.status, 0);
    disc_result_t *all = do_discover(&t, 0, NULL, 0, NULL);
    assert_int_equal(all->n, 3);
    disc_result_t *none = do_discover(&t, 0, "nobody", 0, NULL);
    assert_int_equal(none->status, 0);
    assert_int_equal(none->n, 0);
    /* a cookie of one namespace is refused for another */
    disc_result_t *bad = do_discover(&t, 1, "other", 0, d3);
    assert_int_equal(bad->status, CP2P_EREFUSED);
    assert_int_equal(bad->code, RDV_S_E_INVALID_COOKIE);

    /* unregister: gone from the point */
    assert_int_equal(cp2p_rendezvous_unregister(t.rz[2], &t.srv_id, "app"), 0);
    assert_int_equal(cp2p_rendezvous_unregister(t.rz[2], &t.srv_id, "app"), CP2P_ENOTFOUND);
    cp2p_rendezvous_server_stats_t st;
    for (int i = 0; i < 100; i++) {
        cp2p_rendezvous_server_stats(t.srv, &st);
        if (st.unregistered)
            break;
        world_run_for(&t.w, 20);
    }
    assert_int_equal(st.unregistered, 1);
    disc_result_t *after = do_discover(&t, 1, "app", 0, NULL);
    assert_int_equal(after->n, 1);
    assert_false(has_peer(after, t.c[2]));

    /* close unregisters what is kept */
    int closed = 0;
    cp2p_rendezvous_close(t.rz[0], count_up, &closed);
    t.rz[0] = NULL;
    assert_int_equal(closed, 0);
    world_run_until(&t.w, &closed, 10000);
    for (int i = 0; i < 100; i++) {
        cp2p_rendezvous_server_stats(t.srv, &st);
        if (st.unregistered == 2)
            break;
        world_run_for(&t.w, 20);
    }
    assert_int_equal(st.unregistered, 2);
    assert_int_equal(st.registrations, 1); /* c[1] under "other" */
    free(d), free(d2), free(d3), free(p1), free(p2), free(p3), free(all), free(none), free(bad);
    free(after);
    net_end(&t);
}

static void test_refusals(void **state)
{
    net_t t;
    cp2p_rendezvous_server_config_t cfg = {.min_ttl_s = 10, .max_ttl_s = 100, .max_per_peer = 2};
    net_new(&t, &cfg, 1);
    reg_result_t r = do_register(&t, 0, "a", 5);
    assert_int_equal(r.status, CP2P_EREFUSED);
    assert_int_equal(r.code, RDV_S_E_INVALID_TTL);
    r = do_register(&t, 0, "a", 101);
    assert_int_equal(r.code, RDV_S_E_INVALID_TTL);
    r = do_register(&t, 0, "a", 0); /* 2 h is over this point's 100 s */
    assert_int_equal(r.code, RDV_S_E_INVALID_TTL);
    r = do_register(&t, 0, "a", 50);
    assert_int_equal(r.status, 0);
    r = do_register(&t, 0, "b", 50);
    assert_int_equal(r.status, 0);
    r = do_register(&t, 0, "c", 50);
    assert_int_equal(r.status, CP2P_EREFUSED);
    assert_int_equal(r.code, RDV_S_E_UNAVAILABLE);
    /* a refresh is no new registration */
    r = do_register(&t, 0, "a", 60);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.ttl, 60);
    assert_int_equal(cp2p_rendezvous_register(t.rz[0], &t.srv_id, "", 50, NULL, NULL), CP2P_EINVAL);
    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.registrations, 2);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.namespaces, 2);
    assert_int_equal(st.refused_limit, 1);
    net_end(&t);
}

/* ---- raw requests: what a client of ours never sends ---- */

typedef struct raw {
    int done, status;
    cp2p_stream_t *s;
    cp2p_buf_t in;
    int reset;
} raw_t;

static void raw_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    raw_t *r = arg;
    if (status == 0) {
        cp2p_buf_append(&r->in, p, n);
        return;
    }
    r->reset = status != CP2P_ECLOSED;
    r->done = 1;
    cp2p_stream_unref(s);
    r->s = NULL;
}

static void raw_opened(int status, cp2p_stream_t *s, void *arg)
{
    raw_t *r = arg;
    r->status = status;
    r->s = s;
    r->done = status < 0;
}

/* Send bytes on a fresh stream, close our side, collect until the end. */
static void raw_request(net_t *t, int i, const uint8_t *p, size_t n, raw_t *r)
{
    static const char *const protos[] = {CP2P_RENDEZVOUS_PROTOCOL_ID};
    memset(r, 0, sizeof *r);
    assert_int_equal(cp2p_host_new_stream(t->c[i], &t->srv_id, protos, 1, raw_opened, r), 0);
    while (!r->s && !r->done)
        uv_run(&t->w.loop, UV_RUN_ONCE);
    assert_non_null(r->s);
    assert_int_equal(cp2p_stream_write(r->s, p, n, NULL, NULL), 0);
    cp2p_stream_close_write(r->s);
    cp2p_stream_read_start(r->s, raw_read, r);
    world_run_until(&t->w, &r->done, 10000);
}

static void test_forged_and_garbage(void **state)
{
    net_t t;
    net_new(&t, NULL, 1);
    /* a record signed by someone else: E_NOT_AUTHORIZED */
    cp2p_privkey_t *other;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &other), 0);
    cp2p_peer_record_t pr = {.seq = 1};
    cp2p_peer_id_from_pubkey(cp2p_privkey_public(other), &pr.peer_id);
    cp2p_buf_t env = {0}, b = {0};
    assert_int_equal(cp2p_peer_record_seal(other, &pr, &env), 0);
    rdv_msg_t m = {.type = RDV_REGISTER};
    m.reg.ns = "a";
    m.reg.record = env.data;
    m.reg.record_len = env.len;
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    raw_t r;
    raw_request(&t, 0, b.data, b.len, &r);
    size_t hdr, len;
    assert_int_equal(rdv_frame(r.in.data, r.in.len, RDV_MAX_RESPONSE, &hdr, &len), 0);
    rdv_msg_t a;
    assert_int_equal(rdv_msg_decode(r.in.data + hdr, len, &a), 0);
    assert_int_equal(a.type, RDV_REGISTER_RESPONSE);
    assert_int_equal(a.status, RDV_S_E_NOT_AUTHORIZED);
    rdv_msg_free(&a);
    cp2p_buf_free(&r.in);
    /* a record whose signature does not verify */
    env.data[env.len - 1] ^= 1;
    b.len = 0;
    m.reg.record = env.data;
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    raw_request(&t, 0, b.data, b.len, &r);
    assert_int_equal(rdv_frame(r.in.data, r.in.len, RDV_MAX_RESPONSE, &hdr, &len), 0);
    assert_int_equal(rdv_msg_decode(r.in.data + hdr, len, &a), 0);
    assert_int_equal(a.status, RDV_S_E_INVALID_SIGNED_PEER_RECORD);
    rdv_msg_free(&a);
    cp2p_buf_free(&r.in);
    /* an empty namespace */
    m.reg.ns = "";
    b.len = 0;
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    raw_request(&t, 0, b.data, b.len, &r);
    assert_int_equal(rdv_frame(r.in.data, r.in.len, RDV_MAX_RESPONSE, &hdr, &len), 0);
    assert_int_equal(rdv_msg_decode(r.in.data + hdr, len, &a), 0);
    assert_int_equal(a.status, RDV_S_E_INVALID_NAMESPACE);
    rdv_msg_free(&a);
    cp2p_buf_free(&r.in);
    /* garbage: the stream is reset */
    const uint8_t junk[] = {0x03, 0xff, 0xff, 0xff};
    raw_request(&t, 0, junk, sizeof junk, &r);
    assert_true(r.reset);
    assert_int_equal(r.in.len, 0);
    cp2p_buf_free(&r.in);
    /* a frame announcing a megabyte: reset before it comes */
    const uint8_t huge[] = {0x80, 0x80, 0x40};
    raw_request(&t, 0, huge, sizeof huge, &r);
    assert_true(r.reset);
    cp2p_buf_free(&r.in);
    /* a response sent as a request */
    rdv_msg_t resp = {.type = RDV_REGISTER_RESPONSE};
    b.len = 0;
    assert_int_equal(rdv_msg_encode(&resp, &b), 0);
    raw_request(&t, 0, b.data, b.len, &r);
    assert_true(r.reset);
    cp2p_buf_free(&r.in);
    /* two DISCOVERs in one write: two answers, in order */
    rdv_msg_t q = {.type = RDV_DISCOVER, .ns = "a"};
    b.len = 0;
    assert_int_equal(rdv_msg_encode(&q, &b), 0);
    assert_int_equal(rdv_msg_encode(&q, &b), 0);
    raw_request(&t, 0, b.data, b.len, &r);
    assert_false(r.reset);
    assert_int_equal(rdv_frame(r.in.data, r.in.len, RDV_MAX_RESPONSE, &hdr, &len), 0);
    assert_true(r.in.len > hdr + len);
    assert_int_equal(rdv_frame(r.in.data + hdr + len, r.in.len - hdr - len, RDV_MAX_RESPONSE, &hdr,
                               &len), 0);
    cp2p_buf_free(&r.in);

    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.registrations, 0);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.bad_messages, 3);
    assert_int_equal(st.discovers, 2);
    cp2p_buf_free(&env);
    cp2p_buf_free(&b);
    cp2p_privkey_free(other);
    net_end(&t);
}

/* Many identities fill a namespace: the namespace's cap holds, the total and
 * the bytes stay within theirs, and a good peer registered before keeps being
 * found and can still register elsewhere. */
static void test_flood_of_identities(void **state)
{
    net_t t;
    cp2p_rendezvous_server_config_t cfg = {.max_per_namespace = 4, .max_total = 8};
    net_new(&t, &cfg, MAX_CLIENTS);
    reg_result_t r = do_register(&t, 0, "flood", 0);
    assert_int_equal(r.status, 0);
    int refused = 0;
    for (int i = 1; i < MAX_CLIENTS; i++) {
        r = do_register(&t, i, "flood", 0);
        if (r.status == CP2P_EREFUSED && r.code == RDV_S_E_UNAVAILABLE)
            refused++;
        else
            assert_int_equal(r.status, 0);
    }
    assert_int_equal(refused, MAX_CLIENTS - 4);
    /* the flood spreads over namespaces: the total holds */
    for (int i = 1; i < MAX_CLIENTS; i++)
        do_register(&t, i, "flood2", 0);
    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.registrations, 8);
    assert_true(st.bytes <= CP2P_RENDEZVOUS_DEFAULT_MAX_BYTES);
    /* the good peer is still found, and refreshing is no new registration */
    disc_result_t *d = do_discover(&t, 1, "flood", 0, NULL);
    assert_int_equal(d->status, 0);
    assert_true(has_peer(d, t.c[0]));
    r = do_register(&t, 0, "flood", 0);
    assert_int_equal(r.status, 0);
    free(d);
    net_end(&t);
}

static void test_expiry_and_refresh(void **state)
{
    net_t t;
    cp2p_rendezvous_server_config_t cfg = {.min_ttl_s = 1};
    net_new(&t, &cfg, 2);
    /* c0 registers for 1 s by hand (no client to refresh it): the sweep
     * drops it */
    cp2p_peer_record_t pr = {.peer_id = *cp2p_host_peer_id(t.c[0]), .seq = 1};
    cp2p_buf_t env = {0}, b = {0};
    assert_int_equal(cp2p_peer_record_seal(cp2p_host_identity(t.c[0]), &pr, &env), 0);
    rdv_msg_t m = {.type = RDV_REGISTER};
    m.reg.ns = "short";
    m.reg.record = env.data;
    m.reg.record_len = env.len;
    m.reg.has_ttl = 1;
    m.reg.ttl = 1;
    assert_int_equal(rdv_msg_encode(&m, &b), 0);
    raw_t raw;
    raw_request(&t, 0, b.data, b.len, &raw);
    assert_false(raw.reset);
    cp2p_buf_free(&raw.in);
    cp2p_buf_free(&env);
    cp2p_buf_free(&b);
    disc_result_t *d0 = do_discover(&t, 1, "short", 0, NULL);
    assert_int_equal(d0->n, 1);
    free(d0);
    /* c1 registers for 2 s and is kept alive by its client */
    reg_result_t k = {0};
    assert_int_equal(cp2p_rendezvous_register(t.rz[1], &t.srv_id, "kept", 2, on_registered, &k), 0);
    world_run_for(&t.w, 3600);
    assert_true(k.done >= 2); /* registered, then refreshed at 1.5 s (and 3 s) */
    assert_int_equal(k.status, 0);
    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.expired, 1);
    disc_result_t *d = do_discover(&t, 1, NULL, 0, NULL);
    assert_int_equal(d->n, 1);
    assert_true(has_peer(d, t.c[1]));
    assert_true(st.registered >= 3);
    free(d);
    net_end(&t);
}

/* rust-libp2p's envelope: taken by the point, read by our client, and a
 * peer that registers in it is not sent standard records it cannot read. */
static void test_legacy_records(void **state)
{
    net_t t;
    net_new(&t, NULL, 3);
    assert_int_equal(cp2p_rendezvous_set_record_format(t.rz[0], CP2P_RENDEZVOUS_RECORD_LEGACY), 0);
    assert_int_equal(cp2p_rendezvous_set_record_format(t.rz[0], 7), CP2P_EINVAL);
    reg_result_t r = do_register(&t, 0, "mixed", 0);
    assert_int_equal(r.status, 0);
    r = do_register(&t, 1, "mixed", 0);
    assert_int_equal(r.status, 0);
    /* a standard reader sees both */
    disc_result_t *d = do_discover(&t, 2, "mixed", 0, NULL);
    assert_int_equal(d->n, 2);
    assert_true(has_peer(d, t.c[0]));
    /* c2 keeps the standard record in its peerstore, not the legacy one */
    size_t rl = 0;
    assert_null(cp2p_peerstore_record(cp2p_host_peerstore(t.c[2]), cp2p_host_peer_id(t.c[0]), &rl, NULL));
    assert_non_null(cp2p_peerstore_record(cp2p_host_peerstore(t.c[2]), cp2p_host_peer_id(t.c[1]), &rl, NULL));
    /* the legacy one sees the legacy one only */
    disc_result_t *l = do_discover(&t, 0, "mixed", 0, NULL);
    assert_int_equal(l->status, 0);
    assert_int_equal(l->n, 1);
    assert_true(has_peer(l, t.c[0]));
    /* the legacy record round trip */
    cp2p_peer_record_t pr = {.peer_id = *cp2p_host_peer_id(t.c[0]), .seq = 9};
    cp2p_buf_t env = {0};
    assert_int_equal(rdv_record_seal(cp2p_host_identity(t.c[0]), &pr, 1, &env), 0);
    cp2p_peer_record_t back = {0};
    assert_int_not_equal(cp2p_peer_record_open(env.data, env.len, &back, NULL), 0);
    int legacy = 0;
    assert_int_equal(rdv_record_open(env.data, env.len, &back, &legacy), 0);
    assert_true(legacy);
    assert_int_equal(back.seq, 9);
    cp2p_peer_record_clear(&back);
    cp2p_buf_free(&env);
    free(d);
    free(l);
    net_end(&t);
}

/* A new listen address goes to the point without waiting for the TTL. */
static void test_new_address_registers_again(void **state)
{
    net_t t;
    net_new(&t, NULL, 2);
    reg_result_t r = do_register(&t, 0, "moving", 0);
    assert_int_equal(r.status, 0);
    disc_result_t *d = do_discover(&t, 1, "moving", 0, NULL);
    assert_int_equal(d->n, 1);
    size_t before = d->n_addrs[0];
    free(d);
    unsigned port;
    host_listen(t.c[0], &port, NULL);
    reg_result_t *res = &t.res[t.n_res - 1];
    world_run_until_n(&t.w, &res->done, 2, 5000);
    d = do_discover(&t, 1, "moving", 0, NULL);
    assert_int_equal(d->n, 1);
    assert_int_equal(d->n_addrs[0], before + 1);
    free(d);
    net_end(&t);
}

static void raw_ignore(int status, cp2p_stream_t *s, void *arg)
{
    raw_t *r = arg;
    r->status = status;
    r->s = s;
    r->done = 1;
}

/* A client that asks and never reads: the point answers as far as the
 * stream's window goes, then reads no more requests (one answer of ours
 * waits, not a hundred). */
static void test_slow_reader(void **state)
{
    net_t t;
    net_new(&t, NULL, 1);
    /* 32 namespaces, each with a record of ~6 KiB: an answer for all of
     * them is ~200 KiB */
    cp2p_peer_record_t pr = {.peer_id = *cp2p_host_peer_id(t.c[0]), .seq = 1};
    char name[256];
    for (int i = 0; i < 30; i++) {
        char ma[300];
        memset(name, 'a' + i % 26, 200);
        name[200] = 0;
        snprintf(ma, sizeof ma, "/dns4/%s/tcp/%d", name, 1000 + i);
        cp2p_multiaddr_t m;
        assert_int_equal(cp2p_multiaddr_parse(ma, &m), 0);
        assert_int_equal(cp2p_peer_record_add_addr(&pr, m.bytes, m.len), 0);
        cp2p_multiaddr_free(&m);
    }
    cp2p_buf_t env = {0}, b = {0};
    assert_int_equal(cp2p_peer_record_seal(cp2p_host_identity(t.c[0]), &pr, &env), 0);
    cp2p_peer_record_clear(&pr);
    assert_true(env.len > 6000 && env.len <= CP2P_RENDEZVOUS_MAX_RECORD);
    for (int i = 0; i < 32; i++) {
        rdv_msg_t m = {.type = RDV_REGISTER};
        snprintf(name, sizeof name, "ns%d", i);
        m.reg.ns = name;
        m.reg.record = env.data;
        m.reg.record_len = env.len;
        b.len = 0;
        assert_int_equal(rdv_msg_encode(&m, &b), 0);
        raw_t r;
        raw_request(&t, 0, b.data, b.len, &r);
        assert_false(r.reset);
        cp2p_buf_free(&r.in);
    }
    cp2p_rendezvous_server_stats_t st;
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.registrations, 32);
    /* 100 DISCOVERs of everything in one write, and no reading */
    rdv_msg_t q = {.type = RDV_DISCOVER};
    b.len = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(rdv_msg_encode(&q, &b), 0);
    static const char *const protos[] = {CP2P_RENDEZVOUS_PROTOCOL_ID};
    raw_t r = {0};
    assert_int_equal(cp2p_host_new_stream(t.c[0], &t.srv_id, protos, 1, raw_ignore, &r), 0);
    world_run_until(&t.w, &r.done, 10000);
    assert_int_equal(r.status, 0);
    assert_int_equal(cp2p_stream_write(r.s, b.data, b.len, NULL, NULL), 0);
    world_run_for(&t.w, 1000);
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_true(st.discovers >= 1);
    assert_true(st.discovers <= 3);
    uint64_t held = st.discovers;
    world_run_for(&t.w, 500);
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.discovers, held);
    cp2p_stream_reset(r.s);
    cp2p_stream_unref(r.s);
    world_run_for(&t.w, 100);
    /* the point goes on serving */
    disc_result_t *d = do_discover(&t, 0, "ns7", 0, NULL);
    assert_int_equal(d->status, 0);
    assert_int_equal(d->n, 1);
    free(d);
    cp2p_buf_free(&env);
    cp2p_buf_free(&b);
    net_end(&t);
}

typedef struct reentrant {
    cp2p_rendezvous_t *rz;
    cp2p_peer_id_t point;
    int calls, closed;
} reentrant_t;

static void unregister_in_cb(int status, int code, uint64_t ttl, void *arg)
{
    reentrant_t *x = arg;
    x->calls++;
    assert_int_equal(status, 0);
    assert_int_equal(cp2p_rendezvous_unregister(x->rz, &x->point, "re"), 0);
}

static void close_in_cb(int status, int code, uint64_t ttl, void *arg)
{
    reentrant_t *x = arg;
    x->calls++;
    cp2p_rendezvous_close(x->rz, set_flag, &x->closed);
}

/* A register callback that unregisters, or closes the client, from inside:
 * nothing of the registration is touched after it (ASan watches). */
static void test_reentrant_callbacks(void **state)
{
    net_t t;
    net_new(&t, NULL, 1);
    reentrant_t x = {.rz = t.rz[0], .point = t.srv_id};
    assert_int_equal(cp2p_rendezvous_register(t.rz[0], &t.srv_id, "re", 0, unregister_in_cb, &x), 0);
    world_run_until(&t.w, &x.calls, 10000);
    cp2p_rendezvous_server_stats_t st;
    for (int i = 0; i < 100; i++) {
        cp2p_rendezvous_server_stats(t.srv, &st);
        if (st.unregistered)
            break;
        world_run_for(&t.w, 20);
    }
    assert_int_equal(st.unregistered, 1);
    x.calls = 0;
    assert_int_equal(cp2p_rendezvous_register(t.rz[0], &t.srv_id, "re2", 0, close_in_cb, &x), 0);
    world_run_until(&t.w, &x.closed, 10000);
    assert_int_equal(x.calls, 1);
    t.rz[0] = NULL;
    net_end(&t);
}

/* Identities are free; addresses are not: five peers from one address, a
 * point that allows three registrations per address. */
static void test_per_ip(void **state)
{
    net_t t;
    cp2p_rendezvous_server_config_t cfg = {.max_per_ip = 3, .limit_loopback = 1};
    net_new(&t, &cfg, 5);
    int refused = 0;
    for (int i = 0; i < 5; i++) {
        reg_result_t r = do_register(&t, i, "crowd", 0);
        if (r.status == CP2P_EREFUSED && r.code == RDV_S_E_UNAVAILABLE)
            refused++;
        else
            assert_int_equal(r.status, 0);
    }
    assert_int_equal(refused, 2);
    /* a refresh of one held is no new registration; one gone makes room */
    reg_result_t r = do_register(&t, 0, "crowd", 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(cp2p_rendezvous_unregister(t.rz[0], &t.srv_id, "crowd"), 0);
    cp2p_rendezvous_server_stats_t st;
    for (int i = 0; i < 100; i++) {
        cp2p_rendezvous_server_stats(t.srv, &st);
        if (st.unregistered)
            break;
        world_run_for(&t.w, 20);
    }
    r = do_register(&t, 4, "crowd2", 0);
    assert_int_equal(r.status, 0);
    cp2p_rendezvous_server_stats(t.srv, &st);
    assert_int_equal(st.registrations, 3);
    net_end(&t);
}

/* ---- a hostile point ---- */

typedef struct hostile {
    int mode; /* 0: a frame announcing 2 MiB; 1: the wrong answer type; 2: garbage */
} hostile_t;

static void hostile_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    hostile_t *h = arg;
    if (status < 0) {
        cp2p_stream_unref(s);
        return;
    }
    cp2p_buf_t b = {0};
    if (h->mode == 0) {
        const uint8_t big[] = {0x80, 0x80, 0x80, 0x01, 0x08};
        cp2p_buf_append(&b, big, sizeof big);
    } else if (h->mode == 1) {
        rdv_msg_t m = {.type = RDV_REGISTER_RESPONSE};
        rdv_msg_encode(&m, &b);
    } else {
        const uint8_t junk[] = {0x02, 0xff, 0xff};
        cp2p_buf_append(&b, junk, sizeof junk);
    }
    cp2p_stream_write(s, b.data, b.len, NULL, NULL);
    cp2p_buf_free(&b);
    cp2p_stream_close_write(s); /* read on until the client lets go */
}

static void hostile_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_stream_read_start(s, hostile_read, arg);
}

static void test_hostile_point(void **state)
{
    net_t t;
    net_new(&t, NULL, 1);
    hostile_t h = {0};
    assert_int_equal(cp2p_host_set_handler(t.srv_host, CP2P_RENDEZVOUS_PROTOCOL_ID, hostile_handler, &h), 0);
    for (h.mode = 0; h.mode < 3; h.mode++) {
        disc_result_t *d = do_discover(&t, 0, "x", 0, NULL);
        assert_int_equal(d->status, CP2P_EPROTO);
        free(d);
    }
    net_end(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_register_vector),
        cmocka_unit_test(test_decode_discover_response_vector),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_register_discover_connect),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_forged_and_garbage),
        cmocka_unit_test(test_flood_of_identities),
        cmocka_unit_test(test_expiry_and_refresh),
        cmocka_unit_test(test_legacy_records),
        cmocka_unit_test(test_per_ip),
        cmocka_unit_test(test_reentrant_callbacks),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_new_address_registers_again),
        cmocka_unit_test(test_hostile_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
