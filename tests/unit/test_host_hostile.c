/* Hostile remotes at every layer: bad multistream lines, bad Noise messages,
 * bad yamux and mplex frames, a peer that stops reading. Each bad connection
 * is closed with one logged warning and counted; the host keeps serving a
 * well-behaved peer afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

typedef struct server {
    world_t w;
    cp2p_host_t *h;     /* under attack */
    cp2p_host_t *good;  /* a well-behaved client */
    unsigned port;
    cp2p_multiaddr_t addr;
    capture_t cap;
} server_t;

static void server_init(server_t *sv, const cp2p_host_config_t *cfg)
{
    memset(sv, 0, sizeof *sv);
    world_init(&sv->w);
    sv->h = host_new(&sv->w, cfg);
    sv->good = host_new(&sv->w, NULL);
    assert_int_equal(cp2p_host_set_handler(sv->h, ECHO_PROTO, echo_handler, NULL), 0);
    host_listen(sv->h, &sv->port, &sv->addr);
    capture_start(&sv->cap);
}

/* The good client connects and echoes; then everything closes. Returns the
 * captured log (malloc'd). */
static char *server_end(server_t *sv)
{
    assert_int_equal(host_connect_wait(&sv->w, sv->good, &sv->addr), 0);
    echo_roundtrip(&sv->w, sv->good, cp2p_host_peer_id(sv->h), 300 * 1000);
    host_close_wait(&sv->w, sv->good);
    host_close_wait(&sv->w, sv->h);
    char *log = capture_end(&sv->cap);
    cp2p_multiaddr_free(&sv->addr);
    world_end(&sv->w);
    return log;
}

static cp2p_host_stats_t stats(server_t *sv)
{
    cp2p_host_stats_t st;
    cp2p_host_stats(sv->h, &st);
    return st;
}

/* One warning for the bad connection, naming what went wrong. */
static void check_one_warning(char *log, const char *what)
{
    assert_int_equal(count_lines(log, " WARN ", "swarm: "), 1);
    assert_int_equal(count_lines(log, " WARN ", what), 1);
    free(log);
}

/* ---- before the connection is open: counted as failed upgrades ---- */

static void test_bad_multistream_header(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_TCP, NULL);
    static const char bad[] = "\x13/multistream/9.9.9\n\x07/noise\n";
    rp_write(&rp, bad, sizeof bad - 1);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_failed, 1);
    assert_int_equal(stats(&sv).conns_opened, 0);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "upgrade failed");
}

static void test_oversized_multistream_line(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_TCP, NULL);
    /* A length prefix of 1 MiB: refused from the prefix alone. */
    static const char bad[] = "\x80\x80\x40/multistream/1.0.0";
    rp_write(&rp, bad, sizeof bad - 1);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_failed, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "upgrade failed");
}

/* Message 1 is any 32 bytes (an ephemeral key); message 3 is garbage. */
static void test_bad_noise_handshake(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_NOISE, NULL);
    uint8_t msgs[2 + 32 + 2 + 200];
    msgs[0] = 0;
    msgs[1] = 32;
    for (size_t i = 2; i < sizeof msgs; i++)
        msgs[i] = (uint8_t)(i * 37);
    msgs[34] = 0;
    msgs[35] = 200;
    rp_write(&rp, msgs, sizeof msgs);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_true(rp.bytes_in > 40); /* message 2 came before the close */
    assert_int_equal(stats(&sv).conns_failed, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "upgrade failed");
}

/* A message shorter than an ephemeral key. */
static void test_short_noise_message(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_NOISE, NULL);
    static const uint8_t bad[] = {0, 3, 'a', 'b', 'c'};
    rp_write(&rp, bad, sizeof bad);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_failed, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "upgrade failed");
}

/* ---- once open: counted as errored connections ---- */

/* A transport frame that does not decrypt. */
static void test_bad_noise_transport_frame(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/yamux/1.0.0");
    uint8_t bad[2 + 64] = {0, 64};
    memset(bad + 2, 0x5a, 64);
    rp_write(&rp, bad, sizeof bad);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_opened, 1);
    assert_int_equal(stats(&sv).conns_errored, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "closing connection");
}

static void test_bad_yamux_frame(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/yamux/1.0.0");
    /* Version 1 does not exist. */
    static const uint8_t bad[12] = {1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 4};
    rp_seal_write(&rp, bad, sizeof bad);
    /* The session's GoAway (protocol error) still reaches us. */
    rp_attach_yamux(&rp, 256 * 1024);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_true(rp.goaway);
    assert_int_equal(rp.goaway_code, 1);
    assert_int_equal(stats(&sv).conns_errored, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "closing connection");
}

/* Data beyond the window the host granted. */
static void test_yamux_window_overrun(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/yamux/1.0.0");
    size_t n = 12 + 300 * 1024;
    uint8_t *f = calloc(1, n);
    /* SYN with data on stream 1: 300 KiB against a 256 KiB window. */
    uint8_t hdr[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0x04, 0xb0, 0x00};
    memcpy(f, hdr, 12);
    rp_seal_write(&rp, f, n);
    free(f);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_errored, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "closing connection");
}

