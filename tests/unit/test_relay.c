/* Circuit relay v2 end to end on loopback (src/protocols/relay.c,
 * relay_client.c): reserve, listen on and dial /p2p-circuit addresses, an
 * echo through the circuit, the data limit enforced, NO_RESERVATION, and the
 * relay's limits under a reservation flood and a circuit flood. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "host_harness.h"
#include "cp2p/relay.h"
#include "protocols/relay_msg.h"

#define MAX_HOSTS 12

typedef struct peer {
    cp2p_host_t *h;
    cp2p_relay_client_t *rc;
    int reserved, failed, lost, last_status, last_voucher;
} peer_t;

static void on_relay_event(const cp2p_relay_event_t *ev, void *arg)
{
    peer_t *p = arg;
    if (ev->type == CP2P_RELAY_RESERVED)
        p->reserved++;
    else if (ev->type == CP2P_RELAY_RESERVE_FAILED)
        p->failed++;
    else
        p->lost++;
    p->last_status = ev->status;
    p->last_voucher = ev->voucher;
}

static void peer_new(world_t *w, peer_t *p)
{
    memset(p, 0, sizeof *p);
    p->h = host_new(w, NULL);
    cp2p_relay_client_config_t cfg = {.on_event = on_relay_event, .event_arg = p};
    assert_int_equal(cp2p_relay_client_enable(p->h, &cfg, &p->rc), 0);
    assert_int_equal(cp2p_host_set_handler(p->h, ECHO_PROTO, echo_handler, NULL), 0);
}

static void peer_end(world_t *w, peer_t *p)
{
    int done = 0;
    cp2p_relay_client_close(p->rc, set_flag, &done);
    world_run_until(w, &done, 5000);
    host_close_wait(w, p->h);
}

typedef struct relay_node {
    cp2p_host_t *h;
    cp2p_relay_t *r;
    cp2p_multiaddr_t addr; /* /ip4/127.0.0.1/tcp/P/p2p/R */
} relay_node_t;

static void relay_new(world_t *w, relay_node_t *n, const cp2p_relay_config_t *cfg)
{
    n->h = host_new(w, NULL);
    assert_int_equal(cp2p_relay_start(n->h, cfg, &n->r), 0);
    unsigned port;
    host_listen(n->h, &port, &n->addr);
}

static void relay_end(world_t *w, relay_node_t *n)
{
    int done = 0;
    cp2p_relay_close(n->r, set_flag, &done);
    world_run_until(w, &done, 5000);
    host_close_wait(w, n->h);
    cp2p_multiaddr_free(&n->addr);
}

/* "<relay>/p2p-circuit[/p2p/<target>]" */
static void circuit_addr(const relay_node_t *n, const cp2p_host_t *target, cp2p_multiaddr_t *out)
{
    cp2p_buf_t s = {0};
    assert_int_equal(cp2p_multiaddr_to_string(&n->addr, &s), 0);
    char txt[512], id[CP2P_PEER_ID_STRMAX] = "";
    if (target)
        cp2p_peer_id_to_string(cp2p_host_peer_id(target), id, sizeof id);
    snprintf(txt, sizeof txt, "%s/p2p-circuit%s%s", (char *)s.data, target ? "/p2p/" : "", id);
    cp2p_buf_free(&s);
    assert_int_equal(cp2p_multiaddr_parse(txt, out), 0);
}

static void reserve(world_t *w, relay_node_t *n, peer_t *p)
{
    cp2p_multiaddr_t l;
    circuit_addr(n, NULL, &l);
    int before = p->reserved + p->failed;
    assert_int_equal(cp2p_host_listen(p->h, &l), 0);
    cp2p_multiaddr_free(&l);
    while (p->reserved + p->failed == before)
        world_run_until_n(w, &p->reserved, p->reserved + 1, 10000);
}

static int has_circuit_addr(cp2p_host_t *h)
{
    cp2p_multiaddr_t *addrs;
    size_t n;
    int found = 0;
    assert_int_equal(cp2p_host_listen_addrs(h, &addrs, &n), 0);
    cp2p_multiaddr_component_t c;
    for (size_t i = 0; i < n; i++)
        found |= cp2p_multiaddr_get(&addrs[i], CP2P_MA_P2P_CIRCUIT, &c) == 0;
    cp2p_multiaddr_array_free(addrs, n);
    return found;
}

