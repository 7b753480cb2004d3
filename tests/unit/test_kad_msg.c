/* Kademlia RPC messages: round trips, wire bytes, limits and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "kad.pb-c.h"
#include "kad/kad_msg.h"

static cp2p_peer_id_t make_id(uint8_t seed)
{
    cp2p_peer_id_t id = {.len = 34, .bytes = {0x12, 0x20}};
    memset(id.bytes + 2, seed, 32);
    return id;
}

static void test_roundtrip(void **state)
{
    cp2p_multiaddr_t addrs[2];
    assert_int_equal(cp2p_multiaddr_parse("/ip4/10.0.0.1/tcp/4001", &addrs[0]), 0);
    assert_int_equal(cp2p_multiaddr_parse("/ip6/::1/tcp/4002", &addrs[1]), 0);
    cp2p_kad_peer_t peers[2] = {
        {.id = make_id(1), .addrs = addrs, .n_addrs = 2, .connection = CP2P_KAD_CONNECTED},
        {.id = make_id(2), .connection = CP2P_KAD_CANNOT_CONNECT},
    };
    cp2p_kad_msg_t m = {
        .type = CP2P_KAD_GET_VALUE,
        .key = (uint8_t *)"/pk/abc",
        .key_len = 7,
        .has_record = 1,
        .rec_key = (uint8_t *)"/pk/abc",
        .rec_key_len = 7,
        .rec_value = (uint8_t *)"value",
        .rec_value_len = 5,
        .time_received = "2024-01-02T03:04:05Z",
        .closer = peers,
        .n_closer = 2,
        .providers = &peers[1],
        .n_providers = 1,
    };
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_kad_msg_write(&m, &b), 0);

    const uint8_t *body;
    size_t body_len;
    int n = cp2p_kad_msg_frame(b.data, b.len, &body, &body_len);
    assert_int_equal(n, (int)b.len);
    assert_int_equal(cp2p_kad_msg_frame(b.data, b.len - 1, &body, &body_len), CP2P_ETRUNC);

    cp2p_kad_msg_t d = {0};
    assert_int_equal(cp2p_kad_msg_decode(body, body_len, &d), 0);
    assert_int_equal(d.type, CP2P_KAD_GET_VALUE);
    assert_int_equal(d.key_len, 7);
    assert_memory_equal(d.key, "/pk/abc", 7);
    assert_true(d.has_record);
    assert_int_equal(d.rec_value_len, 5);
    assert_memory_equal(d.rec_value, "value", 5);
    assert_string_equal(d.time_received, "2024-01-02T03:04:05Z");
    assert_int_equal(d.n_closer, 2);
    assert_true(cp2p_peer_id_equal(&d.closer[0].id, &peers[0].id));
    assert_int_equal(d.closer[0].connection, CP2P_KAD_CONNECTED);
    assert_int_equal(d.closer[0].n_addrs, 2);
    assert_true(cp2p_multiaddr_equal(&d.closer[0].addrs[1], &addrs[1]));
    assert_int_equal(d.closer[1].n_addrs, 0);
    assert_int_equal(d.closer[1].connection, CP2P_KAD_CANNOT_CONNECT);
    assert_int_equal(d.n_providers, 1);
    assert_true(cp2p_peer_id_equal(&d.providers[0].id, &peers[1].id));
    assert_int_equal(d.n_dropped, 0);
    cp2p_kad_msg_clear(&d);
    assert_null(d.key);
    cp2p_buf_free(&b);
    cp2p_multiaddr_free(&addrs[0]);
    cp2p_multiaddr_free(&addrs[1]);
}

/* The exact bytes the spec's schema gives, as go and js write them. */
static void test_wire_bytes(void **state)
{
    cp2p_kad_msg_t m = {.type = CP2P_KAD_FIND_NODE, .key = (uint8_t *)"abc", .key_len = 3};
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_kad_msg_write(&m, &b), 0);
    static const uint8_t want[] = {0x07, 0x08, 0x04, 0x12, 0x03, 'a', 'b', 'c'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    cp2p_buf_free(&b);

    /* Record.timeReceived is field 5 (tag 0x2a) inside field 3 (tag 0x1a). */
    static const uint8_t rec[] = {0x08, 0x01, 0x1a, 0x05, 0x2a, 0x03, '1', '2', '3'};
    cp2p_kad_msg_t d = {0};
    assert_int_equal(cp2p_kad_msg_decode(rec, sizeof rec, &d), 0);
    assert_int_equal(d.type, CP2P_KAD_GET_VALUE);
    assert_true(d.has_record);
    assert_string_equal(d.time_received, "123");
    cp2p_kad_msg_clear(&d);
}

