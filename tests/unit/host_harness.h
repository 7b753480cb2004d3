/* Helpers a given test program does not use are fine. */
#pragma GCC diagnostic ignored "-Wunused-function"
/* Shared by the tests/unit/test_host_*.c programs, test_daemon.c, test_ping.c
 * and test_perf.c (included once by each): a loop with hosts, two connected
 * hosts, an echo handler, clients that check what comes back,
 * stderr capture for log lines, and a raw peer driven by the sans-I/O engines
 * (multistream-select, Noise, yamux) so that a test can speak any garbage at
 * any layer. Include after cmocka.h. */
#ifndef CP2P_TEST_HOST_HARNESS_H
#define CP2P_TEST_HOST_HARNESS_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/log.h"
#include "cp2p/multiaddr.h"
#include "mss/mss.h"
#include "muxer/muxer.h"
#include "security/security.h"
#include "swarm/swarm.h"

#define ECHO_PROTO "/test/echo/1.0.0"

/* ---- the loop ---- */

typedef struct world {
    uv_loop_t loop;
    uv_timer_t deadline;
    int expired;
} world_t;

static void world_deadline_cb(uv_timer_t *t)
{
    ((world_t *)t->data)->expired = 1;
}

static void world_init(world_t *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->deadline);
    w->deadline.data = w;
    /* A close that spins in a callback cannot be stopped by a loop timer. */
    alarm(60);
}

/* Run until *flag is nonzero; fail after ms. */
static void world_run_until(world_t *w, const int *flag, uint64_t ms)
{
    w->expired = 0;
    uv_timer_start(&w->deadline, world_deadline_cb, ms, 0);
    while (!*flag && !w->expired)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_false(w->expired);
}

/* Run until *count reaches want; fail after ms. */
static void world_run_until_n(world_t *w, const int *count, int want, uint64_t ms)
{
    w->expired = 0;
    uv_timer_start(&w->deadline, world_deadline_cb, ms, 0);
    while (*count < want && !w->expired)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_true(*count >= want);
}

static void world_run_for(world_t *w, uint64_t ms)
{
    w->expired = 0;
    uv_timer_start(&w->deadline, world_deadline_cb, ms, 0);
    while (!w->expired)
        uv_run(&w->loop, UV_RUN_ONCE);
}

/* Every host must be closed already: the loop must run dry. */
static void world_end(world_t *w)
{
    uv_close((uv_handle_t *)&w->deadline, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    alarm(0);
}

/* ---- hosts ---- */

static void set_flag(void *arg)
{
    *(int *)arg = 1;
}

static cp2p_host_t *host_new(world_t *w, const cp2p_host_config_t *cfg)
{
    cp2p_host_t *h;
    assert_int_equal(cp2p_host_new(&w->loop, cfg, &h), 0);
    return h;
}

/* Listen on 127.0.0.1; *port gets the port, *addr (if not NULL) the full
 * /ip4/../tcp/../p2p/.. address. */
static void host_listen(cp2p_host_t *h, unsigned *port, cp2p_multiaddr_t *addr)
{
    cp2p_multiaddr_t l;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &l), 0);
    assert_int_equal(cp2p_host_listen(h, &l), 0);
    cp2p_multiaddr_free(&l);
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(h, &addrs, &n), 0);
    assert_true(n >= 1);
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&addrs[n - 1], CP2P_MA_TCP, &c), 0);
    *port = (unsigned)(c.value[0] << 8 | c.value[1]);
    if (addr) {
        char id[CP2P_PEER_ID_STRMAX], s[256];
        assert_int_equal(cp2p_peer_id_to_string(cp2p_host_peer_id(h), id, sizeof id), 0);
        snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u/p2p/%s", *port, id);
        assert_int_equal(cp2p_multiaddr_parse(s, addr), 0);
    }
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
}

static void host_close_wait(world_t *w, cp2p_host_t *h)
{
    int done = 0;
    cp2p_host_close(h, set_flag, &done);
    world_run_until(w, &done, 10000);
}