static void test_circuit_echo(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r, NULL);
    peer_t a, b;
    peer_new(&w, &a);
    peer_new(&w, &b);
    assert_false(has_circuit_addr(a.h));
    reserve(&w, &r, &a);
    assert_int_equal(a.reserved, 1);
    assert_int_equal(a.last_voucher, 1); /* signed by the relay, for a */
    assert_true(has_circuit_addr(a.h));
    cp2p_peer_id_t relays[2];
    assert_int_equal(cp2p_relay_client_relays(a.rc, relays, 2), 1);
    assert_true(cp2p_peer_id_equal(&relays[0], cp2p_host_peer_id(r.h)));

    cp2p_multiaddr_t to;
    circuit_addr(&r, a.h, &to);
    cp2p_peer_id_t who;
    assert_int_equal(host_connect_wait_peer(&w, b.h, &to, &who), 0);
    cp2p_multiaddr_free(&to);
    assert_true(cp2p_peer_id_equal(&who, cp2p_host_peer_id(a.h)));
    cp2p_conn_t *c = cp2p_host_conn_to(b.h, &who);
    assert_non_null(c);
    assert_true(cp2p_conn_is_relayed(c));
    assert_false(cp2p_conn_is_inbound(c));
    /* under the 128 KiB limit, with Noise and yamux on top */
    echo_roundtrip(&w, b.h, &who, 64 * 1024);
    cp2p_conn_t *ca = cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h));
    assert_non_null(ca);
    assert_true(cp2p_conn_is_relayed(ca) && cp2p_conn_is_inbound(ca));
    /* the direct connection to the relay is not relayed */
    assert_false(cp2p_conn_is_relayed(cp2p_host_conn_to(b.h, cp2p_host_peer_id(r.h))));

    cp2p_relay_stats_t st;
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.reservations, 1);
    assert_int_equal(st.circuits, 1);
    assert_int_equal(st.circuits_opened, 1);
    assert_true(st.bytes_relayed > 2 * 64 * 1024);

    /* A reservation lasts while its peer is connected. */
    peer_t c2;
    peer_new(&w, &c2);
    reserve(&w, &r, &c2);
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.reservations, 2);
    peer_end(&w, &c2);
    world_run_for(&w, 100);
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.reservations, 1);

    /* The relay going away takes the reservation and the circuit with it. */
    relay_end(&w, &r);
    world_run_until_n(&w, &a.lost, 1, 5000);
    assert_false(has_circuit_addr(a.h));
    world_run_for(&w, 200);
    assert_null(cp2p_host_conn_to(b.h, &who));
    peer_end(&w, &a);
    peer_end(&w, &b);
    world_end(&w);
}

static void test_data_limit(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    cp2p_relay_config_t cfg = {.limit_data = 32 * 1024};
    relay_new(&w, &r, &cfg);
    peer_t a, b;
    peer_new(&w, &a);
    peer_new(&w, &b);
    reserve(&w, &r, &a);
    cp2p_multiaddr_t to;
    circuit_addr(&r, a.h, &to);
    assert_int_equal(host_connect_wait(&w, b.h, &to), 0);
    cp2p_multiaddr_free(&to);
    client_t c;
    client_start(b.h, cp2p_host_peer_id(a.h), &c, 256 * 1024);
    world_run_until(&w, &c.finished, 10000);
    assert_true(c.received < 32 * 1024);
    assert_true(c.read_status != CP2P_ECLOSED || c.received < c.total);
    if (c.s)
        cp2p_stream_unref(c.s);
    cp2p_relay_stats_t st;
    world_run_for(&w, 100);
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.circuits_limited, 1);
    assert_int_equal(st.circuits, 0);
    assert_true(st.bytes_relayed <= 2 * 32 * 1024);
    peer_end(&w, &a);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

