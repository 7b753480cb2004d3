/* WebSocket engines (RFC 6455): the upgrade both ways, fed whole and a byte
 * at a time, with what follows the head kept; the RFC's accept example;
 * refusals; framing at every split and size, masking rules, pings, close,
 * fragmentation, and the frames a peer must not send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "transport/ws_proto.h"

/* Feeds a whole head in pieces of `step` bytes; the handshake's result. */
static int feed(cp2p_ws_handshake_t *h, const uint8_t *p, size_t n, size_t step, size_t *used_total,
                cp2p_buf_t *out)
{
    int rc = 0;
    *used_total = 0;
    for (size_t off = 0; off < n && rc == 0;) {
        size_t k = n - off < step ? n - off : step, used = 0;
        rc = cp2p_ws_handshake_input(h, p + off, k, &used, out);
        *used_total += used;
        off += k;
    }
    return rc;
}

static void test_handshake(void **state)
{
    (void)state;
    for (size_t step = 1; step <= 4096; step *= 8) {
        cp2p_ws_handshake_t c, s;
        cp2p_buf_t req = {0}, resp = {0}, none = {0};
        assert_int_equal(cp2p_ws_client_start(&c, "127.0.0.1:4001", &req), 0);
        assert_non_null(strstr((char *)req.data, "Host: 127.0.0.1:4001\r\n"));
        /* the request, then frames the client sent at once: kept apart */
        cp2p_buf_append(&req, "\x82\x80", 2);
        cp2p_ws_server_init(&s);
        size_t used;
        assert_int_equal(feed(&s, req.data, req.len, step, &used, &resp), 1);
        assert_int_equal(used, req.len - 2);
        assert_memory_equal(resp.data, "HTTP/1.1 101 Switching Protocols\r\n", 34);
        cp2p_buf_append(&resp, "tail", 4);
        assert_int_equal(feed(&c, resp.data, resp.len, step, &used, &none), 1);
        assert_int_equal(used, resp.len - 4);
        assert_int_equal(none.len, 0);
        cp2p_ws_handshake_free(&c);
        cp2p_ws_handshake_free(&s);
        cp2p_buf_free(&req);
        cp2p_buf_free(&resp);
    }
}

/* RFC 6455 section 1.3's example key and answer. */
static void test_rfc_example(void **state)
{
    (void)state;
    const char *req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";
    cp2p_ws_handshake_t s;
    cp2p_buf_t out = {0};
    size_t used;
    cp2p_ws_server_init(&s);
    assert_int_equal(cp2p_ws_handshake_input(&s, (const uint8_t *)req, strlen(req), &used, &out), 1);
    cp2p_buf_append(&out, "", 1);
    assert_non_null(strstr((char *)out.data, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    cp2p_ws_handshake_free(&s);
    cp2p_buf_free(&out);
}

static void refused(const char *head, int want, const char *status)
{
    cp2p_ws_handshake_t s;
    cp2p_buf_t out = {0};
    size_t used;
    cp2p_ws_server_init(&s);
    assert_int_equal(cp2p_ws_handshake_input(&s, (const uint8_t *)head, strlen(head), &used, &out), want);
    cp2p_buf_append(&out, "", 1);
    if (status)
        assert_non_null(strstr((char *)out.data, status));
    cp2p_ws_handshake_free(&s);
    cp2p_buf_free(&out);
}

static void test_refusals(void **state)
{
    (void)state;
#define H(x) x "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    refused("POST / HTTP/1.1\r\n" H("") "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n", CP2P_EPROTO, "400");
    refused("GET / HTTP/1.1\r\n" H("") "Sec-WebSocket-Version: 13\r\n\r\n", CP2P_EPROTO, "400");
    refused("GET / HTTP/1.1\r\n" H("") "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 8\r\n\r\n", CP2P_EPROTO, "426");
    refused("GET / HTTP/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n", CP2P_EPROTO, "400");
    refused("GET / HTTP/1.1\r\n" H("") "Sec-WebSocket-Key: c2hvcnQ=\r\n" /* 5 bytes, not 16 */
            "Sec-WebSocket-Version: 13\r\n\r\n", CP2P_EPROTO, "400");
    refused("\x16\x03\x01garbage\r\n\r\n", CP2P_EPROTO, "400");
#undef H
    /* A head that never ends is cut at CP2P_WS_MAX_HEAD. */
    cp2p_ws_handshake_t s;
    cp2p_buf_t out = {0};
    char *big = malloc(CP2P_WS_MAX_HEAD + 100);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', CP2P_WS_MAX_HEAD + 81);
    size_t used;
    cp2p_ws_server_init(&s);
    assert_int_equal(cp2p_ws_handshake_input(&s, (uint8_t *)big, CP2P_WS_MAX_HEAD + 100, &used, &out),
                     CP2P_EOVERFLOW);
    cp2p_buf_append(&out, "", 1);
    assert_non_null(strstr((char *)out.data, "431"));
    cp2p_ws_handshake_free(&s);
    cp2p_buf_free(&out);
    free(big);

    /* A client takes only a 101 with the right accept. */
    static const char *bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        cp2p_ws_handshake_t c;
        cp2p_buf_t req = {0};
        assert_int_equal(cp2p_ws_client_start(&c, "h:1", &req), 0);
        assert_int_equal(cp2p_ws_handshake_input(&c, (const uint8_t *)bad[i], strlen(bad[i]), &used, &out),
                         CP2P_EPROTO);
        cp2p_ws_handshake_free(&c);
        cp2p_buf_free(&req);
    }
}

/* Frames for payloads of these sizes, from a client, decoded by a server
 * in pieces of `step`: the payloads come out whole and in order. */
static void roundtrip(int client, size_t step)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 100000};
    cp2p_ws_framer_t tx, rx;
    cp2p_ws_framer_init(&tx, client);
    cp2p_ws_framer_init(&rx, !client);
    cp2p_buf_t wire = {0}, want = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *p = malloc(sizes[i] + 1), head[CP2P_WS_MAX_FRAME_HEAD];
        for (size_t k = 0; k < sizes[i]; k++)
            p[k] = (uint8_t)(k * 13 + i);
        cp2p_buf_append(&want, p, sizes[i]);
        size_t h = cp2p_ws_frame(&tx, p, sizes[i], head);
        assert_true(h <= CP2P_WS_MAX_FRAME_HEAD);
        assert_int_equal(head[1] >> 7, client); /* masked from clients only */
        cp2p_buf_append(&wire, head, h);
        cp2p_buf_append(&wire, p, sizes[i]);
        free(p);
    }
    cp2p_buf_t got = {0}, reply = {0};
    for (size_t off = 0; off < wire.len;) {
        size_t k = wire.len - off < step ? wire.len - off : step;
        int eof = 0;
        ssize_t n = cp2p_ws_decode(&rx, wire.data + off, k, &reply, &eof);
        assert_true(n >= 0);
        assert_false(eof);
        cp2p_buf_append(&got, wire.data + off, (size_t)n);
        off += k;
    }
    assert_int_equal(reply.len, 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    cp2p_buf_free(&wire);
    cp2p_buf_free(&want);
    cp2p_buf_free(&got);
}