typedef struct connect_result {
    int done, status;
    cp2p_peer_id_t peer; /* who answered, when status is 0 */
} connect_result_t;

static void on_connect_result(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    connect_result_t *r = arg;
    r->done = 1;
    r->status = status;
    if (status == 0 && peer)
        r->peer = *peer;
}

/* The connect's status; *peer (if not NULL) gets who answered. */
static int host_connect_wait_peer(world_t *w, cp2p_host_t *from, const cp2p_multiaddr_t *to,
                                  cp2p_peer_id_t *peer)
{
    connect_result_t r = {0};
    assert_int_equal(cp2p_host_connect(from, to, on_connect_result, &r), 0);
    world_run_until(w, &r.done, 10000);
    if (peer)
        *peer = r.peer;
    return r.status;
}

static int host_connect_wait(world_t *w, cp2p_host_t *from, const cp2p_multiaddr_t *to)
{
    return host_connect_wait_peer(w, from, to, NULL);
}

/* ---- two hosts, a connected to b over loopback ---- */

typedef struct host_pair {
    world_t w;
    cp2p_host_t *a, *b;
    cp2p_peer_id_t b_id;
} host_pair_t;

/* A fresh world with hosts a and b (b made with cfg_b, which may be NULL). */
static void host_pair_new(host_pair_t *p, const cp2p_host_config_t *cfg_b)
{
    world_init(&p->w);
    p->a = host_new(&p->w, NULL);
    p->b = host_new(&p->w, cfg_b);
    p->b_id = *cp2p_host_peer_id(p->b);
}

/* b listens on 127.0.0.1, a dials it; connected to b on return. */
static void host_pair_connect(host_pair_t *p)
{
    unsigned port;
    cp2p_multiaddr_t addr;
    cp2p_peer_id_t peer;
    host_listen(p->b, &port, &addr);
    assert_int_equal(host_connect_wait_peer(&p->w, p->a, &addr, &peer), 0);
    assert_true(cp2p_peer_id_equal(&peer, &p->b_id));
    cp2p_multiaddr_free(&addr);
}

static void count_up(void *arg)
{
    (*(int *)arg)++;
}

/* Closes both hosts at once, then ends the world. */
static void host_pair_end(host_pair_t *p)
{
    int closed = 0;
    cp2p_host_close(p->a, count_up, &closed);
    cp2p_host_close(p->b, count_up, &closed);
    world_run_until_n(&p->w, &closed, 2, 10000);
    world_end(&p->w);
}

/* ---- an echo handler with backpressure ---- */

typedef struct echo {
    cp2p_stream_t *s;
    size_t pending; /* our writes not called back yet */
    int done;       /* the reader had its last call */
} echo_t;

static void echo_maybe_free(echo_t *e)
{
    if (e->done && e->pending == 0) {
        cp2p_stream_unref(e->s);
        free(e);
    }
}

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg);

static void echo_written(cp2p_stream_t *s, int status, void *arg)
{
    echo_t *e = arg;
    e->pending--;
    if (!e->done && e->pending == 0) {
        /* Read again: what is buffered, EOF or the stream's error come
         * before read_start returns, so e is held until then. */
        e->pending++;
        if (cp2p_stream_read_start(s, echo_read, e) < 0)
            e->done = 1;
        e->pending--;
    }
    echo_maybe_free(e);
}

static void echo_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    echo_t *e = arg;
    if (status == 0) {
        if (cp2p_stream_write(s, p, n, echo_written, e) < 0) {
            /* Our own reset is not reported to our reader: end here. */
            e->pending++;
            cp2p_stream_reset(s);
            e->pending--;
            e->done = 1;
            echo_maybe_free(e);
            return;
        }
        e->pending++;
        /* Stop reading while our writes wait: the sender's window shuts. */
        if (e->pending > 4)
            cp2p_stream_read_stop(s);
        return;
    }
    if (status == CP2P_ECLOSED) {
        cp2p_stream_close_write(s);
        /* A reset could still be reported after EOF: not to a freed e. */
        cp2p_stream_read_stop(s);
    }
    e->done = 1;
    echo_maybe_free(e);
}