static void test_duration_limit(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    cp2p_relay_config_t cfg = {.limit_duration_s = 1};
    relay_new(&w, &r, &cfg);
    peer_t a, b;
    peer_new(&w, &a);
    peer_new(&w, &b);
    reserve(&w, &r, &a);
    cp2p_multiaddr_t to;
    circuit_addr(&r, a.h, &to);
    assert_int_equal(host_connect_wait(&w, b.h, &to), 0);
    cp2p_multiaddr_free(&to);
    assert_non_null(cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h)));
    world_run_for(&w, 500);
    assert_non_null(cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h)));
    world_run_for(&w, 1500); /* the relay resets the circuit at 1 s; the connection goes */
    assert_null(cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h)));
    cp2p_relay_stats_t st;
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.circuits_limited, 1);
    assert_int_equal(st.circuits, 0);
    /* the reservation outlives its circuits */
    assert_int_equal(st.reservations, 1);
    peer_end(&w, &a);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* A peer known at a circuit and a direct address is dialled directly. */
static void test_direct_first(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r, NULL);
    peer_t a, b;
    peer_new(&w, &a);
    peer_new(&w, &b);
    unsigned port;
    cp2p_multiaddr_t direct;
    host_listen(a.h, &port, &direct);
    reserve(&w, &r, &a);
    cp2p_multiaddr_t to;
    circuit_addr(&r, a.h, &to);
    /* b learns both: the circuit from its dial, the direct one put by hand
     * after it (as identify would, later) */
    assert_int_equal(host_connect_wait(&w, b.h, &to), 0);
    cp2p_multiaddr_free(&to);
    cp2p_conn_t *c = cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h));
    assert_true(c && cp2p_conn_is_relayed(c));
    cp2p_multiaddr_decapsulate_code(&direct, CP2P_MA_P2P);
    assert_int_equal(cp2p_peerstore_add_addrs(cp2p_host_peerstore(b.h), cp2p_host_peer_id(a.h),
                                              &direct, 1, CP2P_TTL_ADDRESS, uv_now(&w.loop)), 0);
    cp2p_multiaddr_free(&direct);
    cp2p_conn_close(c);
    world_run_for(&w, 100);
    assert_null(cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h)));
    connect_result_t res = {0};
    assert_int_equal(cp2p_host_connect_peer(b.h, cp2p_host_peer_id(a.h), on_connect_result, &res), 0);
    world_run_until(&w, &res.done, 5000);
    assert_int_equal(res.status, 0);
    c = cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h));
    assert_true(c && !cp2p_conn_is_relayed(c));
    peer_end(&w, &a);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* The client refreshes its reservation before it expires. */
static void test_refresh(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    cp2p_relay_config_t cfg = {.reservation_ttl_s = 2};
    relay_new(&w, &r, &cfg);
    peer_t a;
    peer_new(&w, &a);
    reserve(&w, &r, &a);
    world_run_until_n(&w, &a.reserved, 2, 5000); /* refreshed with a quarter left */
    cp2p_relay_stats_t st;
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.reservations, 1);
    assert_true(st.reservations_accepted >= 2);
    assert_int_equal(a.lost + a.failed, 0);
    assert_true(has_circuit_addr(a.h));
    peer_end(&w, &a);
    relay_end(&w, &r);
    world_end(&w);
}

static void test_no_reservation(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r, NULL);
    peer_t a, b;
    peer_new(&w, &a);
    peer_new(&w, &b);
    /* a is connected to the relay but holds no reservation */
    assert_int_equal(host_connect_wait(&w, a.h, &r.addr), 0);
    cp2p_multiaddr_t to;
    circuit_addr(&r, a.h, &to);
    assert_int_equal(host_connect_wait(&w, b.h, &to), CP2P_ENORESERVATION);
    /* a circuit address with no target cannot be dialled */
    cp2p_multiaddr_free(&to);
    circuit_addr(&r, NULL, &to);
    connect_result_t res = {0};
    int rc = cp2p_host_connect(b.h, &to, on_connect_result, &res);
    if (rc == 0) {
        world_run_until(&w, &res.done, 5000);
        rc = res.status;
    }
    assert_true(rc < 0);
    cp2p_multiaddr_free(&to);
    cp2p_relay_stats_t st;
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.circuits_refused, 1);
    peer_end(&w, &a);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* The attack: more identities reserve than the relay holds, more circuits
 * are asked for than it opens; it refuses the excess and serves the rest. */
