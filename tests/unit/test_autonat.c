/* AutoNAT v1: the codec (wire vectors, size caps), the server's decisions
 * (the observed-IP rule against third-party dial-backs, private addresses,
 * the rate limits), the client's confidence, and hosts on loopback that find
 * themselves public (a listener the server can dial) or private (an
 * advertised port nobody listens on), with a raw client flooding requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cp2p/autonat.h"
#include "cp2p/identify.h"
#include "host_harness.h"
#include "protocols/autonat_engine.h"

/* An identity-multihash peer ID (Ed25519 protobuf key of 0x01 bytes). */
#define PID_BYTES 0x00, 0x24, 0x08, 0x01, 0x12, 0x20, \
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const uint8_t PID[] = {PID_BYTES};
/* /ip4/127.0.0.1/tcp/4242 */
#define ADDR_BYTES 0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92

/* Message{type=DIAL, dial{peer{id, addrs[/ip4/127.0.0.1/tcp/4242]}}} as go-libp2p writes it. */
static const uint8_t DIAL_VECTOR[] = {
    2 + 2 + 2 + 2 + 38 + 2 + 8,
    0x08, 0x00,
    0x12, 2 + 2 + 38 + 2 + 8,
    0x0a, 2 + 38 + 2 + 8,
    0x0a, 38, PID_BYTES,
    0x12, 8, ADDR_BYTES,
};
/* Message{type=DIAL_RESPONSE, dialResponse{status=OK, addr}} */
static const uint8_t OK_VECTOR[] = {
    2 + 2 + 2 + 2 + 8,
    0x08, 0x01,
    0x1a, 2 + 2 + 8,
    0x08, 0x00,
    0x1a, 8, ADDR_BYTES,
};

static void test_decode_vectors(void **state)
{
    cp2p_autonat_msg_t m;
    size_t used;
    assert_int_equal(cp2p_autonat_decode(DIAL_VECTOR, sizeof DIAL_VECTOR, &m, &used), 0);
    assert_int_equal(used, sizeof DIAL_VECTOR);
    assert_int_equal(m.type, 0);
    assert_true(m.has_dial && m.has_peer_id && !m.has_response);
    assert_int_equal(m.peer.len, sizeof PID);
    assert_memory_equal(m.peer.bytes, PID, sizeof PID);
    assert_int_equal(m.n_addrs, 1);
    cp2p_multiaddr_t want;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/4242", &want), 0);
    assert_true(cp2p_multiaddr_equal(&m.addrs[0], &want));
    /* Our encoder writes the same bytes. */
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_autonat_encode(&m, &b), 0);
    assert_int_equal(b.len, sizeof DIAL_VECTOR);
    assert_memory_equal(b.data, DIAL_VECTOR, b.len);
    cp2p_buf_free(&b);
    cp2p_autonat_msg_free(&m);

    assert_int_equal(cp2p_autonat_decode(OK_VECTOR, sizeof OK_VECTOR, &m, NULL), 0);
    assert_int_equal(m.type, 1);
    assert_true(m.has_response && !m.has_dial);
    assert_int_equal(m.status, CP2P_AUTONAT_OK);
    assert_true(cp2p_multiaddr_equal(&m.addr, &want));
    assert_int_equal(cp2p_autonat_encode(&m, &b), 0);
    assert_int_equal(b.len, sizeof OK_VECTOR);
    assert_memory_equal(b.data, OK_VECTOR, b.len);
    cp2p_buf_free(&b);
    cp2p_autonat_msg_free(&m);
    cp2p_multiaddr_free(&want);
}

static void test_decode_limits(void **state)
{
    cp2p_autonat_msg_t m;
    /* Every shorter prefix is incomplete, never an error. */
    for (size_t i = 0; i < sizeof DIAL_VECTOR; i++)
        assert_int_equal(cp2p_autonat_decode(DIAL_VECTOR, i, &m, NULL), CP2P_ETRUNC);
    /* A length over 4096 is refused before its bytes come. */
    const uint8_t big[] = {0x81, 0x20}; /* 4097 */
    assert_int_equal(cp2p_autonat_decode(big, sizeof big, &m, NULL), CP2P_EOVERFLOW);
    const uint8_t huge[] = {0xff, 0xff, 0xff};
    assert_int_equal(cp2p_autonat_decode(huge, sizeof huge, &m, NULL), CP2P_EOVERFLOW);
    const uint8_t junk[] = {3, 0xff, 0xff, 0xff};
    assert_int_equal(cp2p_autonat_decode(junk, sizeof junk, &m, NULL), CP2P_EPARSE);
    /* A bad peer ID is a bad message. */
    const uint8_t badid[] = {6, 0x12, 4, 0x0a, 2, 0x0a, 0};
    assert_int_equal(cp2p_autonat_decode(badid, sizeof badid, &m, NULL), CP2P_EPARSE);

    /* 20 addresses (one unparsable): 16 kept, the rest counted. */
    cp2p_autonat_msg_t big_dial = {.type = 0, .has_dial = 1};
    cp2p_multiaddr_t a;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/1.2.3.4/tcp/1", &a), 0);
    cp2p_buf_t info = {0}, dial = {0}, msg = {0};
    for (int i = 0; i < 20; i++) {
        cp2p_buf_append_byte(&info, 0x12);
        if (i == 3) {
            cp2p_buf_append_lp(&info, "\xff\xff", 2);
        } else {
            cp2p_buf_append_lp(&info, a.bytes, a.len);
        }
    }
    cp2p_buf_append_byte(&dial, 0x0a);
    cp2p_buf_append_lp(&dial, info.data, info.len);
    cp2p_buf_append(&msg, "\x08\x00\x12", 3);
    cp2p_buf_append_lp(&msg, dial.data, dial.len);
    cp2p_buf_t framed = {0};
    cp2p_buf_append_lp(&framed, msg.data, msg.len);
    assert_int_equal(cp2p_autonat_decode(framed.data, framed.len, &m, NULL), 0);
    assert_int_equal(m.n_addrs, CP2P_AUTONAT_MAX_ADDRS);
    assert_int_equal(m.n_addrs_dropped, 4);
    assert_false(m.has_peer_id);
    cp2p_autonat_msg_free(&m);
    /* Our encoder refuses what go would refuse to read. */
    cp2p_autonat_msg_t longtext = {.type = 1, .has_response = 1, .status = 100};
    memset(longtext.text, 'x', sizeof longtext.text - 1);
    for (size_t i = 0; i < CP2P_AUTONAT_MAX_ADDRS; i++)
        big_dial.addrs[big_dial.n_addrs++] = a;
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_autonat_encode(&big_dial, &out), 0);
    assert_int_equal(cp2p_autonat_encode(&longtext, &out), 0);
    cp2p_buf_free(&out);
    cp2p_buf_free(&info);
    cp2p_buf_free(&dial);
    cp2p_buf_free(&msg);
    cp2p_buf_free(&framed);
    cp2p_multiaddr_free(&a);
}