static void echo_handler(cp2p_stream_t *s, void *arg)
{
    echo_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    e->s = s;
    if (cp2p_stream_read_start(s, echo_read, e) < 0) {
        cp2p_stream_unref(s);
        free(e);
    }
}

/* ---- a client that sends `total` bytes to the echo handler and checks them ---- */

typedef struct client {
    cp2p_stream_t *s;
    size_t total, sent, received;
    int open_status, opened, finished, read_status, corrupt;
} client_t;

#define CLIENT_CHUNK 65536

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 8));
}

static void client_send(client_t *c);

static void client_written(cp2p_stream_t *s, int status, void *arg)
{
    client_t *c = arg;
    if (status == 0)
        client_send(c);
}

static void client_send(client_t *c)
{
    if (c->sent == c->total) {
        cp2p_stream_close_write(c->s);
        return;
    }
    size_t n = c->total - c->sent < CLIENT_CHUNK ? c->total - c->sent : CLIENT_CHUNK;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(c->sent + i);
    c->sent += n;
    int rc = cp2p_stream_write(c->s, buf, n, client_written, c);
    free(buf);
    if (rc < 0)
        cp2p_stream_reset(c->s);
}

static void client_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    client_t *c = arg;
    if (status == 0) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != pattern(c->received + i))
                c->corrupt = 1;
        c->received += n;
        return;
    }
    if (c->finished)
        return;
    c->read_status = status;
    c->finished = 1;
}

static void client_opened(int status, cp2p_stream_t *s, void *arg)
{
    client_t *c = arg;
    c->opened = 1;
    c->open_status = status;
    c->s = s;
    if (status) {
        c->finished = 1;
        return;
    }
    assert_int_equal(cp2p_stream_read_start(s, client_read, c), 0);
    client_send(c);
}

static void client_start(cp2p_host_t *from, const cp2p_peer_id_t *to, client_t *c, size_t total)
{
    static const char *const protos[] = {ECHO_PROTO};
    memset(c, 0, sizeof *c);
    c->total = total;
    assert_int_equal(cp2p_host_new_stream(from, to, protos, 1, client_opened, c), 0);
}

/* An echo of total bytes from one host to another, checked end to end. */
static void echo_roundtrip(world_t *w, cp2p_host_t *from, const cp2p_peer_id_t *to, size_t total)
{
    client_t c;
    client_start(from, to, &c, total);
    world_run_until(w, &c.finished, 20000);
    assert_int_equal(c.open_status, 0);
    assert_int_equal(c.read_status, CP2P_ECLOSED);
    assert_int_equal(c.received, total);
    assert_false(c.corrupt);
    cp2p_stream_unref(c.s);
}

/* ---- stderr capture, to check log lines ---- */

typedef struct capture {
    int saved;
} capture_t;

/* stderr goes to an unlinked temporary file until capture_end. The log's
 * rate limit starts afresh, so that what earlier tests logged does not
 * count against this one. */
