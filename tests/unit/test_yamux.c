/* Yamux: frame bytes per the spec, two sessions wired to each other in memory,
 * flow control, limits and rejection of malformed frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/buf.h"
#include "cp2p/error.h"
#include "muxer/muxer.h"
#include "muxer/yamux.h"

#define Y cp2p_yamux_vtable
#define KIB 1024u
#define MAXREC 2100

struct rec {
    cp2p_mux_stream_id_t id;
    cp2p_buf_t data;
    int eof, reset, writable;
};

struct side {
    cp2p_mux_t *m;
    cp2p_buf_t out;  /* bytes sent, not yet delivered to the peer */
    cp2p_buf_t wire; /* every byte sent, when capture is on */
    int capture;
    struct rec recs[MAXREC];
    size_t nrec;
    size_t opened;
    int reject;        /* stream_opened returns this */
    int auto_consume;  /* consumed() from inside stream_data */
    int echo;          /* write() the data back from inside stream_data */
    int reset_on_data; /* reset() from inside stream_data */
    int goaway_seen;
    uint32_t goaway_code;
};

struct pair {
    struct side a, b; /* a is the initiator (client, odd ids) */
};

static struct rec *rec_of(struct side *s, cp2p_mux_stream_id_t id)
{
    for (size_t i = 0; i < s->nrec; i++)
        if (s->recs[i].id == id)
            return &s->recs[i];
    assert_true(s->nrec < MAXREC);
    struct rec *r = &s->recs[s->nrec++];
    r->id = id;
    return r;
}

static int on_send(void *ctx, const uint8_t *p, size_t n)
{
    struct side *s = ctx;
    if (s->capture)
        assert_int_equal(cp2p_buf_append(&s->wire, p, n), 0);
    return cp2p_buf_append(&s->out, p, n);
}

static int on_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    struct side *s = ctx;
    s->opened++;
    rec_of(s, id);
    return s->reject;
}

static void on_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    struct side *s = ctx;
    struct rec *r = rec_of(s, id);
    assert_int_equal(cp2p_buf_append(&r->data, p, n), 0);
    if (s->reset_on_data) {
        assert_int_equal(Y.reset(s->m, id), 0);
        return;
    }
    if (s->echo)
        assert_int_equal(Y.write(s->m, id, p, n), (long)n);
    if (s->auto_consume)
        assert_int_equal(Y.consumed(s->m, id, n), 0);
}

static void on_eof(void *ctx, cp2p_mux_stream_id_t id)
{
    struct side *s = ctx;
    rec_of(s, id)->eof++;
    if (s->echo)
        assert_int_equal(Y.close_write(s->m, id), 0);
}

static void on_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    rec_of(ctx, id)->reset++;
}

static void on_writable(void *ctx, cp2p_mux_stream_id_t id)
{
    rec_of(ctx, id)->writable++;
}

static void on_goaway(void *ctx, uint32_t code)
{
    struct side *s = ctx;
    s->goaway_seen++;
    s->goaway_code = code;
}

static void side_init(struct side *s, int initiator, const cp2p_mux_config_t *cfg)
{
    cp2p_mux_events_t ev = {
        .ctx = s,
        .send = on_send,
        .stream_opened = on_opened,
        .stream_data = on_data,
        .stream_eof = on_eof,
        .stream_reset = on_reset,
        .stream_writable = on_writable,
        .goaway = on_goaway,
    };
    assert_int_equal(Y.create(&s->m, initiator, cfg, &ev), 0);
}

static void side_free(struct side *s)
{
    Y.destroy(s->m);
    for (size_t i = 0; i < s->nrec; i++)
        cp2p_buf_free(&s->recs[i].data);
    cp2p_buf_free(&s->out);
    cp2p_buf_free(&s->wire);
}

static struct pair *pair_new(const cp2p_mux_config_t *ca, const cp2p_mux_config_t *cb)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    side_init(&p->a, 1, ca);
    side_init(&p->b, 0, cb);
    p->a.auto_consume = p->b.auto_consume = 1;
    return p;
}