static cp2p_autonat_msg_t dial_msg(const char *const *addrs, size_t n)
{
    cp2p_autonat_msg_t m = {.type = 0, .has_dial = 1};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cp2p_multiaddr_parse(addrs[i], &m.addrs[m.n_addrs++]), 0);
    return m;
}

static void test_server_decide(void **state)
{
    an_throttle_t t;
    assert_int_equal(an_throttle_init(&t, 30, 3, 60000), 0);
    cp2p_peer_id_t remote, other;
    assert_int_equal(cp2p_peer_id_from_bytes(PID, sizeof PID, &remote), 0);
    other = remote;
    other.bytes[10] ^= 1;
    cp2p_multiaddr_t obs_pub, obs_lo;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/50000", &obs_pub), 0);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/50000", &obs_lo), 0);
    an_verdict_t v;

    /* The attack: dial-backs to a third party's IP are never made; the
     * observed address alone is tried. */
    const char *third[] = {"/ip4/1.2.3.4/tcp/80", "/ip4/8.8.4.4/tcp/4001/p2p-circuit",
                           "/ip4/8.8.4.4/tcp/4001", "/ip4/8.8.4.4/tcp/4001",
                           "/ip6/::1/tcp/1", "/dns4/example.com/tcp/1"};
    cp2p_autonat_msg_t m = dial_msg(third, 6);
    an_server_decide(&t, 0, 0, &remote, &obs_pub, &m, &v);
    assert_true(v.dial);
    assert_int_equal(v.ndial, 2);
    assert_true(cp2p_multiaddr_equal(&v.dial_addrs[0], &obs_pub));
    cp2p_multiaddr_t want;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/4001", &want), 0);
    assert_true(cp2p_multiaddr_equal(&v.dial_addrs[1], &want));
    assert_int_equal(v.refused, 4); /* third party, relayed, ip6, dns; the duplicate is not counted */
    an_verdict_free(&v);

    /* A /p2p/ that names someone else is refused; our own is cut. */
    char s[256], id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(&remote, id, sizeof id);
    snprintf(s, sizeof s, "/ip4/8.8.4.4/tcp/4002/p2p/%s", id);
    const char *named[] = {s};
    cp2p_autonat_msg_t m2 = dial_msg(named, 1);
    an_server_decide(&t, 0, 0, &remote, &obs_pub, &m2, &v);
    assert_true(v.dial);
    assert_int_equal(v.ndial, 2);
    cp2p_multiaddr_free(&want);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/4002", &want) == 0 &&
                     cp2p_multiaddr_equal(&v.dial_addrs[1], &want), 1);
    an_verdict_free(&v);
    an_server_decide(&t, 0, 0, &other, &obs_pub, &m2, &v);
    assert_int_equal(v.ndial, 1); /* only the observed one */
    an_verdict_free(&v);
    cp2p_multiaddr_free(&want);

    /* A request for another peer: bad request. */
    m.has_peer_id = 1;
    m.peer = other;
    an_server_decide(&t, 0, 0, &remote, &obs_pub, &m, &v);
    assert_false(v.dial);
    assert_int_equal(v.status, CP2P_AUTONAT_E_BAD_REQUEST);
    m.has_peer_id = 0;

    /* Loopback is refused unless private dial-backs are allowed. */
    const char *lo[] = {"/ip4/127.0.0.1/tcp/4001"};
    cp2p_autonat_msg_t m3 = dial_msg(lo, 1);
    an_server_decide(&t, 0, 0, &remote, &obs_lo, &m3, &v);
    assert_false(v.dial);
    assert_int_equal(v.status, CP2P_AUTONAT_E_DIAL_REFUSED);
    an_server_decide(&t, 0, 1, &remote, &obs_lo, &m3, &v);
    assert_true(v.dial);
    assert_int_equal(v.ndial, 2);
    an_verdict_free(&v);
    /* Not a dial: bad request. */
    m3.type = 1;
    an_server_decide(&t, 0, 1, &remote, &obs_lo, &m3, &v);
    assert_int_equal(v.status, CP2P_AUTONAT_E_BAD_REQUEST);

    cp2p_autonat_msg_free(&m);
    cp2p_autonat_msg_free(&m2);
    cp2p_autonat_msg_free(&m3);
    cp2p_multiaddr_free(&obs_pub);
    cp2p_multiaddr_free(&obs_lo);
    an_throttle_free(&t);
}