static void capture_start(capture_t *cap)
{
    if (cp2p_log_get_level() < CP2P_LOG_WARN)
        cp2p_log_set_level(CP2P_LOG_WARN);
    cp2p_log_set_rate_limit(CP2P_LOG_DEFAULT_BURST, CP2P_LOG_DEFAULT_WINDOW_MS);
    char path[] = "/tmp/cp2p-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    cap->saved = dup(2);
    assert_true(cap->saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

/* The captured text (malloc'd); stderr is restored and the text echoed to it. */
static char *capture_end(capture_t *cap)
{
    fflush(stderr);
    size_t cap_len = 1 << 20, n = 0;
    char *text = calloc(1, cap_len);
    assert_non_null(text);
    assert_true(lseek(2, 0, SEEK_SET) == 0);
    for (ssize_t k; n < cap_len - 1 && (k = read(2, text + n, cap_len - 1 - n)) > 0;)
        n += (size_t)k;
    dup2(cap->saved, 2);
    close(cap->saved);
    fputs(text, stderr);
    return text;
}

/* Lines of text that contain both a and b. */
static int count_lines(const char *text, const char *a, const char *b)
{
    int n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *l = strndup(line, len);
        if (strstr(l, a) && strstr(l, b))
            n++;
        free(l);
        line += len + (end ? 1 : 0);
    }
    return n;
}

/* ---- a raw peer: a TCP client that upgrades by hand ---- */

enum { RP_TCP, RP_SEC_MSS, RP_NOISE, RP_MUX_MSS, RP_MUXED };

typedef struct rawpeer {
    uv_tcp_t tcp;
    uv_connect_t creq;
    int stage;
    int stop_at;       /* stage at which the automatic upgrade stops */
    int connected, eof, err, closed;
    size_t bytes_in;   /* raw bytes read */
    const char *muxer;
    cp2p_privkey_t *key;
    cp2p_peer_id_t id;
    cp2p_mss_t *mss;
    cp2p_sec_t *sec;
    cp2p_buf_t plain;  /* decrypted bytes once muxed, when no session takes them */
    cp2p_mux_t *mux;   /* a client session, if the test attached one */
    int goaway, goaway_code, resets;
    size_t data_in;    /* stream bytes the client session received */
    int rcvbuf;        /* if set, SO_RCVBUF for the socket */
    char rbuf[65536];
} rawpeer_t;

typedef struct rp_wreq {
    uv_write_t req;
    uint8_t data[];
} rp_wreq_t;

static void rp_written(uv_write_t *req, int status)
{
    free(req->data);
}

static void rp_write(rawpeer_t *rp, const void *p, size_t n)
{
    if (uv_is_closing((uv_handle_t *)&rp->tcp) || n == 0)
        return;
    rp_wreq_t *w = malloc(sizeof *w + n);
    assert_non_null(w);
    memcpy(w->data, p, n);
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&rp->tcp, &b, 1, rp_written))
        free(w);
}

static void rp_seal_write(rawpeer_t *rp, const void *p, size_t n)
{
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_noise_vtable.seal(rp->sec, p, n, &b), 0);
    rp_write(rp, b.data, b.len);
    cp2p_buf_free(&b);
}

static void rp_send_buf(rawpeer_t *rp, cp2p_buf_t *b, int sealed)
{
    if (b->len)
        (sealed ? rp_seal_write : rp_write)(rp, b->data, b->len);
    cp2p_buf_free(b);
}

static void rp_plain(rawpeer_t *rp, const uint8_t *p, size_t n)
{
    if (rp->stage == RP_MUX_MSS) {
        cp2p_buf_t out = {0};
        int rc = cp2p_mss_input(rp->mss, p, n, &out);
        rp_send_buf(rp, &out, 1);
        assert_true(rc >= 0);
        if (rc != CP2P_MSS_DONE)
            return;
        size_t ln;
        const uint8_t *lo = cp2p_mss_leftover(rp->mss, &ln);
        cp2p_buf_append(&rp->plain, lo, ln);
        cp2p_mss_free(rp->mss);
        rp->mss = NULL;
        rp->stage = RP_MUXED;
        return;
    }
    if (rp->mux)
        cp2p_yamux_vtable.input(rp->mux, p, n);
    else
        cp2p_buf_append(&rp->plain, p, n);
}