static void pair_free(struct pair *p)
{
    side_free(&p->a);
    side_free(&p->b);
    free(p);
}

/* Deliver everything one side sent, cut into uneven pieces so that headers
 * and payloads arrive split. */
static void feed(struct side *from, struct side *to)
{
    static const size_t cuts[] = {1, 5, 12, 100, 7, 70000, 3, 300000};
    size_t len;
    uint8_t *bytes = cp2p_buf_steal(&from->out, &len);
    size_t off = 0;
    for (unsigned i = 0; off < len; i++) {
        size_t k = cuts[i % (sizeof(cuts) / sizeof(cuts[0]))];
        if (k > len - off)
            k = len - off;
        assert_int_equal(Y.input(to->m, bytes + off, k), 0);
        off += k;
    }
    free(bytes);
}

static void pump(struct pair *p)
{
    for (int i = 0; i < 100000; i++) {
        if (p->a.out.len == 0 && p->b.out.len == 0)
            return;
        feed(&p->a, &p->b);
        feed(&p->b, &p->a);
    }
    fail_msg("sessions never went quiet");
}

static void hdr(uint8_t *h, uint8_t ver, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    h[0] = ver;
    h[1] = type;
    h[2] = (uint8_t)(flags >> 8);
    h[3] = (uint8_t)flags;
    for (int i = 0; i < 4; i++) {
        h[4 + i] = (uint8_t)(id >> (24 - 8 * i));
        h[8 + i] = (uint8_t)(len >> (24 - 8 * i));
    }
}

static const uint8_t GOAWAY_PROTO[12] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

/* Frames as laid out by the spec: version 0, type, flags, stream id, length, all big endian. */
static void test_wire_format(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    p->a.capture = p->b.capture = 1;
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"hello", 5), 5);
    static const uint8_t a_out[] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, /* WU SYN id 1 */
                                    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(p->a.wire.len, sizeof(a_out));
    assert_memory_equal(p->a.wire.data, a_out, sizeof(a_out));
    pump(p);
    /* The ACK goes out before anything else on the stream. */
    static const uint8_t ack[] = {0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_true(p->b.wire.len >= sizeof(ack));
    assert_memory_equal(p->b.wire.data, ack, sizeof(ack));
    assert_int_equal(p->b.opened, 1);
    cp2p_mux_stream_id_t sb = p->b.recs[0].id;
    assert_int_equal(p->b.recs[0].data.len, 5);
    assert_memory_equal(p->b.recs[0].data.data, "hello", 5);

    /* The server's streams are even. */
    p->a.wire.len = 0;
    cp2p_mux_stream_id_t s2;
    assert_int_equal(Y.open_stream(p->b.m, &s2), 0);
    assert_int_equal((uint32_t)s2 % 2, 0);

    /* Ping: SYN out, ACK back with the same opaque value. */
    uint32_t opaque = 0, pong = 0;
    assert_int_equal(cp2p_yamux_last_pong(p->b.m, &pong), CP2P_ENOTFOUND);
    p->b.wire.len = 0;
    assert_int_equal(Y.ping(p->b.m, &opaque), 0);
    uint8_t ping[12];
    hdr(ping, 0, 2, 1, 0, opaque);
    assert_memory_equal(p->b.wire.data + p->b.wire.len - 12, ping, 12);
    pump(p);
    uint8_t pong_frame[12];
    hdr(pong_frame, 0, 2, 2, 0, opaque);
    assert_true(p->a.wire.len >= 12);
    int found = 0;
    for (size_t off = 0; off + 12 <= p->a.wire.len; off += 12)
        if (memcmp(p->a.wire.data + off, pong_frame, 12) == 0)
            found = 1;
    assert_true(found);
    assert_int_equal(cp2p_yamux_last_pong(p->b.m, &pong), 0);
    assert_int_equal(pong, opaque);

    /* RST on a window update, FIN on a window update. */
    p->b.wire.len = 0;
    assert_int_equal(Y.close_write(p->b.m, sb), 0);
    uint8_t fin[12];
    hdr(fin, 0, 1, 4, 1, 0);
    assert_memory_equal(p->b.wire.data, fin, 12);
    p->a.wire.len = 0;
    assert_int_equal(Y.reset(p->a.m, sa), 0);
    uint8_t rst[12];
    hdr(rst, 0, 1, 8, 1, 0);
    assert_memory_equal(p->a.wire.data, rst, 12);
    pair_free(p);
}