static void test_throttle(void **state)
{
    an_throttle_t t;
    assert_int_equal(an_throttle_init(&t, 30, 3, 60000), 0);
    cp2p_peer_id_t p[40];
    for (int i = 0; i < 40; i++) {
        assert_int_equal(cp2p_peer_id_from_bytes(PID, sizeof PID, &p[i]), 0);
        p[i].bytes[8] = (uint8_t)i;
    }
    /* Per peer: 3 a minute. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(an_throttle_take(&t, &p[0], 1000), 0);
    assert_int_equal(an_throttle_take(&t, &p[0], 2000), CP2P_ELIMIT);
    /* In all: 30 a minute, whoever asks. */
    int ok = 3;
    for (int i = 1; i < 40; i++)
        ok += an_throttle_take(&t, &p[i], 3000) == 0;
    assert_int_equal(ok, 30);
    assert_int_equal(an_throttle_take(&t, &p[39], 59999), CP2P_ELIMIT);
    /* A new period forgets. */
    assert_int_equal(an_throttle_take(&t, &p[0], 61000), 0);
    assert_int_equal(an_throttle_take(&t, &p[39], 61000), 0);
    an_throttle_free(&t);
}

static void test_confidence(void **state)
{
    an_reach_t r = {0};
    /* The first private answer decides when nothing was known. */
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PRIVATE), 1);
    assert_int_equal(r.status, CP2P_REACHABILITY_PRIVATE);
    /* Public is taken at once: a dial-back that worked is proof. */
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PUBLIC), 1);
    assert_int_equal(r.status, CP2P_REACHABILITY_PUBLIC);
    for (int i = 0; i < 5; i++)
        assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PUBLIC), 0);
    assert_int_equal(r.confidence, CP2P_AUTONAT_MAX_CONFIDENCE);
    /* Leaving public takes confidence + 1 disagreeing answers. */
    for (int i = 0; i < CP2P_AUTONAT_MAX_CONFIDENCE; i++) {
        assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PRIVATE), 0);
        assert_int_equal(r.status, CP2P_REACHABILITY_PUBLIC);
    }
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PRIVATE), 1);
    assert_int_equal(r.status, CP2P_REACHABILITY_PRIVATE);
    /* Unknown answers wear confidence down before they flip. */
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_PRIVATE), 0);
    assert_int_equal(r.confidence, 1);
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_UNKNOWN), 0);
    assert_int_equal(an_reach_record(&r, CP2P_REACHABILITY_UNKNOWN), 1);
    assert_int_equal(r.status, CP2P_REACHABILITY_UNKNOWN);
    assert_int_equal(an_observation(CP2P_AUTONAT_OK), CP2P_REACHABILITY_PUBLIC);
    assert_int_equal(an_observation(CP2P_AUTONAT_E_DIAL_ERROR), CP2P_REACHABILITY_PRIVATE);
    assert_int_equal(an_observation(CP2P_AUTONAT_E_DIAL_REFUSED), CP2P_REACHABILITY_UNKNOWN);
    assert_int_equal(an_observation(-1), CP2P_REACHABILITY_UNKNOWN);
}

/* ---- hosts ---- */

typedef struct watch {
    int changes;
    cp2p_reachability_t last;
    int dialbacks;        /* connections in from peers other than the server */
    cp2p_peer_id_t server;
} watch_t;

static void on_ev(const cp2p_event_t *ev, void *arg)
{
    watch_t *w = arg;
    if (ev->type == CP2P_EVENT_REACHABILITY) {
        w->changes++;
        w->last = ev->reachability;
    } else if (ev->type == CP2P_EVENT_CONNECTED && cp2p_conn_is_inbound(ev->conn) &&
               !cp2p_peer_id_equal(ev->peer, &w->server)) {
        w->dialbacks++;
    }
}

static const cp2p_autonat_config_t FAST = {
    .allow_private = 1, .boot_delay_ms = 100, .retry_ms = 300, .refresh_ms = 300,
    .peer_period_ms = 1, .dial_timeout_ms = 3000, .request_timeout_ms = 5000,
};

/* Server s (service), client c (client): c connects to s and waits for a
 * verdict. announce: what c advertises instead of its listen address. */