static void rp_input(rawpeer_t *rp, const uint8_t *p, size_t n)
{
    if (rp->stage == RP_SEC_MSS) {
        cp2p_buf_t out = {0};
        int rc = cp2p_mss_input(rp->mss, p, n, &out);
        rp_send_buf(rp, &out, 0);
        assert_true(rc >= 0);
        if (rc != CP2P_MSS_DONE)
            return;
        size_t ln;
        cp2p_mss_leftover(rp->mss, &ln);
        assert_int_equal(ln, 0);
        cp2p_mss_free(rp->mss);
        rp->mss = NULL;
        rp->stage = RP_NOISE;
        if (rp->stop_at == RP_NOISE)
            return;
        assert_int_equal(cp2p_noise_vtable.create(&rp->sec, 1, rp->key, NULL), 0);
        assert_int_equal(cp2p_noise_vtable.start(rp->sec, &out), 0);
        rp_send_buf(rp, &out, 0);
        return;
    }
    if (rp->stage < RP_NOISE || !rp->sec)
        return; /* raw mode: the test only counts bytes */
    cp2p_buf_t wire = {0}, plain = {0};
    int was = cp2p_sec_established(rp->sec);
    int rc = cp2p_noise_vtable.input(rp->sec, p, n, &wire, &plain);
    rp_send_buf(rp, &wire, 0);
    if (rc < 0) {
        cp2p_buf_free(&plain);
        return;
    }
    if (!was && cp2p_sec_established(rp->sec)) {
        rp->stage = RP_MUX_MSS;
        const char *ids[1] = {rp->muxer};
        cp2p_buf_t out = {0};
        assert_int_equal(cp2p_mss_dialer_new(&rp->mss, ids, 1, 0), 0);
        assert_int_equal(cp2p_mss_start(rp->mss, &out), 0);
        rp_send_buf(rp, &out, 1);
    }
    if (plain.len)
        rp_plain(rp, plain.data, plain.len);
    cp2p_buf_free(&plain);
}

static void rp_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    rawpeer_t *rp = h->data;
    *b = uv_buf_init(rp->rbuf, sizeof rp->rbuf);
}

static void rp_handle_closed(uv_handle_t *h)
{
    ((rawpeer_t *)h->data)->closed = 1;
}

static void rp_close(rawpeer_t *rp)
{
    if (!uv_is_closing((uv_handle_t *)&rp->tcp))
        uv_close((uv_handle_t *)&rp->tcp, rp_handle_closed);
}

static void rp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rawpeer_t *rp = s->data;
    if (n < 0) {
        if (n == UV_EOF)
            rp->eof = 1;
        else
            rp->err = 1;
        uv_read_stop(s);
        return;
    }
    rp->bytes_in += (size_t)n;
    rp_input(rp, (const uint8_t *)rp->rbuf, (size_t)n);
}

static void rp_read_start(rawpeer_t *rp)
{
    uv_read_start((uv_stream_t *)&rp->tcp, rp_alloc, rp_read);
}

static void rp_connected(uv_connect_t *req, int status)
{
    rawpeer_t *rp = req->data;
    assert_int_equal(status, 0);
    rp->connected = 1;
    if (rp->rcvbuf)
        uv_recv_buffer_size((uv_handle_t *)&rp->tcp, &rp->rcvbuf);
    rp_read_start(rp);
    if (rp->stop_at == RP_TCP)
        return;
    const char *ids[1] = {"/noise"};
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&rp->mss, ids, 1, 0), 0);
    assert_int_equal(cp2p_mss_start(rp->mss, &out), 0);
    rp->stage = RP_SEC_MSS;
    rp_send_buf(rp, &out, 0);
}

/* Connect to 127.0.0.1:port and upgrade up to stop_at (RP_TCP: not at all);
 * rcvbuf, if not 0, sets the socket's SO_RCVBUF. */
static void rp_connect_buf(world_t *w, rawpeer_t *rp, unsigned port, int stop_at,
                           const char *muxer, int rcvbuf)
{
    memset(rp, 0, sizeof *rp);
    rp->rcvbuf = rcvbuf;
    rp->stop_at = stop_at;
    rp->muxer = muxer ? muxer : "/yamux/1.0.0";
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, 0, &rp->key), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(rp->key), &rp->id), 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", (int)port, &sa);
    uv_tcp_init(&w->loop, &rp->tcp);
    rp->tcp.data = rp;
    rp->creq.data = rp;
    assert_int_equal(uv_tcp_connect(&rp->creq, &rp->tcp, (struct sockaddr *)&sa, rp_connected), 0);
    const int *reached = stop_at == RP_TCP ? &rp->connected : &rp->stage;
    w->expired = 0;
    uv_timer_start(&w->deadline, world_deadline_cb, 10000, 0);
    while (!w->expired && (stop_at == RP_TCP ? !*reached : *reached < stop_at))
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_false(w->expired);
}