static void test_floods(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    world_t w;
    world_init(&w);
    relay_node_t r;
    cp2p_relay_config_t cfg = {.max_reservations = 4, .max_circuits_per_peer = 2};
    relay_new(&w, &r, &cfg);
    peer_t p[8];
    int ok = 0, refused = 0;
    for (int i = 0; i < 8; i++) {
        peer_new(&w, &p[i]);
        cp2p_multiaddr_t l;
        circuit_addr(&r, NULL, &l);
        assert_int_equal(cp2p_host_listen(p[i].h, &l), 0);
        cp2p_multiaddr_free(&l);
    }
    for (int i = 0; i < 8; i++) {
        while (!p[i].reserved && !p[i].failed)
            world_run_for(&w, 20);
        ok += p[i].reserved > 0;
        refused += p[i].failed > 0;
        if (p[i].failed)
            assert_int_equal(p[i].last_status, 200); /* RESERVATION_REFUSED */
    }
    assert_int_equal(ok, 4);
    assert_int_equal(refused, 4);
    cp2p_relay_stats_t st;
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.reservations, 4);
    assert_true(st.reservations_refused >= 4);

    /* Three dialers to one reserved peer: two circuits, then RESOURCE_LIMIT_EXCEEDED. */
    peer_t *target = NULL;
    for (int i = 0; i < 8 && !target; i++)
        if (p[i].reserved)
            target = &p[i];
    peer_t *dialers[3];
    int nd = 0;
    for (int i = 0; i < 8 && nd < 3; i++)
        if (&p[i] != target)
            dialers[nd++] = &p[i];
    cp2p_multiaddr_t to;
    circuit_addr(&r, target->h, &to);
    assert_int_equal(host_connect_wait(&w, dialers[0]->h, &to), 0);
    assert_int_equal(host_connect_wait(&w, dialers[1]->h, &to), 0);
    assert_int_equal(host_connect_wait(&w, dialers[2]->h, &to), CP2P_ELIMIT);
    cp2p_multiaddr_free(&to);
    /* and the relay goes on serving the circuits it took */
    echo_roundtrip(&w, dialers[0]->h, cp2p_host_peer_id(target->h), 16 * 1024);
    echo_roundtrip(&w, dialers[1]->h, cp2p_host_peer_id(target->h), 16 * 1024);
    cp2p_relay_stats(r.r, &st);
    assert_int_equal(st.circuits, 2);
    for (int i = 0; i < 8; i++)
        peer_end(&w, &p[i]);
    relay_end(&w, &r);
    world_end(&w);
}

/* A hop stream that speaks garbage, or announces a message over the 4 KiB
 * cap, gets MALFORMED_MESSAGE and its stream ends; the relay goes on. */
typedef struct raw_hop {
    cp2p_stream_t *s;
    cp2p_buf_t in;
    int opened, ended, end_status;
    const uint8_t *send;
    size_t send_len;
} raw_hop_t;

static void raw_hop_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    raw_hop_t *r = arg;
    if (status == 0) {
        cp2p_buf_append(&r->in, p, n);
        return;
    }
    r->ended = 1;
    r->end_status = status;
}

