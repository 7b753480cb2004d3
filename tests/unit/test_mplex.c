/* Mplex: exact frame bytes, two sessions in memory both ways, half-close,
 * reset, limits on streams and buffering, re-entrant callbacks, malformed frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "cp2p/varint.h"
#include "muxer/muxer.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define MUX cp2p_mplex_vtable

typedef struct side {
    cp2p_mux_t *m;
    struct side *peer;
    int direct;   /* send() feeds the peer at once instead of queueing */
    cp2p_buf_t q; /* bytes sent, not yet delivered */
    cp2p_buf_t data;
    cp2p_mux_stream_id_t last_opened, last_data, last_eof, last_reset;
    int opened, eofs, resets, data_calls;
    int reject_open;
    int echo;          /* write back what arrives, this many times */
    int reset_on_data; /* reset the stream from inside stream_data */
    int consume;       /* call consumed() for what arrives */
} side_t;

static int ev_send(void *ctx, const uint8_t *p, size_t n)
{
    side_t *s = ctx;
    if (s->direct)
        return MUX.input(s->peer->m, p, n) < 0 ? CP2P_EIO : 0;
    return cp2p_buf_append(&s->q, p, n);
}

static int ev_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    side_t *s = ctx;
    s->opened++;
    s->last_opened = id;
    return s->reject_open ? CP2P_ELIMIT : 0;
}

static void ev_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    side_t *s = ctx;
    s->data_calls++;
    s->last_data = id;
    assert_int_equal(cp2p_buf_append(&s->data, p, n), 0);
    if (s->consume)
        assert_int_equal(MUX.consumed(s->m, id, n), 0);
    if (s->echo > 0) {
        s->echo--;
        assert_int_equal(MUX.write(s->m, id, p, n), (long)n);
    }
    if (s->reset_on_data)
        assert_int_equal(MUX.reset(s->m, id), 0);
}

static void ev_eof(void *ctx, cp2p_mux_stream_id_t id)
{
    side_t *s = ctx;
    s->eofs++;
    s->last_eof = id;
}

static void ev_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    side_t *s = ctx;
    s->resets++;
    s->last_reset = id;
}

static void side_init(side_t *s, const cp2p_mux_config_t *cfg, int initiator)
{
    memset(s, 0, sizeof(*s));
    cp2p_mux_events_t ev = {s, ev_send, ev_opened, ev_data, ev_eof, ev_reset, NULL, NULL};
    assert_int_equal(MUX.create(&s->m, initiator, cfg, &ev), 0);
}

static void side_free(side_t *s)
{
    MUX.destroy(s->m);
    cp2p_buf_free(&s->q);
    cp2p_buf_free(&s->data);
}

static void pair(side_t *a, side_t *b, const cp2p_mux_config_t *cfg)
{
    side_init(a, cfg, 1);
    side_init(b, cfg, 0);
    a->peer = b;
    b->peer = a;
}

/* Deliver queued bytes both ways until both queues are empty. */
static void pump(side_t *a, side_t *b)
{
    while (a->q.len || b->q.len) {
        side_t *from = a->q.len ? a : b;
        size_t n;
        uint8_t *p = cp2p_buf_steal(&from->q, &n);
        assert_int_equal(MUX.input(from->peer->m, p, n), 0);
        free(p);
    }
}

static void expect_q(side_t *s, const void *exp, size_t n)
{
    assert_int_equal(s->q.len, n);
    assert_memory_equal(s->q.data, exp, n);
    cp2p_buf_reset(&s->q);
}