static void test_open_data_both_ways(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    assert_int_equal((uint32_t)sa % 2, 1);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"ping?", 5), 5);
    pump(p);
    assert_int_equal(p->b.opened, 1);
    cp2p_mux_stream_id_t sb = p->b.recs[0].id;
    assert_int_equal(Y.write(p->b.m, sb, (const uint8_t *)"pong!", 5), 5);
    pump(p);
    struct rec *ra = rec_of(&p->a, sa);
    assert_int_equal(ra->data.len, 5);
    assert_memory_equal(ra->data.data, "pong!", 5);

    /* A second stream gets the next odd id and its own data. */
    cp2p_mux_stream_id_t sa2;
    assert_int_equal(Y.open_stream(p->a.m, &sa2), 0);
    assert_int_equal((uint32_t)sa2, (uint32_t)sa + 2);
    assert_int_equal(Y.write(p->a.m, sa2, (const uint8_t *)"two", 3), 3);
    pump(p);
    assert_int_equal(p->b.opened, 2);
    assert_int_equal(p->b.recs[1].data.len, 3);
    assert_int_equal(p->b.recs[0].data.len, 5);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 2);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 2);
    pair_free(p);
}

static void test_half_close(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"request", 7), 7);
    assert_int_equal(Y.close_write(p->a.m, sa), 0);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"x", 1), CP2P_ECLOSED);
    pump(p);
    cp2p_mux_stream_id_t sb = p->b.recs[0].id;
    assert_int_equal(p->b.recs[0].eof, 1);
    assert_int_equal(p->b.recs[0].data.len, 7);
    /* The other direction still works after the half-close. */
    assert_int_equal(Y.write(p->b.m, sb, (const uint8_t *)"response", 8), 8);
    pump(p);
    struct rec *ra = rec_of(&p->a, sa);
    assert_int_equal(ra->data.len, 8);
    assert_int_equal(ra->eof, 0);
    assert_int_equal(Y.close_write(p->b.m, sb), 0);
    pump(p);
    assert_int_equal(ra->eof, 1);
    assert_int_equal(ra->reset, 0);
    Y.release(p->a.m, sa);
    Y.release(p->b.m, sb);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 0);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"x", 1), CP2P_ENOTFOUND);
    pair_free(p);
}

static void test_data_with_fin_in_one_frame(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    uint8_t f[12 + 3];
    hdr(f, 0, 0, 1 | 4, 1, 3); /* Data SYN|FIN "abc" */
    memcpy(f + 12, "abc", 3);
    assert_int_equal(Y.input(p->b.m, f, sizeof(f)), 0);
    assert_int_equal(p->b.opened, 1);
    assert_int_equal(p->b.recs[0].data.len, 3);
    assert_int_equal(p->b.recs[0].eof, 1);
    /* Data after FIN breaks only that stream. */
    hdr(f, 0, 0, 0, 1, 3);
    assert_int_equal(Y.input(p->b.m, f, sizeof(f)), 0);
    assert_int_equal(p->b.recs[0].reset, 1);
    assert_int_equal(p->b.recs[0].data.len, 3);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    pair_free(p);
}