static void run_case(const char *announce, cp2p_reachability_t want, int v2)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *s = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_identify_t *sid, *cid;
    assert_int_equal(cp2p_identify_enable(s, NULL, &sid), 0);
    assert_int_equal(cp2p_identify_enable(c, NULL, &cid), 0);
    cp2p_autonat_config_t scfg = FAST, ccfg = FAST;
    scfg.service = 1;
    ccfg.client = 1;
    scfg.disable_v2 = ccfg.disable_v2 = !v2;
    cp2p_autonat_t *sa, *ca;
    assert_int_equal(cp2p_autonat_enable(s, &scfg, &sa), 0);
    assert_int_equal(cp2p_autonat_enable(c, &ccfg, &ca), 0);
    watch_t wt = {.server = *cp2p_host_peer_id(s)};
    assert_int_equal(cp2p_host_subscribe(c, on_ev, &wt), 0);
    unsigned sport, cport;
    cp2p_multiaddr_t saddr;
    host_listen(s, &sport, &saddr);
    host_listen(c, &cport, NULL);
    if (announce) {
        cp2p_multiaddr_t an;
        assert_int_equal(cp2p_multiaddr_parse(announce, &an), 0);
        assert_int_equal(cp2p_host_set_announce_addrs(c, &an, 1), 0);
        cp2p_multiaddr_free(&an);
    }
    assert_int_equal(cp2p_host_reachability(c), CP2P_REACHABILITY_UNKNOWN);
    assert_int_equal(host_connect_wait(&w, c, &saddr), 0);
    world_run_until(&w, &wt.changes, 10000);
    assert_int_equal(wt.last, want);
    assert_int_equal(cp2p_host_reachability(c), want);
    cp2p_autonat_stats_t st, cst;
    cp2p_autonat_stats(sa, &st);
    cp2p_autonat_stats(ca, &cst);
    assert_true((v2 ? st.requests_v2 : st.requests) >= 1 && st.dialbacks >= 1);
    assert_int_equal(v2 ? st.requests : st.requests_v2, 0);
    /* The same IP as the request's: no dial data asked. */
    assert_int_equal(st.dial_data_asked, 0);
    if (v2 && want == CP2P_REACHABILITY_PUBLIC)
        assert_true(cst.dial_backs_v2 >= 1); /* our nonce came back */
    if (v2)
        goto more;
    if (want == CP2P_REACHABILITY_PUBLIC) {
        assert_true(st.answered_ok >= 1);
        /* The dial-back came on a connection of its own, from another key. */
        assert_true(wt.dialbacks >= 1);
    } else {
        assert_true(st.answered_dial_error >= 1);
    }
more:;
    /* More agreeing answers raise confidence, and change nothing. */
    int before = wt.changes;
    world_run_for(&w, 1500);
    assert_int_equal(wt.changes, before);
    cp2p_autonat_stats(ca, &st);
    assert_true(st.probes >= 2);
    assert_true(st.confidence >= 1);
    cp2p_autonat_free(sa);
    cp2p_autonat_free(ca);
    cp2p_identify_free(sid);
    cp2p_identify_free(cid);
    int closed = 0;
    cp2p_host_close(s, count_up, &closed);
    cp2p_host_close(c, count_up, &closed);
    world_run_until_n(&w, &closed, 2, 10000);
    cp2p_multiaddr_free(&saddr);
    world_end(&w);
}

static void test_hosts_public(void **state)
{
    run_case(NULL, CP2P_REACHABILITY_PUBLIC, 0);
}

static void test_hosts_private(void **state)
{
    /* Port 1 on loopback: nobody listens there. */
    run_case("/ip4/127.0.0.1/tcp/1", CP2P_REACHABILITY_PRIVATE, 0);
}

static void test_hosts_v2_public(void **state)
{
    run_case(NULL, CP2P_REACHABILITY_PUBLIC, 1);
}

static void test_hosts_v2_private(void **state)
{
    run_case("/ip4/127.0.0.1/tcp/1", CP2P_REACHABILITY_PRIVATE, 1);
}

static void test_forced(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_config_t cfg = {.force_reachability = CP2P_REACHABILITY_PRIVATE};
    cp2p_host_t *h = host_new(&w, &cfg);
    assert_int_equal(cp2p_host_reachability(h), CP2P_REACHABILITY_PRIVATE);
    assert_true(cp2p_host_reachability_forced(h));
    assert_string_equal(cp2p_reachability_name(cp2p_host_reachability(h)), "private");
    host_close_wait(&w, h);
    world_end(&w);
}

/* ---- a raw client: requests by hand ---- */

typedef struct ask {
    int done, status;
    char text[CP2P_AUTONAT_MAX_STATUS_TEXT];
    cp2p_buf_t msg, got;
} ask_t;

static void ask_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    ask_t *a = arg;
    if (status == 0) {
        cp2p_buf_append(&a->got, p, n);
        cp2p_autonat_msg_t m;
        if (cp2p_autonat_decode(a->got.data, a->got.len, &m, NULL) == 0) {
            a->status = m.status;
            snprintf(a->text, sizeof a->text, "%s", m.text);
            cp2p_autonat_msg_free(&m);
            a->done = 1;
            cp2p_stream_read_stop(s);
            cp2p_stream_close_write(s);
            cp2p_stream_unref(s);
        }
        return;
    }
    a->done = 1;
    a->status = status;
    cp2p_stream_unref(s);
}

