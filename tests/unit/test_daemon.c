/* Unit tests for the cp2pd control protocol codec (src/daemon/control.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/multiaddr.h"
#include "daemon/control.h"

static cp2p_buf_t packed(const ProtobufCMessage *m)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_daemon_message_append(&b, m), 0);
    return b;
}

/* Decode the one frame in b as a request; returns the decoder's code. */
static int decode(const cp2p_buf_t *b, P2pd__Request **r, const char **why)
{
    const uint8_t *msg;
    size_t len;
    int k = cp2p_daemon_frame(b->data, b->len, &msg, &len);
    assert_int_equal(k, (int)b->len);
    return cp2p_daemon_request_decode(msg, len, r, why);
}

static void test_frame(void **state)
{
    const uint8_t *msg;
    size_t len;
    uint8_t ok[] = {3, 8, 5, 1};
    assert_int_equal(cp2p_daemon_frame(ok, 4, &msg, &len), 4);
    assert_int_equal(len, 3);
    assert_ptr_equal(msg, ok + 1);
    assert_int_equal(cp2p_daemon_frame(ok, 3, &msg, &len), CP2P_ETRUNC);
    assert_int_equal(cp2p_daemon_frame(ok, 0, &msg, &len), CP2P_ETRUNC);
    uint8_t big[] = {0x80, 0x80, 0x80, 0x01}; /* 2 MiB: over the limit */
    assert_int_equal(cp2p_daemon_frame(big, 4, &msg, &len), CP2P_EOVERFLOW);
    uint8_t endless[12];
    memset(endless, 0xff, sizeof endless);
    assert_true(cp2p_daemon_frame(endless, sizeof endless, &msg, &len) < 0);
    assert_int_not_equal(cp2p_daemon_frame(endless, sizeof endless, &msg, &len), CP2P_ETRUNC);
    uint8_t nonminimal[] = {0x81, 0x00};
    assert_int_equal(cp2p_daemon_frame(nonminimal, 2, &msg, &len), CP2P_EPARSE);
}

static void peer_of_fresh_key(cp2p_peer_id_t *id)
{
    cp2p_privkey_t *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), id), 0);
    cp2p_privkey_free(k);
}

static void test_connect(void **state)
{
    cp2p_peer_id_t id;
    peer_of_fresh_key(&id);
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &ma), 0);
    ProtobufCBinaryData addr = {.data = ma.bytes, .len = ma.len};
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__ConnectRequest c = P2PD__CONNECT_REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__CONNECT;
    r.connect = &c;
    c.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
    c.addrs = &addr;
    c.n_addrs = 1;
    cp2p_buf_t b = packed(&r.base);
    P2pd__Request *out = NULL;
    const char *why = NULL;
    assert_int_equal(decode(&b, &out, &why), 0);
    cp2p_peer_id_t got;
    assert_int_equal(cp2p_daemon_peer(&out->connect->peer, &got), 0);
    assert_true(cp2p_peer_id_equal(&got, &id));
    p2pd__request__free_unpacked(out, NULL);
    cp2p_buf_free(&b);

    /* a bad address, a bad peer, no body: refused with a reason */
    uint8_t junk[] = {0xff, 0xff};
    addr = (ProtobufCBinaryData){.data = junk, .len = 2};
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "invalid multiaddr");
    cp2p_buf_free(&b);
    c.peer.len = 3;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "missing or invalid peer ID");
    cp2p_buf_free(&b);
    r.connect = NULL;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
    cp2p_multiaddr_free(&ma);
}