static void test_frame_bytes(void **state)
{
    side_t a;
    side_init(&a, NULL, 1);
    cp2p_mux_stream_id_t s0, s1;
    assert_string_equal(MUX.protocol_id, "/mplex/6.7.0");
    assert_int_equal(MUX.open_stream(a.m, &s0), 0);
    expect_q(&a, S("\x00\x01" "0")); /* NewStream id 0, named "0" */
    assert_int_equal(MUX.open_stream(a.m, &s1), 0);
    expect_q(&a, S("\x08\x01" "1"));
    assert_int_equal(MUX.write(a.m, s0, S("hi")), 2);
    expect_q(&a, S("\x02\x02hi")); /* MessageInitiator */
    assert_int_equal(MUX.close_write(a.m, s0), 0);
    expect_q(&a, S("\x04\x00")); /* CloseInitiator */
    assert_int_equal(MUX.write(a.m, s0, S("x")), CP2P_ECLOSED);
    assert_int_equal(MUX.reset(a.m, s1), 0);
    expect_q(&a, S("\x0e\x00")); /* ResetInitiator id 1 */
    assert_int_equal(MUX.write(a.m, s1, S("x")), CP2P_ERESET);

    /* a stream the remote opened, id 16: the header needs two bytes */
    assert_int_equal(MUX.input(a.m, S("\x80\x01\x00")), 0);
    assert_int_equal(a.opened, 1);
    cp2p_mux_stream_id_t r = a.last_opened;
    assert_true(r != s0 && r != s1);
    assert_int_equal(MUX.write(a.m, r, S("ok")), 2);
    expect_q(&a, S("\x81\x01\x02ok")); /* MessageReceiver */
    assert_int_equal(MUX.close_write(a.m, r), 0);
    expect_q(&a, S("\x83\x01\x00")); /* CloseReceiver */
    assert_int_equal(MUX.reset(a.m, r), 0);
    expect_q(&a, S("\x85\x01\x00")); /* ResetReceiver */
    assert_int_equal(MUX.ping(a.m, NULL), CP2P_EUNSUPPORTED);
    assert_int_equal(MUX.goaway(a.m), 0);
    side_free(&a);
}

static void test_two_sessions(void **state)
{
    side_t a, b;
    pair(&a, &b, NULL);
    b.echo = 1;
    cp2p_mux_stream_id_t sa, sb;
    assert_int_equal(MUX.open_stream(a.m, &sa), 0);
    assert_int_equal(MUX.write(a.m, sa, S("hello")), 5);
    /* both sides open their stream 0 at once: different streams */
    assert_int_equal(MUX.open_stream(b.m, &sb), 0);
    assert_int_equal(MUX.write(b.m, sb, S("from b")), 6);
    pump(&a, &b);
    assert_int_equal(b.opened, 1);
    assert_int_equal(a.opened, 1);
    assert_true(a.last_opened != sa);
    /* b echoed "hello" on a's stream from inside its data callback */
    assert_int_equal(a.data.len, 11);
    assert_memory_equal(a.data.data, "from bhello", 11);
    assert_int_equal(b.data.len, 5);
    assert_memory_equal(b.data.data, "hello", 5);
    assert_true(b.last_data == b.last_opened);

    /* half-close: a stops writing, b may still answer */
    assert_int_equal(MUX.close_write(a.m, sa), 0);
    pump(&a, &b);
    assert_int_equal(b.eofs, 1);
    assert_true(b.last_eof == b.last_opened);
    assert_int_equal(MUX.write(b.m, b.last_opened, S("late")), 4);
    assert_int_equal(MUX.close_write(b.m, b.last_opened), 0);
    pump(&a, &b);
    assert_int_equal(a.eofs, 1);
    assert_true(a.last_eof == sa);
    assert_memory_equal(a.data.data + 11, "late", 4);
    MUX.release(a.m, sa);
    MUX.release(b.m, b.last_opened);
    /* released after a clean close: nothing goes on the wire */
    assert_int_equal(a.q.len + b.q.len, 0);
    assert_int_equal(MUX.write(a.m, sa, S("x")), CP2P_ERESET);

    /* a remote reset reaches the other side's callback */
    assert_int_equal(MUX.reset(b.m, sb), 0);
    pump(&a, &b);
    assert_int_equal(a.resets, 1);
    assert_true(a.last_reset == a.last_opened);
    side_free(&a);
    side_free(&b);
}