static void ask_opened(int status, cp2p_stream_t *s, void *arg)
{
    ask_t *a = arg;
    assert_int_equal(status, 0);
    assert_int_equal(cp2p_stream_write(s, a->msg.data, a->msg.len, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(s, ask_read, a), 0);
}

static int ask(world_t *w, cp2p_host_t *c, const cp2p_peer_id_t *srv, const cp2p_autonat_msg_t *m,
               char *text)
{
    ask_t a = {0};
    assert_int_equal(cp2p_autonat_encode(m, &a.msg), 0);
    static const char *const protos[] = {CP2P_AUTONAT_V1_PROTOCOL_ID};
    assert_int_equal(cp2p_host_new_stream(c, srv, protos, 1, ask_opened, &a), 0);
    world_run_until(w, &a.done, 10000);
    cp2p_buf_free(&a.msg);
    cp2p_buf_free(&a.got);
    if (text)
        strcpy(text, a.text);
    return a.status;
}

static void test_attack(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *s = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_autonat_config_t scfg = FAST;
    scfg.service = 1;
    cp2p_autonat_t *sa;
    assert_int_equal(cp2p_autonat_enable(s, &scfg, &sa), 0);
    unsigned sport, cport;
    cp2p_multiaddr_t saddr;
    host_listen(s, &sport, &saddr);
    host_listen(c, &cport, NULL);
    assert_int_equal(host_connect_wait(&w, c, &saddr), 0);
    const cp2p_peer_id_t *sid = cp2p_host_peer_id(s);
    char text[CP2P_AUTONAT_MAX_STATUS_TEXT], mine[64];
    snprintf(mine, sizeof mine, "/ip4/127.0.0.1/tcp/%u", cport);

    /* Another IP than the one we came from: not dialled. Only the observed
     * address (an ephemeral port) is tried, and fails. */
    const char *third[] = {"/ip4/10.1.2.3/tcp/80", "/ip4/192.168.1.1/tcp/22"};
    cp2p_autonat_msg_t m = dial_msg(third, 2);
    assert_int_equal(ask(&w, c, sid, &m, text), CP2P_AUTONAT_E_DIAL_ERROR);
    cp2p_autonat_stats_t st;
    cp2p_autonat_stats(sa, &st);
    assert_int_equal(st.addrs_refused, 2);
    cp2p_autonat_msg_free(&m);

    /* Someone else's peer ID. */
    const char *ok[] = {mine};
    m = dial_msg(ok, 1);
    m.has_peer_id = 1;
    m.peer = *sid;
    assert_int_equal(ask(&w, c, sid, &m, text), CP2P_AUTONAT_E_BAD_REQUEST);
    assert_string_equal(text, "peer id mismatch");
    /* The flood: 3 dial-backs a minute per peer (one is spent above). */
    m.has_peer_id = 0;
    assert_int_equal(ask(&w, c, sid, &m, text), CP2P_AUTONAT_OK);
    assert_int_equal(ask(&w, c, sid, &m, text), CP2P_AUTONAT_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ask(&w, c, sid, &m, text), CP2P_AUTONAT_E_DIAL_REFUSED);
        assert_string_equal(text, "too many dials");
    }
    cp2p_autonat_stats(sa, &st);
    assert_int_equal(st.dialbacks, 3);
    assert_int_equal(st.rate_limited, 5);
    cp2p_autonat_msg_free(&m);

    /* Too long a request: the stream is reset, nothing is answered. */
    ask_t big = {0};
    uint8_t junk[CP2P_AUTONAT_MAX_MESSAGE + 16];
    memset(junk, 0x55, sizeof junk);
    cp2p_buf_append_lp(&big.msg, junk, sizeof junk);
    static const char *const protos[] = {CP2P_AUTONAT_V1_PROTOCOL_ID};
    assert_int_equal(cp2p_host_new_stream(c, sid, protos, 1, ask_opened, &big), 0);
    world_run_until(&w, &big.done, 10000);
    assert_true(big.status < 0);
    cp2p_buf_free(&big.msg);
    cp2p_buf_free(&big.got);

    cp2p_autonat_free(sa);
    int closed = 0;
    cp2p_host_close(s, count_up, &closed);
    cp2p_host_close(c, count_up, &closed);
    world_run_until_n(&w, &closed, 2, 10000);
    cp2p_multiaddr_free(&saddr);
    world_end(&w);
}

/* ---- v2 ---- */

/* Message{dialRequest{addrs[/ip4/127.0.0.1/tcp/4242], nonce 0x0807060504030201}} */
static const uint8_t V2_REQUEST[] = {
    2 + 10 + 9, 0x0a, 10 + 9,
    0x0a, 8, ADDR_BYTES,
    0x11, 1, 2, 3, 4, 5, 6, 7, 8,
};