static void test_reset_and_refuse(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    assert_int_equal(Y.write(p->a.m, sa, (const uint8_t *)"x", 1), 1);
    pump(p);
    cp2p_mux_stream_id_t sb = p->b.recs[0].id;
    assert_int_equal(Y.reset(p->a.m, sa), 0);
    pump(p);
    assert_int_equal(p->b.recs[0].reset, 1);
    assert_int_equal(Y.write(p->b.m, sb, (const uint8_t *)"x", 1), CP2P_ENOTFOUND);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 0);

    /* The application refuses a stream: the opener sees a reset. */
    p->b.reject = CP2P_ENEGOTIATE;
    cp2p_mux_stream_id_t s2;
    assert_int_equal(Y.open_stream(p->a.m, &s2), 0);
    assert_int_equal(Y.write(p->a.m, s2, (const uint8_t *)"early data", 10), 10);
    pump(p);
    assert_int_equal(rec_of(&p->a, s2)->reset, 1);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 0);

    /* Releasing a stream still open resets it for the remote. */
    p->b.reject = 0;
    cp2p_mux_stream_id_t s3;
    assert_int_equal(Y.open_stream(p->a.m, &s3), 0);
    pump(p);
    Y.release(p->a.m, s3);
    pump(p);
    assert_int_equal(p->b.recs[p->b.nrec - 1].reset, 1);
    pair_free(p);
}

/* A reader that stops reading stops the sender; consumed() starts it again. */
static void test_window_exhaustion_and_resume(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    p->b.auto_consume = 0;
    size_t big = 1024 * KIB;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 7);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    long n = Y.write(p->a.m, sa, buf, big);
    assert_int_equal(n, 256 * KIB);
    assert_int_equal(Y.write(p->a.m, sa, buf + n, big - n), 0);
    pump(p);
    cp2p_mux_stream_id_t sb = p->b.recs[0].id;
    struct rec *rb = &p->b.recs[0];
    assert_int_equal(rb->data.len, 256 * KIB);
    assert_int_equal(Y.write(p->a.m, sa, buf + n, big - n), 0);
    assert_int_equal(rec_of(&p->a, sa)->writable, 0);

    /* A little consumed is not worth an update; consuming more than was delivered is a caller bug. */
    assert_int_equal(Y.consumed(p->b.m, sb, 1000), 0);
    pump(p);
    assert_int_equal(rec_of(&p->a, sa)->writable, 0);
    assert_int_equal(Y.consumed(p->b.m, sb, 256 * KIB), CP2P_EINVAL);
    assert_int_equal(Y.consumed(p->b.m, sb, 256 * KIB - 1000), 0);
    pump(p);
    assert_int_equal(rec_of(&p->a, sa)->writable, 1);
    uint32_t sw = 0;
    assert_int_equal(cp2p_yamux_stream_windows(p->a.m, sa, &sw, NULL), 0);
    assert_true(sw >= 256 * KIB);
    long m = Y.write(p->a.m, sa, buf + n, big - n);
    assert_true(m >= (long)(256 * KIB));
    pump(p);
    assert_int_equal(rb->data.len, (size_t)(n + m));
    assert_memory_equal(rb->data.data, buf, (size_t)(n + m));
    free(buf);
    pair_free(p);
}

/* However long the sender keeps trying, a stalled reader holds at most one window. */
static void test_stalled_reader_bounded(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    p->b.auto_consume = 0;
    static uint8_t chunk[100 * 1024];
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    size_t sent = 0;
    for (int round = 0; round < 50; round++) {
        long n = Y.write(p->a.m, sa, chunk, sizeof(chunk));
        assert_true(n >= 0);
        sent += (size_t)n;
        pump(p);
    }
    assert_int_equal(sent, 256 * KIB);
    assert_int_equal(p->b.recs[0].data.len, 256 * KIB);
    pair_free(p);
}

/* A reader that keeps up sees its window double up to max_window, never beyond. */
static void test_window_growth(void **state)
{
    cp2p_mux_config_t cb = {.max_window = 2048 * KIB};
    struct pair *p = pair_new(NULL, &cb);
    size_t big = 4096 * KIB;
    uint8_t *buf = calloc(1, big);
    assert_non_null(buf);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    long first = 0, most = 0;
    size_t total = 0;
    for (int round = 0; round < 12; round++) {
        long n = Y.write(p->a.m, sa, buf, big);
        assert_true(n > 0);
        if (round == 0)
            first = n;
        if (n > most)
            most = n;
        assert_true(n <= (long)(2048 * KIB));
        total += (size_t)n;
        pump(p);
    }
    assert_int_equal(first, 256 * KIB);
    assert_int_equal(most, 2048 * KIB);
    assert_int_equal(p->b.recs[0].data.len, total);
    uint32_t rw = 0;
    assert_int_equal(cp2p_yamux_stream_windows(p->b.m, p->b.recs[0].id, NULL, &rw), 0);
    assert_int_equal(rw, 2048 * KIB);
    free(buf);
    pair_free(p);
}