/* A peer with a bad ID and addresses that are not multiaddrs lose only those. */
static void test_bad_peers_dropped(void **state)
{
    cp2p_peer_id_t good = make_id(7);
    uint8_t bad_id[] = {0x12, 0x05, 1, 2, 3, 4, 5}; /* sha2-256 must be 32 bytes */
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/1.2.3.4/tcp/1", &ma), 0);
    ProtobufCBinaryData addrs[3] = {
        {ma.len, ma.bytes}, {3, (uint8_t *)"\xff\xff\xff"}, {0, NULL}};
    Kad__Message__Peer p1 = KAD__MESSAGE__PEER__INIT, p2 = KAD__MESSAGE__PEER__INIT;
    p1.id.data = good.bytes;
    p1.id.len = good.len;
    p1.n_addrs = 3;
    p1.addrs = addrs;
    p1.connection = (Kad__Message__ConnectionType)99;
    p2.id.data = bad_id;
    p2.id.len = sizeof bad_id;
    Kad__Message__Peer *list[2] = {&p2, &p1};
    Kad__Message pm = KAD__MESSAGE__INIT;
    pm.type = KAD__MESSAGE__MESSAGE_TYPE__FIND_NODE;
    pm.n_closerpeers = 2;
    pm.closerpeers = list;
    uint8_t buf[512];
    size_t len = kad__message__pack(&pm, buf);

    cp2p_kad_msg_t d = {0};
    assert_int_equal(cp2p_kad_msg_decode(buf, len, &d), 0);
    assert_int_equal(d.n_closer, 1);
    assert_true(cp2p_peer_id_equal(&d.closer[0].id, &good));
    assert_int_equal(d.closer[0].n_addrs, 1);
    assert_true(cp2p_multiaddr_equal(&d.closer[0].addrs[0], &ma));
    assert_int_equal(d.closer[0].connection, CP2P_KAD_NOT_CONNECTED);
    assert_int_equal(d.n_dropped, 3);
    cp2p_kad_msg_clear(&d);
    cp2p_multiaddr_free(&ma);
}

static void test_limits(void **state)
{
    static uint8_t big[CP2P_KAD_MAX_VALUE + 1];
    cp2p_buf_t b = {0};
    cp2p_kad_msg_t m = {.type = CP2P_KAD_PUT_VALUE, .key = big, .key_len = CP2P_KAD_MAX_KEY + 1};
    assert_int_equal(cp2p_kad_msg_write(&m, &b), CP2P_EOVERFLOW);
    m.key_len = 4;
    m.has_record = 1;
    m.rec_key = big;
    m.rec_key_len = 4;
    m.rec_value = big;
    m.rec_value_len = sizeof big;
    assert_int_equal(cp2p_kad_msg_write(&m, &b), CP2P_EOVERFLOW);
    assert_int_equal(b.len, 0);

    /* The same oversized value arriving from a remote. */
    Kad__Message pm = KAD__MESSAGE__INIT;
    Kad__Record rec = KAD__RECORD__INIT;
    rec.value.data = big;
    rec.value.len = sizeof big;
    pm.record = &rec;
    size_t len = kad__message__get_packed_size(&pm);
    assert_int_equal(cp2p_buf_reserve(&b, len), 0);
    b.len = kad__message__pack(&pm, b.data);
    cp2p_kad_msg_t d = {0};
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), CP2P_EOVERFLOW);
    assert_null(d.rec_value);
    cp2p_buf_free(&b);

    /* More closer peers than we keep: the surplus is dropped, not fatal. */
    Kad__Message__Peer ps[CP2P_KAD_MAX_MSG_PEERS + 5], *pp[CP2P_KAD_MAX_MSG_PEERS + 5];
    cp2p_peer_id_t ids[CP2P_KAD_MAX_MSG_PEERS + 5];
    for (size_t i = 0; i < CP2P_KAD_MAX_MSG_PEERS + 5; i++) {
        kad__message__peer__init(&ps[i]);
        ids[i] = make_id((uint8_t)i);
        ps[i].id.data = ids[i].bytes;
        ps[i].id.len = ids[i].len;
        pp[i] = &ps[i];
    }
    Kad__Message many = KAD__MESSAGE__INIT;
    many.type = KAD__MESSAGE__MESSAGE_TYPE__FIND_NODE;
    many.n_closerpeers = CP2P_KAD_MAX_MSG_PEERS + 5;
    many.closerpeers = pp;
    assert_int_equal(cp2p_buf_reserve(&b, kad__message__get_packed_size(&many)), 0);
    b.len = kad__message__pack(&many, b.data);
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.n_closer, CP2P_KAD_MAX_MSG_PEERS);
    assert_int_equal(d.n_dropped, 5);
    cp2p_kad_msg_clear(&d);
    cp2p_buf_free(&b);
}