static void test_v2_codec(void **state)
{
    cp2p_autonat2_msg_t m;
    size_t used;
    assert_int_equal(cp2p_autonat2_decode(V2_REQUEST, sizeof V2_REQUEST, &m, &used), 0);
    assert_int_equal(used, sizeof V2_REQUEST);
    assert_int_equal(m.kind, CP2P_AUTONAT2_DIAL_REQUEST);
    assert_int_equal(m.n_addrs, 1);
    assert_true(m.nonce == 0x0807060504030201ULL);
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_autonat2_encode(&m, &b), 0);
    assert_int_equal(b.len, sizeof V2_REQUEST);
    assert_memory_equal(b.data, V2_REQUEST, b.len);
    cp2p_autonat2_msg_free(&m);
    b.len = 0;
    for (size_t i = 0; i < sizeof V2_REQUEST; i++)
        assert_int_equal(cp2p_autonat2_decode(V2_REQUEST, i, &m, NULL), CP2P_ETRUNC);
    /* Over 8 KiB: refused before it comes. */
    const uint8_t big[] = {0x81, 0x40}; /* 8193 */
    assert_int_equal(cp2p_autonat2_decode(big, sizeof big, &m, NULL), CP2P_EOVERFLOW);
    /* DialDataRequest{addrIdx 1, numBytes 30000} and back. */
    cp2p_autonat2_msg_t dd = {.kind = CP2P_AUTONAT2_DIAL_DATA_REQUEST, .addr_idx = 1, .num_bytes = 30000};
    assert_int_equal(cp2p_autonat2_encode(&dd, &b), 0);
    const uint8_t want_dd[] = {8, 0x1a, 6, 0x08, 1, 0x10, 0xb0, 0xea, 0x01};
    assert_int_equal(b.len, sizeof want_dd);
    assert_memory_equal(b.data, want_dd, b.len);
    assert_int_equal(cp2p_autonat2_decode(b.data, b.len, &m, NULL), 0);
    assert_int_equal(m.kind, CP2P_AUTONAT2_DIAL_DATA_REQUEST);
    assert_true(m.addr_idx == 1 && m.num_bytes == 30000);
    /* A DialDataResponse: only its length is kept. */
    uint8_t data[4096] = {0};
    cp2p_autonat2_msg_t resp = {.kind = CP2P_AUTONAT2_DIAL_DATA_RESPONSE, .data = data, .data_len = sizeof data};
    b.len = 0;
    assert_int_equal(cp2p_autonat2_encode(&resp, &b), 0);
    assert_int_equal(cp2p_autonat2_decode(b.data, b.len, &m, NULL), 0);
    assert_int_equal(m.data_len, sizeof data);
    /* DialBack{nonce}: fixed64, as go writes it. */
    b.len = 0;
    assert_int_equal(cp2p_autonat2_encode_dial_back(0x0807060504030201ULL, &b), 0);
    const uint8_t want_db[] = {9, 0x09, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(b.len, sizeof want_db);
    assert_memory_equal(b.data, want_db, b.len);
    uint64_t nonce = 0;
    assert_int_equal(cp2p_autonat2_decode_dial_back(b.data, b.len, &nonce, NULL), 0);
    assert_true(nonce == 0x0807060504030201ULL);
    const uint8_t big_db[] = {0x81, 0x08}; /* 1025 */
    assert_int_equal(cp2p_autonat2_decode_dial_back(big_db, sizeof big_db, &nonce, NULL), CP2P_EOVERFLOW);
    b.len = 0;
    assert_int_equal(cp2p_autonat2_encode_dial_back_response(&b), 0);
    assert_int_equal(b.len, 1); /* empty: status OK is proto3's default */
    cp2p_buf_free(&b);
}

static void test_v2_pick(void **state)
{
    cp2p_peer_id_t remote;
    assert_int_equal(cp2p_peer_id_from_bytes(PID, sizeof PID, &remote), 0);
    cp2p_multiaddr_t obs;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/50000", &obs), 0);
    const char *addrs[] = {"/ip4/127.0.0.1/tcp/1", "/ip4/8.8.8.8/tcp/1/p2p-circuit",
                           "/ip4/9.9.9.9/udp/1/quic-v1", "/ip4/1.1.1.1/tcp/4001", "/ip4/8.8.4.4/tcp/4001"};
    cp2p_autonat2_msg_t m = {.kind = CP2P_AUTONAT2_DIAL_REQUEST};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(cp2p_multiaddr_parse(addrs[i], &m.addrs[m.n_addrs++]), 0);
    size_t idx;
    int need;
    /* The first it can dial: loopback (not allowed), relayed, quic skipped;
     * 1.1.1.1 is not where the request came from: the dial data first. */
    assert_int_equal(an2_pick(&obs, &m, 0, &remote, &idx, &need), 0);
    assert_int_equal(idx, 3);
    assert_true(need);
    assert_int_equal(an2_pick(&obs, &m, 1, &remote, &idx, &need), 0);
    assert_int_equal(idx, 0);
    assert_true(need);
    cp2p_multiaddr_free(&m.addrs[3]);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/4002", &m.addrs[3]), 0);
    assert_int_equal(an2_pick(&obs, &m, 0, &remote, &idx, &need), 0);
    assert_int_equal(idx, 3);
    assert_false(need);
    m.n_addrs = 3;
    assert_int_equal(an2_pick(&obs, &m, 0, &remote, &idx, &need), CP2P_ENOTFOUND);
    m.n_addrs = 5;
    cp2p_autonat2_msg_free(&m);
    cp2p_multiaddr_free(&obs);
}

typedef struct ask2 {
    int done;
    cp2p_autonat2_msg_t got;
    cp2p_buf_t msg, in;
    cp2p_stream_t *s;
} ask2_t;

static void ask2_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    ask2_t *a = arg;
    if (status == 0) {
        cp2p_buf_append(&a->in, p, n);
        if (cp2p_autonat2_decode(a->in.data, a->in.len, &a->got, NULL) == 0) {
            a->done = 1;
            cp2p_stream_read_stop(s);
        }
        return;
    }
    a->done = 1;
    a->got.kind = -1;
}