static void test_bad_mplex_frame(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/mplex/6.7.0");
    /* Stream 1, flag 7: no such message type. */
    static const uint8_t bad[] = {0x0f, 0x00};
    rp_seal_write(&rp, bad, sizeof bad);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_errored, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "closing connection");
}

static void test_oversized_mplex_frame(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/mplex/6.7.0");
    /* NewStream 1, then a message claiming 16 MiB. */
    static const uint8_t bad[] = {0x08, 0x01, '1', 0x0a, 0x80, 0x80, 0x80, 0x08};
    rp_seal_write(&rp, bad, sizeof bad);
    rp_wait_closed_by_remote(&sv.w, &rp);
    assert_int_equal(stats(&sv).conns_errored, 1);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "closing connection");
}

/* Garbage inside one stream's protocol negotiation: that stream only. */
static void test_bad_stream_negotiation(void **state)
{
    server_t sv;
    server_init(&sv, NULL);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/yamux/1.0.0");
    rp_attach_yamux(&rp, 256 * 1024);
    cp2p_mux_stream_id_t id;
    assert_int_equal(cp2p_yamux_vtable.open_stream(rp.mux, &id), 0);
    static const uint8_t bad[] = "\x13/multistream/1.0.0\n\xff\xff\xff\xff\xff";
    assert_int_equal(cp2p_yamux_vtable.write(rp.mux, id, bad, sizeof bad - 1), (long)sizeof bad - 1);
    for (int i = 0; i < 200 && !rp.resets; i++)
        world_run_for(&sv.w, 10);
    assert_int_equal(rp.resets, 1); /* the stream was reset... */
    assert_false(rp.eof || rp.err); /* ...the connection lives on */
    assert_int_equal(stats(&sv).conns_errored, 0);
    assert_int_equal(stats(&sv).streams_bad, 1);
    assert_int_equal(stats(&sv).streams_opened_in, 0);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "stream negotiation");
}

/* ---- a peer that stops reading ---- */

#define FLOOD_PROTO "/test/flood/1.0.0"
#define FLOOD_CHUNK 65536

typedef struct flood {
    cp2p_stream_t *s;
    world_t *w;
    uint64_t taken;      /* bytes the muxer took */
    uint64_t last_taken; /* when it last took some */
    size_t queued;       /* our writes not taken yet */
    int in_more, dead, unref_done;
    uint8_t buf[FLOOD_CHUNK];
} flood_t;

static flood_t g_flood;

static void flood_more(flood_t *f);

static void flood_written(cp2p_stream_t *s, int status, void *arg)
{
    flood_t *f = arg;
    f->queued -= FLOOD_CHUNK;
    if (status < 0) {
        f->dead = 1;
    } else {
        f->taken += FLOOD_CHUNK;
        f->last_taken = uv_now(&f->w->loop);
    }
    flood_more(f);
}

/* As much as the stream takes; a write callback asks for more. */
static void flood_more(flood_t *f)
{
    if (f->in_more)
        return;
    f->in_more = 1;
    while (!f->dead) {
        int rc = cp2p_stream_write(f->s, f->buf, FLOOD_CHUNK, flood_written, f);
        if (rc == CP2P_EAGAIN)
            break;
        if (rc < 0) {
            f->dead = 1;
            break;
        }
        f->queued += FLOOD_CHUNK;
    }
    f->in_more = 0;
    if (f->dead && !f->queued && !f->unref_done) {
        f->unref_done = 1;
        cp2p_stream_unref(f->s);
    }
}

static void flood_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    flood_t *f = arg;
    if (status < 0 && status != CP2P_ECLOSED) {
        f->dead = 1;
        flood_more(f);
    }
}

static void flood_handler(cp2p_stream_t *s, void *arg)
{
    flood_t *f = &g_flood;
    f->s = s;
    f->w = arg;
    f->last_taken = uv_now(&f->w->loop);
    cp2p_stream_read_start(s, flood_read, f);
    flood_more(f);
}

/* The remote grants a 16 MiB window on a stream and then reads nothing at
 * all: the host's output for it stops at the high-water mark, other peers
 * are served meanwhile, and after a negotiation timeout without progress
 * the connection is closed. */