static void test_framing(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 2, 3, 13, 125, 4096, 1 << 20};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        roundtrip(1, steps[i]);
        roundtrip(0, steps[i]);
    }
}

/* Decodes bytes as a server (client frames: masked with a zero key). */
static ssize_t server_decode(const uint8_t *in, size_t n, cp2p_buf_t *reply, int *eof)
{
    cp2p_ws_framer_t f;
    cp2p_ws_framer_init(&f, 0);
    uint8_t *p = malloc(n + 1);
    memcpy(p, in, n);
    *eof = 0;
    ssize_t r = cp2p_ws_decode(&f, p, n, reply, eof);
    free(p);
    return r;
}

static void test_control_and_violations(void **state)
{
    (void)state;
    cp2p_buf_t reply = {0};
    int eof;
    /* ping "hi" between two data frames: the data flows, a pong answers */
    static const uint8_t ping[] = {0x82, 0x81, 0, 0, 0, 0, 'a', 0x89, 0x82, 0, 0, 0, 0, 'h', 'i',
                                   0x82, 0x81, 0, 0, 0, 0, 'b'};
    assert_int_equal(server_decode(ping, sizeof ping, &reply, &eof), 2);
    assert_false(eof);
    static const uint8_t pong[] = {0x8a, 0x02, 'h', 'i'};
    assert_int_equal(reply.len, sizeof pong);
    assert_memory_equal(reply.data, pong, sizeof pong);
    cp2p_buf_reset(&reply);
    /* a fragmented binary message */
    static const uint8_t frag[] = {0x02, 0x81, 0, 0, 0, 0, 'x', 0x00, 0x81, 0, 0, 0, 0, 'y', 0x80, 0x80, 0, 0, 0, 0};
    assert_int_equal(server_decode(frag, sizeof frag, &reply, &eof), 2);
    /* close: what came before it is delivered, eof, and a close answers */
    static const uint8_t cls[] = {0x82, 0x81, 0, 0, 0, 0, 'z', 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8,
                                  0x82, 0x81, 0, 0, 0, 0, 'q'};
    assert_int_equal(server_decode(cls, sizeof cls, &reply, &eof), 1);
    assert_true(eof);
    assert_int_equal(reply.data[0], 0x88);
    cp2p_buf_reset(&reply);

    static const struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } bad[] = {
        {"text", {0x81, 0x81, 0, 0, 0, 0, 'a'}, 7},
        {"unmasked from a client", {0x82, 0x01, 'a'}, 3},
        {"reserved bits", {0xc2, 0x81, 0, 0, 0, 0, 'a'}, 7},
        {"reserved opcode", {0x83, 0x80, 0, 0, 0, 0}, 6},
        {"control too long", {0x89, 0xfe, 0, 126, 0, 0, 0, 0}, 8},
        {"fragmented control", {0x09, 0x80, 0, 0, 0, 0}, 6},
        {"continuation out of nowhere", {0x80, 0x80, 0, 0, 0, 0}, 6},
        {"a message inside a message", {0x02, 0x80, 0, 0, 0, 0, 0x82, 0x80, 0, 0, 0, 0}, 12},
        {"length with the top bit", {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 14},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ssize_t r = server_decode(bad[i].b, bad[i].n, &reply, &eof);
        if (r != CP2P_EPROTO)
            fail_msg("%s: %zd", bad[i].what, r);
    }
    /* a server's frames must not be masked */
    cp2p_ws_framer_t c;
    cp2p_ws_framer_init(&c, 1);
    uint8_t masked[] = {0x82, 0x81, 0, 0, 0, 0, 'a'};
    assert_int_equal(cp2p_ws_decode(&c, masked, sizeof masked, &reply, &eof), CP2P_EPROTO);
    cp2p_buf_free(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_rfc_example),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_control_and_violations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