static void test_chunking(void **state)
{
    cp2p_mux_config_t cfg = {.max_frame = 65536};
    side_t a, b;
    pair(&a, &b, &cfg);
    b.consume = 1;
    size_t n = 150000;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 7);
    cp2p_mux_stream_id_t s;
    assert_int_equal(MUX.open_stream(a.m, &s), 0);
    cp2p_buf_reset(&a.q);
    assert_int_equal(MUX.write(a.m, s, big, n), (long)n);
    /* frames of 65536, 65536 and 18928 bytes */
    size_t off = 0, sizes[3] = {65536, 65536, 18928};
    for (int i = 0; i < 3; i++) {
        uint64_t hdr, len;
        int k = cp2p_uvarint_decode(a.q.data + off, a.q.len - off, &hdr);
        assert_true(k > 0);
        assert_int_equal(hdr, 2);
        off += (size_t)k;
        k = cp2p_uvarint_decode(a.q.data + off, a.q.len - off, &len);
        assert_true(k > 0);
        assert_int_equal(len, sizes[i]);
        off += (size_t)k + len;
    }
    assert_int_equal(off, a.q.len);
    /* the peer gets it whole even when the bytes trickle in unevenly */
    uint8_t open[] = {0x00, 0x01, '0'};
    assert_int_equal(MUX.input(b.m, open, sizeof(open)), 0);
    for (size_t i = 0; i < a.q.len; i += 977) {
        size_t k = a.q.len - i < 977 ? a.q.len - i : 977;
        assert_int_equal(MUX.input(b.m, a.q.data + i, k), 0);
    }
    assert_int_equal(b.data.len, n);
    assert_memory_equal(b.data.data, big, n);
    free(big);
    side_free(&a);
    side_free(&b);
}

static void test_buffer_bound(void **state)
{
    cp2p_mux_config_t cfg = {.max_buffered = 10};
    side_t b;
    side_init(&b, &cfg, 0);
    assert_int_equal(MUX.input(b.m, S("\x00\x00" "\x02\x06" "abcdef")), 0);
    cp2p_mux_stream_id_t id = b.last_opened;
    /* consumed bytes no longer count */
    assert_int_equal(MUX.consumed(b.m, id, 6), 0);
    assert_int_equal(MUX.input(b.m, S("\x02\x06" "ghijkl")), 0);
    assert_int_equal(MUX.input(b.m, S("\x02\x04" "mnop")), 0);
    assert_int_equal(b.resets, 0);
    assert_int_equal(b.q.len, 0);
    /* 11 unconsumed bytes > 10: the stream is reset, the connection lives */
    assert_int_equal(MUX.input(b.m, S("\x02\x01" "q" "\x02\x01" "r" "\x00\x00")), 0);
    assert_int_equal(b.resets, 1);
    assert_true(b.last_reset == id);
    assert_int_equal(b.data.len, 16);
    expect_q(&b, S("\x05\x00")); /* ResetReceiver id 0 */
    /* "r" went to a dead stream and was dropped; the id may then be reused */
    assert_int_equal(b.opened, 2);
    assert_int_equal(b.data.len, 16);
    side_free(&b);
}

static void test_stream_limit(void **state)
{
    cp2p_mux_config_t cfg = {.max_streams = 2};
    side_t b;
    side_init(&b, &cfg, 0);
    assert_int_equal(MUX.input(b.m, S("\x00\x00" "\x08\x00" "\x10\x00" "\x12\x01z")), 0);
    assert_int_equal(b.opened, 2);
    expect_q(&b, S("\x15\x00")); /* id 2 refused with ResetReceiver */
    assert_int_equal(b.data_calls, 0);
    cp2p_mux_stream_id_t id;
    assert_int_equal(MUX.open_stream(b.m, &id), CP2P_ELIMIT);

    /* the application refuses a stream */
    side_t c;
    side_init(&c, NULL, 0);
    c.reject_open = 1;
    assert_int_equal(MUX.input(c.m, S("\x18\x00" "\x1a\x01z")), 0);
    expect_q(&c, S("\x1d\x00"));
    assert_int_equal(c.data_calls, 0);
    side_free(&b);
    side_free(&c);
}