/* A larger initial window is announced with SYN and ACK, so both can send it at once. */
static void test_initial_window_announced(void **state)
{
    cp2p_mux_config_t c = {.initial_window = 1024 * KIB};
    struct pair *p = pair_new(&c, &c);
    p->a.capture = 1;
    static uint8_t buf[2048 * 1024];
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    uint8_t syn[12];
    hdr(syn, 0, 1, 1, 1, 768 * KIB);
    assert_memory_equal(p->a.wire.data, syn, 12);
    pump(p);
    assert_int_equal(Y.write(p->a.m, sa, buf, sizeof(buf)), 1024 * KIB);
    pump(p);
    assert_int_equal(Y.write(p->b.m, p->b.recs[0].id, buf, sizeof(buf)), 1024 * KIB);
    pair_free(p);
}

static void test_max_frame_split(void **state)
{
    cp2p_mux_config_t c = {.max_frame = 1000};
    struct pair *p = pair_new(&c, NULL);
    static uint8_t buf[5500];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)i;
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    p->a.capture = 1;
    assert_int_equal(Y.write(p->a.m, sa, buf, sizeof(buf)), sizeof(buf));
    /* Six data frames: five of 1000 bytes and one of 500. */
    assert_int_equal(p->a.wire.len, sizeof(buf) + 6 * 12);
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        uint8_t h[12];
        uint32_t len = i < 5 ? 1000 : 500;
        hdr(h, 0, 0, 0, 1, len);
        assert_memory_equal(p->a.wire.data + off, h, 12);
        off += 12 + len;
    }
    pump(p);
    assert_int_equal(p->b.recs[0].data.len, sizeof(buf));
    assert_memory_equal(p->b.recs[0].data.data, buf, sizeof(buf));
    pair_free(p);
}

static void test_goaway(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    pump(p);
    p->a.capture = 1;
    assert_int_equal(Y.goaway(p->a.m), 0);
    static const uint8_t ga[12] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(p->a.wire.data, ga, 12);
    pump(p);
    assert_int_equal(p->b.goaway_seen, 1);
    assert_int_equal(p->b.goaway_code, 0);
    cp2p_mux_stream_id_t s;
    assert_int_equal(Y.open_stream(p->a.m, &s), CP2P_ECLOSED);
    assert_int_equal(Y.open_stream(p->b.m, &s), CP2P_ECLOSED);
    /* Streams already open carry on. */
    assert_int_equal(Y.write(p->b.m, p->b.recs[0].id, (const uint8_t *)"still", 5), 5);
    pump(p);
    assert_int_equal(rec_of(&p->a, sa)->data.len, 5);
    /* A SYN that crosses our GoAway is refused with RST. */
    p->a.wire.len = 0;
    uint8_t syn[12];
    hdr(syn, 0, 1, 1, 2, 0);
    assert_int_equal(Y.input(p->a.m, syn, 12), 0);
    uint8_t rst[12];
    hdr(rst, 0, 1, 8, 2, 0);
    assert_int_equal(p->a.wire.len, 12);
    assert_memory_equal(p->a.wire.data, rst, 12);
    assert_int_equal(p->a.opened, 0);
    pair_free(p);
}

static void test_stream_limit(void **state)
{
    cp2p_mux_config_t cb = {.max_streams = 4};
    struct pair *p = pair_new(NULL, &cb);
    cp2p_mux_stream_id_t ids[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(Y.open_stream(p->a.m, &ids[i]), 0);
    pump(p);
    assert_int_equal(p->b.opened, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rec_of(&p->a, ids[i])->reset, 0);
    assert_int_equal(rec_of(&p->a, ids[4])->reset, 1);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 4);

    /* Our own opens stop at our limit too. */
    cp2p_mux_stream_id_t s;
    assert_int_equal(Y.open_stream(p->b.m, &s), CP2P_ELIMIT);
    pair_free(p);
}

