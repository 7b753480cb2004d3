/* Identify message codec: wire vectors, merging of split messages, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "cp2p/identify.h"

/* Field tags: protocolVersion 5, agentVersion 6, publicKey 1, listenAddrs 2,
 * observedAddr 4, protocols 3, signedPeerRecord 8. */
static const uint8_t VECTOR[] = {
    30,                                                   /* length prefix */
    0x2a, 10, 'i', 'p', 'f', 's', '/', '0', '.', '1', '.', '0',
    0x32, 2, 'j', 's',
    0x1a, 2, '/', 'a',
    0x12, 8, 0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92, /* /ip4/127.0.0.1/tcp/4242 */
};

static void test_decode_vector(void **state)
{
    cp2p_identify_msg_t m;
    assert_int_equal(cp2p_identify_decode(VECTOR, sizeof VECTOR, &m), 0);
    assert_string_equal(m.protocol_version, "ipfs/0.1.0");
    assert_string_equal(m.agent_version, "js");
    assert_int_equal(m.n_protocols, 1);
    assert_string_equal(m.protocols[0], "/a");
    assert_int_equal(m.n_listen_addrs, 1);
    assert_int_equal(m.listen_addr_lens[0], 8);
    assert_memory_equal(m.listen_addrs[0], VECTOR + 23, 8);
    assert_null(m.public_key);
    assert_null(m.signed_peer_record);
    cp2p_identify_msg_free(&m);
}

static void test_roundtrip_and_merge(void **state)
{
    uint8_t a1[] = {1, 2, 3}, a2[] = {4, 5};
    uint8_t *addrs[] = {a1, a2};
    size_t lens[] = {3, 2};
    char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    uint8_t key[] = {8, 1, 18, 0};
    cp2p_identify_msg_t m = {
        .protocol_version = "ipfs/0.1.0",
        .agent_version = "cp2p/0.1.0",
        .public_key = key,
        .public_key_len = sizeof key,
        .listen_addrs = addrs,
        .listen_addr_lens = lens,
        .n_listen_addrs = 2,
        .observed_addr = a2,
        .observed_addr_len = 2,
        .protocols = protos,
        .n_protocols = 2,
        .signed_peer_record = a1,
        .signed_peer_record_len = 3,
    };
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(b.data[0], b.len - 1);
    /* A second message, as go-libp2p sends when the first would be too large. */
    cp2p_identify_msg_t m2 = {.agent_version = "later", .protocols = protos, .n_protocols = 1};
    assert_int_equal(cp2p_identify_encode(&m2, &b), 0);

    cp2p_identify_msg_t d;
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), 0);
    assert_string_equal(d.protocol_version, "ipfs/0.1.0");
    assert_string_equal(d.agent_version, "later");
    assert_int_equal(d.public_key_len, sizeof key);
    assert_memory_equal(d.public_key, key, sizeof key);
    assert_int_equal(d.n_listen_addrs, 2);
    assert_memory_equal(d.listen_addrs[1], a2, 2);
    assert_int_equal(d.observed_addr_len, 2);
    assert_int_equal(d.signed_peer_record_len, 3);
    assert_int_equal(d.n_protocols, 3);
    assert_string_equal(d.protocols[2], "/ipfs/ping/1.0.0");
    cp2p_identify_msg_free(&d);

    /* cut anywhere inside the second message: truncated */
    assert_int_equal(cp2p_identify_decode(b.data, b.len - 1, &d), CP2P_ETRUNC);
    assert_null(d.agent_version);
    cp2p_buf_free(&b);
}

static void test_limits(void **state)
{
    cp2p_identify_msg_t d;
    assert_int_equal(cp2p_identify_decode(NULL, 0, &d), CP2P_ETRUNC);

    /* more than CP2P_IDENTIFY_MAX_MESSAGES messages */
    cp2p_buf_t b = {0};
    for (int i = 0; i <= CP2P_IDENTIFY_MAX_MESSAGES; i++)
        assert_int_equal(cp2p_buf_append(&b, VECTOR, sizeof VECTOR), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_ELIMIT);
    assert_int_equal(cp2p_identify_decode(b.data, b.len - sizeof VECTOR, &d), 0);
    cp2p_identify_msg_free(&d);
    cp2p_buf_reset(&b);

    /* one message over 8 KiB */
    assert_int_equal(cp2p_buf_append_uvarint(&b, CP2P_IDENTIFY_MAX_MESSAGE + 1), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_EOVERFLOW);
    cp2p_buf_reset(&b);

    /* too many protocols across messages */
    char *protos[CP2P_IDENTIFY_MAX_PROTOCOLS / 2 + 1];
    for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
        protos[i] = "/p";
    cp2p_identify_msg_t m = {.protocols = protos, .n_protocols = sizeof protos / sizeof protos[0]};
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(cp2p_identify_encode(&m, &b), 0);
    assert_int_equal(cp2p_identify_decode(b.data, b.len, &d), CP2P_ELIMIT);
    cp2p_buf_free(&b);

    /* not protobuf: field 1 claims more bytes than the message has */
    static const uint8_t bad[] = {3, 0x0a, 5, 1};
    assert_int_equal(cp2p_identify_decode(bad, sizeof bad, &d), CP2P_EPARSE);
    /* wrong wire type for a string */
    static const uint8_t bad2[] = {2, 0x28, 1};
    assert_int_equal(cp2p_identify_decode(bad2, sizeof bad2, &d), CP2P_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_vector),
        cmocka_unit_test(test_roundtrip_and_merge),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