static void raw_hop_opened(int status, cp2p_stream_t *s, void *arg)
{
    raw_hop_t *r = arg;
    r->opened = 1;
    assert_int_equal(status, 0);
    r->s = s;
    assert_int_equal(cp2p_stream_write(s, r->send, r->send_len, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(s, raw_hop_read, r), 0);
}

static int raw_hop_status(world_t *w, cp2p_host_t *from, cp2p_host_t *relay, const uint8_t *send,
                          size_t n)
{
    static const char *const proto[] = {CP2P_RELAY_HOP_PROTOCOL_ID};
    raw_hop_t r = {.send = send, .send_len = n};
    assert_int_equal(cp2p_host_new_stream(from, cp2p_host_peer_id(relay), proto, 1, raw_hop_opened, &r), 0);
    world_run_until(w, &r.ended, 5000);
    size_t hdr, len;
    relay_msg_t m;
    assert_int_equal(relay_msg_frame(r.in.data, r.in.len, &hdr, &len), 1);
    assert_int_equal(relay_msg_decode(0, r.in.data + hdr, len, &m), 0);
    assert_int_equal(m.type, HOP_STATUS);
    int st = m.status;
    relay_msg_clear(&m);
    cp2p_buf_free(&r.in);
    cp2p_stream_unref(r.s);
    return st;
}

static void test_malformed_hop(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r, NULL);
    peer_t b;
    peer_new(&w, &b);
    assert_int_equal(host_connect_wait(&w, b.h, &r.addr), 0);
    static const uint8_t huge[] = {0x81, 0x20};             /* 4097 bytes announced */
    static const uint8_t junk[] = {0x03, 0xff, 0xff, 0xff}; /* not a protobuf */
    static const uint8_t status[] = {0x04, 0x08, 0x02, 0x28, 0x64}; /* STATUS from a client */
    assert_int_equal(raw_hop_status(&w, b.h, r.h, huge, sizeof huge), RELAY_MALFORMED_MESSAGE);
    assert_int_equal(raw_hop_status(&w, b.h, r.h, junk, sizeof junk), RELAY_MALFORMED_MESSAGE);
    assert_int_equal(raw_hop_status(&w, b.h, r.h, status, sizeof status), RELAY_UNEXPECTED_MESSAGE);
    /* and a good request after them is served */
    reserve(&w, &r, &b);
    assert_int_equal(b.reserved, 1);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* The attack: hop streams that never say what they want. Past the cap they
 * are reset at once, the rest at the handshake deadline, and a good request
 * is served after them. */
typedef struct silent {
    cp2p_stream_t *s;
    int opened, ended, status;
} silent_t;

static void silent_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    silent_t *q = arg;
    if (status < 0 && !q->ended) {
        q->ended = 1;
        q->status = status;
    }
}

static void silent_opened(int status, cp2p_stream_t *s, void *arg)
{
    silent_t *q = arg;
    q->opened = 1;
    q->status = status;
    q->s = s;
    if (status == 0)
        assert_int_equal(cp2p_stream_read_start(s, silent_read, q), 0);
    else
        q->ended = 1;
}

static void test_silent_hops(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    cp2p_relay_config_t cfg = {.max_reservations = 2, .max_circuits = 2,
                               .handshake_timeout_ms = 2500}; /* 8 may wait */
    relay_new(&w, &r, &cfg);
    peer_t b;
    peer_new(&w, &b);
    assert_int_equal(host_connect_wait(&w, b.h, &r.addr), 0);
    static const char *const proto[] = {CP2P_RELAY_HOP_PROTOCOL_ID};
    silent_t q[12];
    memset(q, 0, sizeof q);
    int ended = 0;
    for (int i = 0; i < 12; i++)
        assert_int_equal(cp2p_host_new_stream(b.h, cp2p_host_peer_id(r.h), proto, 1, silent_opened, &q[i]), 0);
    /* over the cap: reset at once; the others wait for the deadline */
    for (int t = 0; t < 100 && ended < 4; t++) {
        world_run_for(&w, 20);
        ended = 0;
        for (int i = 0; i < 12; i++)
            ended += q[i].ended;
    }
    assert_int_equal(ended, 4);
    for (int t = 0; t < 250 && ended < 12; t++) {
        world_run_for(&w, 20);
        ended = 0;
        for (int i = 0; i < 12; i++)
            ended += q[i].ended;
    }
    assert_int_equal(ended, 12);
    for (int i = 0; i < 12; i++)
        if (q[i].s)
            cp2p_stream_unref(q[i].s);
    reserve(&w, &r, &b);
    assert_int_equal(b.reserved, 1);
    peer_end(&w, &b);
    relay_end(&w, &r);
    world_end(&w);
}

/* No circuits of circuits: a relay refuses a reservation that comes over a
 * relayed connection (as go-libp2p does). */