/* A thousand streams at once, each echoed back by a handler that writes from inside the callback. */
static void test_flood(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    p->b.echo = 1;
    enum { N = 1000 };
    static cp2p_mux_stream_id_t ids[N];
    for (int i = 0; i < N; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof(msg), "stream %d", i);
        assert_int_equal(Y.open_stream(p->a.m, &ids[i]), 0);
        assert_int_equal(Y.write(p->a.m, ids[i], (const uint8_t *)msg, (size_t)len), len);
        assert_int_equal(Y.close_write(p->a.m, ids[i]), 0);
    }
    pump(p);
    assert_int_equal(p->b.opened, N);
    for (int i = 0; i < N; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof(msg), "stream %d", i);
        struct rec *r = rec_of(&p->a, ids[i]);
        assert_int_equal(r->data.len, (size_t)len);
        assert_memory_equal(r->data.data, msg, (size_t)len);
        assert_int_equal(r->eof, 1);
        Y.release(p->a.m, ids[i]);
    }
    for (size_t i = 0; i < p->b.nrec; i++)
        Y.release(p->b.m, p->b.recs[i].id);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 0);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    pair_free(p);
}

/* A handler that resets its stream while a frame's payload is still arriving. */
static void test_reset_inside_callback(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    p->b.reset_on_data = 1;
    static uint8_t buf[200 * 1024];
    cp2p_mux_stream_id_t sa;
    assert_int_equal(Y.open_stream(p->a.m, &sa), 0);
    assert_int_equal(Y.write(p->a.m, sa, buf, sizeof(buf)), sizeof(buf));
    pump(p); /* feed() splits the frame, so the payload keeps coming after the reset */
    assert_true(p->b.recs[0].data.len > 0);
    assert_true(p->b.recs[0].data.len < sizeof(buf));
    assert_int_equal(rec_of(&p->a, sa)->reset, 1);
    assert_int_equal(cp2p_yamux_stream_count(p->a.m), 0);
    assert_int_equal(cp2p_yamux_stream_count(p->b.m), 0);
    pair_free(p);
}

/* Frames for a stream that is gone are dropped, payload included. */
static void test_unknown_stream_ignored(void **state)
{
    struct pair *p = pair_new(NULL, NULL);
    uint8_t f[12 + 10] = {0};
    hdr(f, 0, 0, 0, 7, 10);
    assert_int_equal(Y.input(p->b.m, f, 15), 0);
    assert_int_equal(Y.input(p->b.m, f + 15, 7), 0);
    hdr(f, 0, 1, 0, 9, 100);
    assert_int_equal(Y.input(p->b.m, f, 12), 0);
    hdr(f, 0, 1, 8, 11, 0);
    assert_int_equal(Y.input(p->b.m, f, 12), 0);
    assert_int_equal(p->b.opened, 0);
    assert_int_equal(p->b.out.len, 0);
    /* The session still works. */
    hdr(f, 0, 1, 1, 13, 0);
    assert_int_equal(Y.input(p->b.m, f, 12), 0);
    assert_int_equal(p->b.opened, 1);
    pair_free(p);
}

/* Each malformed frame ends the session with GoAway(protocol error) and an error. */
static void expect_fatal(const uint8_t *prefix, size_t plen, const uint8_t *bad, size_t blen, int want)
{
    struct pair *p = pair_new(NULL, NULL);
    if (plen)
        assert_int_equal(Y.input(p->b.m, prefix, plen), 0);
    p->b.capture = 1;
    int rc = Y.input(p->b.m, bad, blen);
    if (want)
        assert_int_equal(rc, want);
    else
        assert_true(rc < 0);
    assert_true(p->b.wire.len >= 12);
    assert_memory_equal(p->b.wire.data + p->b.wire.len - 12, GOAWAY_PROTO, 12);
    assert_int_equal(Y.input(p->b.m, bad, blen), CP2P_ECLOSED);
    cp2p_mux_stream_id_t s;
    assert_int_equal(Y.open_stream(p->b.m, &s), CP2P_ECLOSED);
    pair_free(p);
}