static void rp_connect(world_t *w, rawpeer_t *rp, unsigned port, int stop_at, const char *muxer)
{
    rp_connect_buf(w, rp, port, stop_at, muxer, 0);
}

/* Wait until the host ended the connection (EOF or error on read). */
static void rp_wait_closed_by_remote(world_t *w, rawpeer_t *rp)
{
    w->expired = 0;
    uv_timer_start(&w->deadline, world_deadline_cb, 10000, 0);
    while (!w->expired && !rp->eof && !rp->err)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_false(w->expired);
}

static void rp_free(world_t *w, rawpeer_t *rp)
{
    rp_close(rp);
    world_run_until(w, &rp->closed, 5000);
    if (rp->mux)
        cp2p_yamux_vtable.destroy(rp->mux);
    if (rp->mss)
        cp2p_mss_free(rp->mss);
    if (rp->sec)
        cp2p_noise_vtable.destroy(rp->sec);
    cp2p_buf_free(&rp->plain);
    cp2p_privkey_free(rp->key);
}

/* A yamux client session on a muxed raw peer; its frames are sealed and sent. */
static int rp_mux_send(void *ctx, const uint8_t *p, size_t n)
{
    rp_seal_write(ctx, p, n);
    return 0;
}
static int rp_mux_opened(void *ctx, cp2p_mux_stream_id_t id)
{
    return CP2P_EUNSUPPORTED;
}
static void rp_mux_data(void *ctx, cp2p_mux_stream_id_t id, const uint8_t *p, size_t n)
{
    ((rawpeer_t *)ctx)->data_in += n;
}
static void rp_mux_eof(void *ctx, cp2p_mux_stream_id_t id)
{
}
static void rp_mux_reset(void *ctx, cp2p_mux_stream_id_t id)
{
    ((rawpeer_t *)ctx)->resets++;
}
static void rp_mux_writable(void *ctx, cp2p_mux_stream_id_t id)
{
}
static void rp_mux_goaway(void *ctx, uint32_t code)
{
    rawpeer_t *rp = ctx;
    rp->goaway = 1;
    rp->goaway_code = (int)code;
}

static void rp_attach_yamux(rawpeer_t *rp, uint32_t window)
{
    cp2p_mux_events_t ev = {
        .ctx = rp,
        .send = rp_mux_send,
        .stream_opened = rp_mux_opened,
        .stream_data = rp_mux_data,
        .stream_eof = rp_mux_eof,
        .stream_reset = rp_mux_reset,
        .stream_writable = rp_mux_writable,
        .goaway = rp_mux_goaway,
    };
    cp2p_mux_config_t cfg = {.initial_window = window, .max_window = window};
    assert_int_equal(cp2p_yamux_vtable.create(&rp->mux, 1, &cfg, &ev), 0);
    if (rp->plain.len)
        cp2p_yamux_vtable.input(rp->mux, rp->plain.data, rp->plain.len);
    cp2p_buf_reset(&rp->plain);
}

/* Open a yamux stream and propose one protocol without waiting for answers. */
static cp2p_mux_stream_id_t rp_open_stream(rawpeer_t *rp, const char *protocol)
{
    cp2p_mux_stream_id_t id;
    assert_int_equal(cp2p_yamux_vtable.open_stream(rp->mux, &id), 0);
    cp2p_mss_t *m;
    const char *ids[1] = {protocol};
    cp2p_buf_t out = {0};
    assert_int_equal(cp2p_mss_dialer_new(&m, ids, 1, 0), 0);
    assert_int_equal(cp2p_mss_start(m, &out), 0);
    assert_int_equal(cp2p_yamux_vtable.write(rp->mux, id, out.data, out.len), (long)out.len);
    cp2p_buf_free(&out);
    cp2p_mss_free(m);
    return id;
}

#endif