static void test_stream_requests(void **state)
{
    cp2p_peer_id_t id;
    peer_of_fresh_key(&id);
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__StreamOpenRequest so = P2PD__STREAM_OPEN_REQUEST__INIT;
    char *protos[CP2P_DAEMON_MAX_PROTOCOLS + 1];
    for (size_t i = 0; i <= CP2P_DAEMON_MAX_PROTOCOLS; i++)
        protos[i] = "/echo/1.0.0";
    r.type = P2PD__REQUEST__TYPE__STREAM_OPEN;
    r.streamopen = &so;
    so.peer = (ProtobufCBinaryData){.data = id.bytes, .len = id.len};
    so.proto = protos;
    P2pd__Request *out = NULL;
    const char *why;
    size_t counts[] = {0, 1, CP2P_DAEMON_MAX_PROTOCOLS, CP2P_DAEMON_MAX_PROTOCOLS + 1};
    int want[] = {CP2P_EPARSE, 0, 0, CP2P_EPARSE};
    for (size_t i = 0; i < 4; i++) {
        so.n_proto = counts[i];
        cp2p_buf_t b = packed(&r.base);
        assert_int_equal(decode(&b, &out, &why), want[i]);
        if (!want[i])
            p2pd__request__free_unpacked(out, NULL);
        cp2p_buf_free(&b);
    }
    char nl[] = "/a\n/b";
    protos[0] = nl;
    so.n_proto = 1;
    cp2p_buf_t b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);

    /* handler addresses the daemon can dial: unix and tcp only */
    P2pd__StreamHandlerRequest sh = P2PD__STREAM_HANDLER_REQUEST__INIT;
    protos[0] = "/echo/1.0.0";
    r = (P2pd__Request)P2PD__REQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__STREAM_HANDLER;
    r.streamhandler = &sh;
    sh.proto = protos;
    sh.n_proto = 1;
    const char *addrs[] = {"/unix/tmp/h.sock", "/ip4/127.0.0.1/tcp/5000", "/ip4/127.0.0.1/udp/5000",
                           "/dns4/example.com/tcp/1"};
    int ok[] = {0, 0, CP2P_EPARSE, CP2P_EPARSE};
    for (size_t i = 0; i < 4; i++) {
        cp2p_multiaddr_t ma;
        assert_int_equal(cp2p_multiaddr_parse(addrs[i], &ma), 0);
        sh.addr = (ProtobufCBinaryData){.data = ma.bytes, .len = ma.len};
        b = packed(&r.base);
        assert_int_equal(decode(&b, &out, &why), ok[i]);
        if (!ok[i])
            p2pd__request__free_unpacked(out, NULL);
        cp2p_buf_free(&b);
        cp2p_multiaddr_free(&ma);
    }
}

static void test_dht_requests(void **state)
{
    P2pd__Request r = P2PD__REQUEST__INIT;
    P2pd__DHTRequest d = P2PD__DHTREQUEST__INIT;
    r.type = P2PD__REQUEST__TYPE__DHT;
    r.dht = &d;
    P2pd__Request *out = NULL;
    const char *why;
    uint8_t key[CP2P_DAEMON_MAX_KEY + 1];
    memset(key, 'k', sizeof key);
    d.type = P2PD__DHTREQUEST__TYPE__GET_VALUE;
    cp2p_buf_t b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE); /* no key */
    cp2p_buf_free(&b);
    d.has_key = 1;
    d.key = (ProtobufCBinaryData){.data = key, .len = sizeof key};
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE); /* key too long */
    cp2p_buf_free(&b);
    d.key.len = CP2P_DAEMON_MAX_KEY;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), 0);
    p2pd__request__free_unpacked(out, NULL);
    cp2p_buf_free(&b);
    d.type = P2PD__DHTREQUEST__TYPE__PUT_VALUE; /* key without value */
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
    d.type = P2PD__DHTREQUEST__TYPE__PROVIDE; /* a CID is needed, not a key */
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    assert_string_equal(why, "missing or invalid CID");
    cp2p_buf_free(&b);
    d.type = 42;
    b = packed(&r.base);
    assert_int_equal(decode(&b, &out, &why), CP2P_EPARSE);
    cp2p_buf_free(&b);
}

static void test_status(void **state)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_daemon_status_append(&b, "boom"), 0);
    const uint8_t *msg;
    size_t len;
    assert_int_equal(cp2p_daemon_frame(b.data, b.len, &msg, &len), (int)b.len);
    P2pd__Response *r = p2pd__response__unpack(NULL, len, msg);
    assert_non_null(r);
    assert_int_equal(r->type, P2PD__RESPONSE__TYPE__ERROR);
    assert_string_equal(r->error->msg, "boom");
    p2pd__response__free_unpacked(r, NULL);
    cp2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_stream_requests),
        cmocka_unit_test(test_dht_requests),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