static void test_malformed(void **state)
{
    uint8_t f[12], syn[12];
    hdr(syn, 0, 1, 1, 1, 0); /* a valid SYN for stream 1 */

    hdr(f, 1, 1, 1, 1, 0); /* version 1 */
    expect_fatal(NULL, 0, f, 12, CP2P_EPARSE);
    hdr(f, 0, 4, 0, 0, 0); /* unknown type */
    expect_fatal(NULL, 0, f, 12, CP2P_EPARSE);
    hdr(f, 0, 0, 0, 0, 0); /* data on stream 0 */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);
    hdr(f, 0, 1, 1, 0, 0); /* window update SYN on stream 0 */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);
    hdr(f, 0, 2, 1, 5, 0); /* ping on a stream */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);
    hdr(f, 0, 3, 0, 5, 0); /* go away on a stream */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);
    hdr(f, 0, 1, 1, 2, 0); /* client sent an even (server) id */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);
    expect_fatal(syn, 12, syn, 12, CP2P_EPROTO); /* duplicate SYN */
    hdr(f, 0, 0, 1, 3, 256 * KIB + 1); /* more than the initial window in one frame */
    expect_fatal(NULL, 0, f, 12, CP2P_EPROTO);

    /* Within the window frame by frame, beyond it in total (nothing consumed). */
    size_t n = 3 * (12 + 100 * KIB);
    uint8_t *many = calloc(1, n);
    assert_non_null(many);
    for (int i = 0; i < 3; i++)
        hdr(many + i * (12 + 100 * KIB), 0, 0, i == 0 ? 1 : 0, 1, 100 * KIB);
    struct pair *p = pair_new(NULL, NULL);
    p->b.auto_consume = 0;
    p->b.capture = 1;
    assert_int_equal(Y.input(p->b.m, many, 2 * (12 + 100 * KIB)), 0);
    assert_int_equal(Y.input(p->b.m, many + 2 * (12 + 100 * KIB), 12 + 100 * KIB), CP2P_EPROTO);
    assert_memory_equal(p->b.wire.data + p->b.wire.len - 12, GOAWAY_PROTO, 12);
    assert_int_equal(p->b.recs[0].data.len, 200 * KIB);
    pair_free(p);
    free(many);
}

static void test_bad_config(void **state)
{
    static struct side s;
    cp2p_mux_events_t ev = {.ctx = &s, .send = on_send, .stream_opened = on_opened,
                            .stream_data = on_data, .stream_eof = on_eof,
                            .stream_reset = on_reset, .stream_writable = on_writable};
    cp2p_mux_t *m = NULL;
    cp2p_mux_config_t small = {.initial_window = 1024};
    assert_int_equal(Y.create(&m, 1, &small, &ev), CP2P_EINVAL);
    cp2p_mux_config_t inverted = {.initial_window = 1024 * KIB, .max_window = 512 * KIB};
    assert_int_equal(Y.create(&m, 1, &inverted, &ev), CP2P_EINVAL);
    ev.send = NULL;
    assert_int_equal(Y.create(&m, 1, NULL, &ev), CP2P_EINVAL);
    assert_string_equal(Y.protocol_id, "/yamux/1.0.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_open_data_both_ways),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_data_with_fin_in_one_frame),
        cmocka_unit_test(test_reset_and_refuse),
        cmocka_unit_test(test_window_exhaustion_and_resume),
        cmocka_unit_test(test_stalled_reader_bounded),
        cmocka_unit_test(test_window_growth),
        cmocka_unit_test(test_initial_window_announced),
        cmocka_unit_test(test_max_frame_split),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_stream_limit),
        cmocka_unit_test(test_flood),
        cmocka_unit_test(test_reset_inside_callback),
        cmocka_unit_test(test_unknown_stream_ignored),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