static void ask2_opened(int status, cp2p_stream_t *s, void *arg)
{
    ask2_t *a = arg;
    assert_int_equal(status, 0);
    a->s = s;
    assert_int_equal(cp2p_stream_write(s, a->msg.data, a->msg.len, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(s, ask2_read, a), 0);
}

/* Send m on a new dial-request stream; the first message back. The stream
 * stays open in a->s (the caller resets it or goes on). */
static void ask2(world_t *w, cp2p_host_t *c, const cp2p_peer_id_t *srv, const cp2p_autonat2_msg_t *m,
                 ask2_t *a)
{
    memset(a, 0, sizeof *a);
    assert_int_equal(cp2p_autonat2_encode(m, &a->msg), 0);
    static const char *const protos[] = {CP2P_AUTONAT_V2_DIAL_REQUEST_ID};
    assert_int_equal(cp2p_host_new_stream(c, srv, protos, 1, ask2_opened, a), 0);
    world_run_until(w, &a->done, 10000);
}

static void ask2_end(ask2_t *a)
{
    if (a->s) {
        cp2p_stream_reset(a->s);
        cp2p_stream_unref(a->s);
    }
    cp2p_buf_free(&a->msg);
    cp2p_buf_free(&a->in);
}

static void test_v2_attack(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *s = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_autonat_config_t scfg = FAST;
    scfg.service = 1;
    cp2p_autonat_t *sa;
    assert_int_equal(cp2p_autonat_enable(s, &scfg, &sa), 0);
    unsigned sport, cport;
    cp2p_multiaddr_t saddr;
    host_listen(s, &sport, &saddr);
    host_listen(c, &cport, NULL);
    assert_int_equal(host_connect_wait(&w, c, &saddr), 0);
    const cp2p_peer_id_t *sid = cp2p_host_peer_id(s);

    /* A third party's address (another IP than ours): the server wants
     * 30-100 KB first, and dials nobody while they do not come. */
    cp2p_autonat2_msg_t m = {.kind = CP2P_AUTONAT2_DIAL_REQUEST, .nonce = 42};
    assert_int_equal(cp2p_multiaddr_parse("/ip4/10.1.2.3/tcp/80", &m.addrs[m.n_addrs++]), 0);
    ask2_t a;
    ask2(&w, c, sid, &m, &a);
    assert_int_equal(a.got.kind, CP2P_AUTONAT2_DIAL_DATA_REQUEST);
    assert_int_equal(a.got.addr_idx, 0);
    assert_true(a.got.num_bytes >= CP2P_AUTONAT_V2_MIN_DIAL_DATA &&
                a.got.num_bytes <= CP2P_AUTONAT_V2_MAX_DIAL_DATA);
    world_run_for(&w, 300);
    cp2p_autonat_stats_t st;
    cp2p_autonat_stats(sa, &st);
    assert_int_equal(st.dialbacks, 0);
    assert_int_equal(st.dial_data_asked, 1);
    /* Half the data: still no dial. */
    uint64_t want = a.got.num_bytes;
    uint8_t zeros[4096] = {0};
    cp2p_buf_t data = {0};
    for (uint64_t sent = 0; sent < want / 2; sent += sizeof zeros) {
        cp2p_autonat2_msg_t d = {.kind = CP2P_AUTONAT2_DIAL_DATA_RESPONSE, .data = zeros, .data_len = sizeof zeros};
        assert_int_equal(cp2p_autonat2_encode(&d, &data), 0);
    }
    assert_int_equal(cp2p_stream_write(a.s, data.data, data.len, NULL, NULL), 0);
    world_run_for(&w, 300);
    cp2p_autonat_stats(sa, &st);
    assert_int_equal(st.dialbacks, 0);
    /* The rest: now it dials (10.1.2.3 is not there: a dial error). */
    a.done = 0;
    a.in.len = 0;
    assert_int_equal(cp2p_stream_write(a.s, data.data, data.len, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(a.s, ask2_read, &a), 0);
    world_run_until(&w, &a.done, 10000);
    assert_int_equal(a.got.kind, CP2P_AUTONAT2_DIAL_RESPONSE);
    assert_int_equal(a.got.status, CP2P_AUTONAT2_RESPONSE_OK);
    assert_int_equal(a.got.dial_status, CP2P_AUTONAT2_DIAL_ERROR);
    cp2p_autonat_stats(sa, &st);
    assert_int_equal(st.dialbacks, 1);
    ask2_end(&a);
    cp2p_buf_free(&data);

    /* The flood: 12 requests needing dial data a minute, then rejected. */
    int asked = 1, rejected = 0;
    for (int i = 0; i < 14; i++) {
        ask2(&w, c, sid, &m, &a);
        asked += a.got.kind == CP2P_AUTONAT2_DIAL_DATA_REQUEST;
        rejected += a.got.kind == CP2P_AUTONAT2_DIAL_RESPONSE &&
                    a.got.status == CP2P_AUTONAT2_E_REQUEST_REJECTED;
        ask2_end(&a);
        world_run_for(&w, 20);
    }
    assert_int_equal(asked, CP2P_AUTONAT_V2_DEFAULT_DIAL_DATA_RPM);
    assert_int_equal(rejected, 14 - (CP2P_AUTONAT_V2_DEFAULT_DIAL_DATA_RPM - 1));
    /* Nothing it can dial: refused. */
    cp2p_autonat2_msg_free(&m);
    m.kind = CP2P_AUTONAT2_DIAL_REQUEST;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/1.2.3.4/udp/1/quic-v1", &m.addrs[m.n_addrs++]), 0);
    ask2(&w, c, sid, &m, &a);
    assert_int_equal(a.got.kind, CP2P_AUTONAT2_DIAL_RESPONSE);
    assert_int_equal(a.got.status, CP2P_AUTONAT2_E_DIAL_REFUSED);
    ask2_end(&a);
    cp2p_autonat2_msg_free(&m);

    cp2p_autonat_free(sa);
    int closed = 0;
    cp2p_host_close(s, count_up, &closed);
    cp2p_host_close(c, count_up, &closed);
    world_run_until_n(&w, &closed, 2, 10000);
    cp2p_multiaddr_free(&saddr);
    world_end(&w);
}

/* ---- observed-address confirmation ---- */

static void test_candidates(void **state)
{
    an_candidates_t t = {.threshold = 3};
    cp2p_peer_id_t p[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cp2p_peer_id_from_bytes(PID, sizeof PID, &p[i]), 0);
        p[i].bytes[8] = (uint8_t)i;
    }
    cp2p_multiaddr_t a, b;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/4001", &a), 0);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/8.8.4.4/tcp/4002", &b), 0);
    /* One peer saying it many times is one observer. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(an_candidates_observe(&t, &a, &p[0], i), -1);
    assert_int_equal(an_candidates_observe(&t, &a, &p[1], 6), -1);
    assert_int_equal(an_candidates_observe(&t, &b, &p[1], 6), -1);
    int idx = an_candidates_observe(&t, &a, &p[2], 7);
    assert_int_equal(idx, 0);
    assert_int_equal(t.c[0].state, AN_CAND_DUE);
    /* Due once only. */
    assert_int_equal(an_candidates_observe(&t, &a, &p[3], 8), -1);
    /* Bounded: a full table forgets the oldest unconfirmed candidate, in its slot. */
    t.c[0].state = AN_CAND_CONFIRMED;
    for (int i = 0; i < 40; i++) {
        cp2p_multiaddr_t x;
        char s[64];
        snprintf(s, sizeof s, "/ip4/9.9.9.9/tcp/%d", 1000 + i);
        assert_int_equal(cp2p_multiaddr_parse(s, &x), 0);
        an_candidates_observe(&t, &x, &p[0], 100 + i);
        cp2p_multiaddr_free(&x);
    }
    assert_int_equal(t.n, AN_MAX_CANDIDATES);
    assert_true(cp2p_multiaddr_equal(&t.c[0].addr, &a)); /* the confirmed one stays, where it was */
    an_candidates_free(&t);
    cp2p_multiaddr_free(&a);
    cp2p_multiaddr_free(&b);
}