static void test_hostile(void **state)
{
    cp2p_kad_msg_t d = {0};
    /* type 9 does not exist */
    assert_int_equal(cp2p_kad_msg_decode((const uint8_t *)"\x08\x09", 2, &d), CP2P_EUNSUPPORTED);
    /* a length running past the end */
    assert_int_equal(cp2p_kad_msg_decode((const uint8_t *)"\x12\x7f\x01", 3, &d), CP2P_EPARSE);
    assert_int_equal(cp2p_kad_msg_decode((const uint8_t *)"", 0, &d), 0);
    assert_int_equal(d.type, CP2P_KAD_PUT_VALUE);
    cp2p_kad_msg_clear(&d);

    const uint8_t *body;
    size_t body_len;
    /* 4 MiB + 1 announced */
    static const uint8_t huge[] = {0x81, 0x80, 0x80, 0x02};
    assert_int_equal(cp2p_kad_msg_frame(huge, sizeof huge, &body, &body_len), CP2P_EOVERFLOW);
    /* non-minimal varint prefix */
    assert_int_equal(cp2p_kad_msg_frame((const uint8_t *)"\x80\x00", 2, &body, &body_len),
                     CP2P_EPARSE);
    assert_int_equal(cp2p_kad_msg_frame((const uint8_t *)"\x80", 1, &body, &body_len),
                     CP2P_ETRUNC);
    assert_int_equal(cp2p_kad_msg_frame((const uint8_t *)"\x00", 1, &body, &body_len), 1);
    assert_int_equal(body_len, 0);
}

/* Repeated fields are counted on the wire before protobuf-c allocates for
 * them (issue #13): 4 MiB of empty closerPeers would unpack into hundreds
 * of MiB. Past the wire caps the message is refused; under them it decodes
 * (and keeps CP2P_KAD_MAX_MSG_PEERS). */
static void test_wire_caps(void **state)
{
    cp2p_kad_msg_t d = {0};
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_buf_append(&b, "\x08\x04", 2), 0); /* FIND_NODE */
    for (int i = 0; i < CP2P_KAD_WIRE_MAX_PEERS; i++)
        assert_int_equal(cp2p_buf_append(&b, "\x42\x00", 2), 0); /* closerPeers {} */
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), 0);
    cp2p_kad_msg_clear(&d);
    assert_int_equal(cp2p_buf_append(&b, "\x42\x00", 2), 0);
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), CP2P_EOVERFLOW);
    cp2p_buf_reset(&b);
    while (b.len < CP2P_KAD_MAX_MESSAGE - 2)
        assert_int_equal(cp2p_buf_append(&b, "\x42\x00", 2), 0);
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), CP2P_EOVERFLOW);
    cp2p_buf_reset(&b);
    for (int i = 0; i < CP2P_KAD_WIRE_MAX_PROVIDERS + 1; i++)
        assert_int_equal(cp2p_buf_append(&b, "\x4a\x00", 2), 0); /* providerPeers {} */
    assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), CP2P_EOVERFLOW);

    /* One peer with as many (empty) addresses as allowed, then one more. */
    for (int extra = 0; extra < 2; extra++) {
        size_t na = CP2P_KAD_WIRE_MAX_PEER_ADDRS + (size_t)extra;
        cp2p_buf_reset(&b);
        assert_int_equal(cp2p_buf_append(&b, "\x42", 1), 0);
        assert_int_equal(cp2p_buf_append_uvarint(&b, 2 * na), 0);
        for (size_t i = 0; i < na; i++)
            assert_int_equal(cp2p_buf_append(&b, "\x12\x00", 2), 0);
        assert_int_equal(cp2p_kad_msg_decode(b.data, b.len, &d), extra ? CP2P_EOVERFLOW : 0);
        cp2p_kad_msg_clear(&d);
    }
    /* A peer that is not well formed inside is refused, not skipped. */
    assert_int_equal(cp2p_kad_msg_decode((const uint8_t *)"\x42\x02\x12\x05", 4, &d),
                     CP2P_EPARSE);
    cp2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_wire_bytes),
        cmocka_unit_test(test_bad_peers_dropped),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_wire_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