static void test_protocol_rules(void **state)
{
    side_t b;
    side_init(&b, NULL, 0);
    /* frames for unknown streams are ignored: data, close, reset, both roles */
    assert_int_equal(MUX.input(b.m, S("\x0a\x01x" "\x09\x01x" "\x0c\x00" "\x0b\x00" "\x0e\x00"
                                      "\x0d\x00")),
                     0);
    assert_int_equal(b.data_calls + b.eofs + b.resets + b.opened, 0);
    assert_int_equal(b.q.len, 0);
    /* data after the remote closed is a violation for that stream only */
    assert_int_equal(MUX.input(b.m, S("\x00\x00" "\x04\x00" "\x04\x00" "\x02\x01x")), 0);
    assert_int_equal(b.eofs, 1);
    assert_int_equal(b.resets, 1);
    expect_q(&b, S("\x05\x00"));
    /* an empty message is not delivered */
    assert_int_equal(MUX.input(b.m, S("\x08\x03" "abc" "\x0a\x00")), 0);
    assert_int_equal(b.data_calls, 0);
    /* NewStream on a live stream breaks the connection */
    assert_int_equal(MUX.input(b.m, S("\x08\x00")), CP2P_EPROTO);
    assert_int_equal(MUX.input(b.m, S("\x0a\x01x")), CP2P_EPROTO);
    side_free(&b);
}

static int input_fresh(const uint8_t *p, size_t n)
{
    side_t b;
    side_init(&b, NULL, 0);
    int rc = MUX.input(b.m, p, n);
    side_free(&b);
    return rc;
}

static void test_malformed(void **state)
{
    assert_int_equal(input_fresh(S("\x07\x00")), CP2P_EPROTO);          /* flag 7 */
    assert_int_equal(input_fresh(S("\x0f")), CP2P_EPROTO);              /* flag 7, before length */
    assert_int_equal(input_fresh(S("\x80\x00\x00")), CP2P_EPARSE);      /* non-minimal header */
    assert_int_equal(input_fresh(S("\x00\x80\x00")), CP2P_EPARSE);      /* non-minimal length */
    assert_int_equal(input_fresh(S("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")), CP2P_EPARSE);
    assert_int_equal(input_fresh(S("\x02\x81\x80\x40")), CP2P_EPROTO);  /* 1 MiB + 1 */
    assert_int_equal(input_fresh(S("\x02\x80\x80\x80")), CP2P_EPROTO);  /* 4-byte length */
    /* incomplete frames wait for more bytes */
    assert_int_equal(input_fresh(S("\x80")), 0);
    assert_int_equal(input_fresh(S("\x02")), 0);
    assert_int_equal(input_fresh(S("\x02\x80\x80")), 0);
    assert_int_equal(input_fresh(S("\x02\x05he")), 0);

    /* exactly 1 MiB is allowed */
    side_t b;
    side_init(&b, NULL, 0);
    uint8_t *f = calloc(1, (1u << 20) + 6);
    /* NewStream 0 with an empty name, then a MessageInitiator of 2^20 bytes */
    memcpy(f, "\x00\x00\x02\x80\x80\x40", 6);
    assert_int_equal(MUX.input(b.m, f, 6), 0);
    assert_int_equal(MUX.input(b.m, f + 6, (1u << 20)), 0);
    assert_int_equal(b.data.len, 1u << 20);
    free(f);
    side_free(&b);
}

static void test_reentrant(void **state)
{
    /* reset from inside stream_data: later frames of that read are dropped */
    side_t b;
    side_init(&b, NULL, 0);
    b.reset_on_data = 1;
    assert_int_equal(MUX.input(b.m, S("\x00\x00" "\x02\x01x" "\x02\x01y" "\x04\x00")), 0);
    assert_int_equal(b.data_calls, 1);
    assert_int_equal(b.eofs, 0);
    expect_q(&b, S("\x05\x00"));
    side_free(&b);

    /* sessions wired straight to each other: input re-enters from callbacks */
    side_t x, y;
    pair(&x, &y, NULL);
    x.direct = y.direct = 1;
    x.echo = 3;
    y.echo = 3;
    cp2p_mux_stream_id_t s;
    assert_int_equal(MUX.open_stream(x.m, &s), 0);
    assert_int_equal(MUX.write(x.m, s, S("ping")), 4);
    /* the echo bounced 3 times each way */
    assert_int_equal(y.data.len, 16);
    assert_int_equal(x.data.len, 12);
    assert_int_equal(y.data_calls, 4);
    side_free(&x);
    side_free(&y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_bytes),
        cmocka_unit_test(test_two_sessions),
        cmocka_unit_test(test_chunking),
        cmocka_unit_test(test_buffer_bound),
        cmocka_unit_test(test_stream_limit),
        cmocka_unit_test(test_protocol_rules),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_reentrant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