static int has_addr(cp2p_host_t *h, const cp2p_multiaddr_t *want)
{
    cp2p_multiaddr_t *addrs;
    size_t n;
    int found = 0;
    assert_int_equal(cp2p_host_addrs(h, &addrs, &n), 0);
    for (size_t i = 0; i < n; i++)
        found |= cp2p_multiaddr_equal(&addrs[i], want);
    cp2p_multiaddr_array_free(addrs, n);
    return found;
}

/* c advertises only a closed port; s dials c, and identify tells c where
 * s sees it (its listening port); s dials that back, and c advertises it. */
static void test_observed_confirmed(void **state)
{
    world_t w;
    world_init(&w);
    cp2p_host_t *s = host_new(&w, NULL), *c = host_new(&w, NULL);
    cp2p_identify_t *sid, *cid;
    assert_int_equal(cp2p_identify_enable(s, NULL, &sid), 0);
    assert_int_equal(cp2p_identify_enable(c, NULL, &cid), 0);
    cp2p_autonat_config_t scfg = FAST, ccfg = FAST;
    scfg.service = 1;
    ccfg.client = 1;
    ccfg.observed_threshold = 1;
    ccfg.boot_delay_ms = 60000; /* only the candidate is probed in this test */
    cp2p_autonat_t *sa, *ca;
    assert_int_equal(cp2p_autonat_enable(s, &scfg, &sa), 0);
    assert_int_equal(cp2p_autonat_enable(c, &ccfg, &ca), 0);
    unsigned sport, cport;
    cp2p_multiaddr_t caddr, an, want;
    host_listen(s, &sport, NULL);
    host_listen(c, &cport, &caddr);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/1", &an), 0);
    assert_int_equal(cp2p_host_set_announce_addrs(c, &an, 1), 0);
    char buf[64];
    snprintf(buf, sizeof buf, "/ip4/127.0.0.1/tcp/%u", cport);
    assert_int_equal(cp2p_multiaddr_parse(buf, &want), 0);
    assert_false(has_addr(c, &want));
    assert_int_equal(host_connect_wait(&w, s, &caddr), 0);
    cp2p_autonat_stats_t st = {0};
    for (int i = 0; i < 100 && !st.candidates_confirmed; i++) {
        world_run_for(&w, 50);
        cp2p_autonat_stats(ca, &st);
    }
    assert_int_equal(st.candidates_confirmed, 1);
    assert_true(has_addr(c, &want));
    assert_true(has_addr(c, &an)); /* after the announced ones */
    cp2p_autonat_free(sa);
    cp2p_autonat_free(ca);
    cp2p_identify_free(sid);
    cp2p_identify_free(cid);
    int closed = 0;
    cp2p_host_close(s, count_up, &closed);
    cp2p_host_close(c, count_up, &closed);
    world_run_until_n(&w, &closed, 2, 10000);
    cp2p_multiaddr_free(&caddr);
    cp2p_multiaddr_free(&an);
    cp2p_multiaddr_free(&want);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vectors), cmocka_unit_test(test_decode_limits),
        cmocka_unit_test(test_server_decide),  cmocka_unit_test(test_throttle),
        cmocka_unit_test(test_confidence),     cmocka_unit_test(test_hosts_public),
        cmocka_unit_test(test_hosts_private),  cmocka_unit_test(test_forced),
        cmocka_unit_test(test_attack),         cmocka_unit_test(test_v2_codec),
        cmocka_unit_test(test_v2_pick),        cmocka_unit_test(test_hosts_v2_public),
        cmocka_unit_test(test_hosts_v2_private), cmocka_unit_test(test_v2_attack),
        cmocka_unit_test(test_candidates),     cmocka_unit_test(test_observed_confirmed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