static void stop_reading(const char *muxer)
{
    memset(&g_flood, 0, sizeof g_flood);
    cp2p_host_config_t cfg = {.negotiate_timeout_ms = 2000};
    server_t sv;
    server_init(&sv, &cfg);
    assert_int_equal(cp2p_host_set_handler(sv.h, FLOOD_PROTO, flood_handler, &sv.w), 0);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, muxer);
    static const char proposal[] = "\x13/multistream/1.0.0\n\x12" FLOOD_PROTO "\n";
    if (strcmp(muxer, "/yamux/1.0.0") == 0) {
        rp_attach_yamux(&rp, 16 << 20);
        cp2p_mux_stream_id_t id;
        assert_int_equal(cp2p_yamux_vtable.open_stream(rp.mux, &id), 0);
        cp2p_yamux_vtable.write(rp.mux, id, (const uint8_t *)proposal, sizeof proposal - 1);
    } else {
        /* mplex: NewStream 0, then the proposal as a message. */
        uint8_t f[64] = {0x00, 0x01, '0', 0x02, (uint8_t)(sizeof proposal - 1)};
        memcpy(f + 5, proposal, sizeof proposal - 1);
        rp_seal_write(&rp, f, 5 + sizeof proposal - 1);
    }
    uv_read_stop((uv_stream_t *)&rp.tcp);

    /* Until the muxer has taken nothing for 300 ms: the output is stuck. */
    cp2p_conn_t *c = NULL;
    for (int i = 0; i < 500; i++) {
        world_run_for(&sv.w, 10);
        if (!c)
            c = cp2p_host_conn_to(sv.h, &rp.id);
        if (g_flood.s && uv_now(&sv.w.loop) - g_flood.last_taken >= 300)
            break;
        if (c)
            assert_true(c->queued <= CP2P_CONN_HIGH_WATER + 2 * FLOOD_CHUNK);
    }
    assert_non_null(c);
    cp2p_conn_ref(c);
    assert_true(g_flood.taken > 0);
    assert_true(uv_now(&sv.w.loop) - g_flood.last_taken >= 300);
    assert_true(c->queued <= CP2P_CONN_HIGH_WATER + 2 * FLOOD_CHUNK);
    assert_true(g_flood.queued <= CP2P_HOST_DEFAULT_MAX_STREAM_BUFFER + FLOOD_CHUNK);
    uint64_t stuck_at = g_flood.taken;

    /* Others are served while that one is stuck. */
    assert_int_equal(host_connect_wait(&sv.w, sv.good, &sv.addr), 0);
    echo_roundtrip(&sv.w, sv.good, cp2p_host_peer_id(sv.h), 256 * 1024);
    assert_int_equal(g_flood.taken, stuck_at);
    assert_int_equal(stats(&sv).conns_errored, 0);

    /* Then it goes. */
    for (int i = 0; i < 500 && !g_flood.unref_done; i++)
        world_run_for(&sv.w, 10);
    assert_true(g_flood.unref_done);
    assert_int_equal(c->state, CONN_CLOSED);
    assert_int_equal(stats(&sv).conns_errored, 1);
    cp2p_conn_unref(c);
    rp_free(&sv.w, &rp);
    check_one_warning(server_end(&sv), "remote stopped reading");
}

static void test_stop_reading_yamux(void **state)
{
    stop_reading("/yamux/1.0.0");
}

static void test_stop_reading_mplex(void **state)
{
    stop_reading("/mplex/6.7.0");
}

/* A slow reader on one stream (the stream's own window) is no stall: the
 * connection and its other streams go on. */
static void test_slow_stream_reader_is_not_stalled(void **state)
{
    memset(&g_flood, 0, sizeof g_flood);
    cp2p_host_config_t cfg = {.negotiate_timeout_ms = 500};
    server_t sv;
    server_init(&sv, &cfg);
    assert_int_equal(cp2p_host_set_handler(sv.h, FLOOD_PROTO, flood_handler, &sv.w), 0);
    rawpeer_t rp;
    rp_connect(&sv.w, &rp, sv.port, RP_MUXED, "/yamux/1.0.0");
    rp_attach_yamux(&rp, 256 * 1024);
    static const char proposal[] = "\x13/multistream/1.0.0\n\x12" FLOOD_PROTO "\n";
    cp2p_mux_stream_id_t id;
    assert_int_equal(cp2p_yamux_vtable.open_stream(rp.mux, &id), 0);
    cp2p_yamux_vtable.write(rp.mux, id, (const uint8_t *)proposal, sizeof proposal - 1);
    /* The raw peer reads the socket but never grants more window. */
    world_run_for(&sv.w, 1500);
    assert_true(g_flood.taken > 0);
    assert_true(g_flood.taken <= 256 * 1024 + FLOOD_CHUNK);
    assert_false(rp.eof || rp.err);
    assert_int_equal(stats(&sv).conns_errored, 0);
    rp_free(&sv.w, &rp);
    for (int i = 0; i < 200 && !g_flood.unref_done; i++)
        world_run_for(&sv.w, 10);
    char *log = server_end(&sv);
    assert_int_equal(count_lines(log, " WARN ", "swarm: "), 0);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_multistream_header),
        cmocka_unit_test(test_oversized_multistream_line),
        cmocka_unit_test(test_bad_noise_handshake),
        cmocka_unit_test(test_short_noise_message),
        cmocka_unit_test(test_bad_noise_transport_frame),
        cmocka_unit_test(test_bad_yamux_frame),
        cmocka_unit_test(test_yamux_window_overrun),
        cmocka_unit_test(test_bad_mplex_frame),
        cmocka_unit_test(test_oversized_mplex_frame),
        cmocka_unit_test(test_bad_stream_negotiation),
        cmocka_unit_test(test_stop_reading_yamux),
        cmocka_unit_test(test_stop_reading_mplex),
        cmocka_unit_test(test_slow_stream_reader_is_not_stalled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