static void test_no_chaining(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r;
    relay_new(&w, &r, NULL);
    peer_t p, x;
    peer_new(&w, &p);
    peer_new(&w, &x);
    cp2p_relay_t *xr; /* x is a relay too */
    assert_int_equal(cp2p_relay_start(x.h, NULL, &xr), 0);
    reserve(&w, &r, &p);
    cp2p_multiaddr_t to;
    circuit_addr(&r, p.h, &to);
    assert_int_equal(host_connect_wait(&w, x.h, &to), 0);
    cp2p_multiaddr_free(&to);
    /* p's only connection to x is the circuit: reserving on x goes over it */
    char txt[CP2P_PEER_ID_STRMAX + 8], id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_host_peer_id(x.h), id, sizeof id);
    snprintf(txt, sizeof txt, "/p2p/%s", id);
    cp2p_multiaddr_t xa;
    assert_int_equal(cp2p_multiaddr_parse(txt, &xa), 0);
    assert_int_equal(cp2p_relay_client_listen(p.rc, &xa), 0);
    cp2p_multiaddr_free(&xa);
    world_run_until_n(&w, &p.failed, 1, 5000);
    assert_int_equal(p.last_status, 202); /* PERMISSION_DENIED */
    cp2p_relay_stats_t st;
    cp2p_relay_stats(xr, &st);
    assert_int_equal(st.reservations, 0);
    assert_int_equal(st.reservations_refused, 1);
    int done = 0;
    cp2p_relay_close(xr, set_flag, &done);
    world_run_until(&w, &done, 5000);
    peer_end(&w, &p);
    peer_end(&w, &x);
    relay_end(&w, &r);
    world_end(&w);
}

/* AutoRelay over static relays: a reservation on the first, moved to the
 * next when it goes away; the circuit address follows. */
static void test_autorelay(void **state)
{
    world_t w;
    world_init(&w);
    relay_node_t r1, r2;
    relay_new(&w, &r1, NULL);
    relay_new(&w, &r2, NULL);
    cp2p_buf_t s1 = {0}, s2 = {0};
    assert_int_equal(cp2p_multiaddr_to_string(&r1.addr, &s1), 0);
    assert_int_equal(cp2p_multiaddr_to_string(&r2.addr, &s2), 0);
    const char *statics[] = {(char *)s1.data, (char *)s2.data};
    peer_t a;
    memset(&a, 0, sizeof a);
    a.h = host_new(&w, NULL);
    cp2p_relay_client_config_t cfg = {.on_event = on_relay_event, .event_arg = &a,
                                      .static_relays = statics, .n_static_relays = 2,
                                      .max_relays = 1};
    assert_int_equal(cp2p_relay_client_enable(a.h, &cfg, &a.rc), 0);
    cp2p_buf_free(&s1);
    cp2p_buf_free(&s2);
    world_run_for(&w, 300);
    assert_int_equal(a.reserved, 0); /* nothing before AutoRelay is started */
    assert_int_equal(cp2p_relay_autorelay_start(a.rc), 0);
    world_run_until_n(&w, &a.reserved, 1, 5000);
    cp2p_peer_id_t held[4];
    assert_int_equal(cp2p_relay_client_relays(a.rc, held, 4), 1);
    assert_true(cp2p_peer_id_equal(&held[0], cp2p_host_peer_id(r1.h)));
    assert_true(has_circuit_addr(a.h));

    /* the first relay goes: the reservation moves to the second */
    cp2p_peer_id_t id2 = *cp2p_host_peer_id(r2.h);
    relay_end(&w, &r1);
    world_run_until_n(&w, &a.lost, 1, 5000);
    world_run_until_n(&w, &a.reserved, 2, 5000);
    assert_int_equal(cp2p_relay_client_relays(a.rc, held, 4), 1);
    assert_true(cp2p_peer_id_equal(&held[0], &id2));
    assert_true(has_circuit_addr(a.h));

    /* and stopping AutoRelay lets it go */
    cp2p_relay_autorelay_stop(a.rc);
    assert_int_equal(cp2p_relay_client_relays(a.rc, held, 4), 0);
    assert_false(has_circuit_addr(a.h));
    peer_end(&w, &a);
    relay_end(&w, &r2);
    world_end(&w);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* circuits pass through socket pairs (cp2p/relay.h) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_circuit_echo),
        cmocka_unit_test(test_data_limit),
        cmocka_unit_test(test_duration_limit),
        cmocka_unit_test(test_direct_first),
        cmocka_unit_test(test_refresh),
        cmocka_unit_test(test_no_reservation),
        cmocka_unit_test(test_floods),
        cmocka_unit_test(test_malformed_hop),
        cmocka_unit_test(test_silent_hops),
        cmocka_unit_test(test_no_chaining),
        cmocka_unit_test(test_autorelay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
