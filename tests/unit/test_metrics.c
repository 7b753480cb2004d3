/* Unit tests for the health and metrics endpoint (src/host/metrics.c): the
 * address it takes, /healthz and /metrics over real sockets on loopback,
 * counters that move with traffic (connections, DHT requests), and hostile
 * clients: bad requests, oversized ones, slow and silent ones, too many (who
 * gives way to whom, per address and in all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/metrics.h"
#include "cp2p/multiaddr.h"

typedef struct world {
    uv_loop_t loop;
    cp2p_host_t *a, *b;
    cp2p_metrics_t *m;
    int port;
    uv_timer_t deadline, pause;
    int expired;
} world_t;

static void deadline_cb(uv_timer_t *t)
{
    ((world_t *)t->data)->expired = 1;
}

/* Run the loop until *flag becomes nonzero (fail after 20 s). */
static void run_until(world_t *w, const int *flag)
{
    uv_timer_start(&w->deadline, deadline_cb, 20000, 0);
    while (!*flag && !w->expired)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->deadline);
    assert_false(w->expired);
}

static void pause_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static void run_for(world_t *w, uint64_t ms)
{
    int flag = 0;
    w->pause.data = &flag;
    uv_timer_start(&w->pause, pause_cb, ms, 0);
    while (!flag)
        uv_run(&w->loop, UV_RUN_ONCE);
}

static void host_listen(cp2p_host_t *h)
{
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(h, &ma), 0);
    cp2p_multiaddr_free(&ma);
}

static void world_init(world_t *w, const cp2p_metrics_config_t *cfg, int listen)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->deadline);
    uv_timer_init(&w->loop, &w->pause);
    w->deadline.data = w;
    assert_int_equal(cp2p_host_new(&w->loop, NULL, &w->a), 0);
    if (listen)
        host_listen(w->a);
    cp2p_metrics_config_t c = cfg ? *cfg : (cp2p_metrics_config_t){0};
    if (!c.listen)
        c.listen = "127.0.0.1:0";
    assert_int_equal(cp2p_metrics_start(w->a, &c, &w->m), 0);
    w->port = cp2p_metrics_port(w->m);
    assert_true(w->port > 0);
}

static void flag_done(void *arg)
{
    (*(int *)arg)++;
}

static void on_closed(uv_handle_t *h)
{
}

static void world_free(world_t *w)
{
    int closed = 0, metrics_closed = 0;
    cp2p_metrics_stop(w->m, flag_done, &metrics_closed);
    run_until(w, &metrics_closed);
    cp2p_host_close(w->a, flag_done, &closed);
    if (w->b)
        cp2p_host_close(w->b, flag_done, &closed);
    int want = w->b ? 2 : 1;
    while (closed < want)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w->deadline, on_closed);
    uv_close((uv_handle_t *)&w->pause, on_closed);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* ---- an HTTP client on the same loop ---- */

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_timer_t gap;
    const char *req;
    size_t req_len, sent, piece;
    uint64_t gap_ms;
    cp2p_buf_t resp;
    int handles, connected, done, eof, keep_open; /* keep_open: not closed at the server's EOF */
    char rbuf[65536];
} client_t;

static void client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    if (--c->handles == 0)
        c->done = 1;
}

static void client_end(client_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_close((uv_handle_t *)&c->tcp, client_closed);
    uv_close((uv_handle_t *)&c->gap, client_closed);
}

static void client_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    client_t *c = h->data;
    *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client_t *c = s->data;
    if (n < 0) {
        c->eof = 1;
        if (!c->keep_open)
            client_end(c);
    } else if (n > 0) {
        cp2p_buf_append(&c->resp, b->base, (size_t)n);
    }
}

static void client_send_next(client_t *c);

static void client_gap(uv_timer_t *t)
{
    client_send_next(t->data);
}

static void client_written(uv_write_t *w, int status)
{
    client_t *c = w->data;
    if (status < 0 || c->sent == c->req_len)
        return;
    uv_timer_start(&c->gap, client_gap, c->gap_ms, 0);
}

static void client_send_next(client_t *c)
{
    size_t n = c->req_len - c->sent;
    if (c->piece && n > c->piece)
        n = c->piece;
    uv_buf_t b = uv_buf_init((char *)c->req + c->sent, (unsigned)n);
    c->sent += n;
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, client_written))
        client_end(c);
}

static void client_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    assert_int_equal(status, 0);
    c->connected = 1;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read), 0);
    if (c->req_len)
        client_send_next(c);
}

/* Connect from the address from (NULL: any) and send req (in pieces of
 * piece bytes, gap_ms apart, when piece is nonzero); the response is
 * collected until the server closes. */
static void client_start_from(world_t *w, client_t *c, const char *from, const char *req,
                              size_t len, size_t piece, uint64_t gap_ms)
{
    memset(c, 0, offsetof(client_t, rbuf));
    c->req = req;
    c->req_len = len;
    c->piece = piece;
    c->gap_ms = gap_ms;
    uv_tcp_init(&w->loop, &c->tcp);
    uv_timer_init(&w->loop, &c->gap);
    uv_tcp_nodelay(&c->tcp, 1);
    c->tcp.data = c->gap.data = c->conn.data = c;
    c->handles = 2;
    struct sockaddr_in sa;
    if (from) {
        uv_ip4_addr(from, 0, &sa);
        assert_int_equal(uv_tcp_bind(&c->tcp, (struct sockaddr *)&sa, 0), 0);
    }
    uv_ip4_addr("127.0.0.1", w->port, &sa);
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&sa, client_connected), 0);
}

static void client_start(world_t *w, client_t *c, const char *req, size_t len, size_t piece,
                         uint64_t gap_ms)
{
    client_start_from(w, c, NULL, req, len, piece, gap_ms);
}

/* One request; returns the whole response (the caller frees it). */
static char *http(world_t *w, const char *req, size_t len)
{
    client_t *c = malloc(sizeof *c);
    client_start(w, c, req, len, 0, 0);
    run_until(w, &c->done);
    cp2p_buf_append_byte(&c->resp, 0);
    char *out = (char *)cp2p_buf_steal(&c->resp, &len);
    free(c);
    return out;
}

static char *get(world_t *w, const char *path)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n", path);
    return http(w, req, (size_t)n);
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    assert_non_null(p);
    return p + 4;
}

/* The value of a sample line "name value" in a /metrics body; -1 if absent. */
static long long sample(const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

/* ---- tests ---- */

static void test_listen_address(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cp2p_host_t *h;
    assert_int_equal(cp2p_host_new(&loop, NULL, &h), 0);
    static const char *const bad[] = {NULL, "", "8080", ":8080", "127.0.0.1", "127.0.0.1:",
                                      "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
                                      "localhost:8080", "[::1:8080", "::1:8080",
                                      "999.0.0.1:80", "127.0.0.1:0000000"};
    cp2p_metrics_t *m;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cp2p_metrics_config_t cfg = {.listen = bad[i]};
        assert_int_equal(cp2p_metrics_start(h, &cfg, &m), CP2P_EINVAL);
    }
    static const char *const good[] = {"127.0.0.1:0", "[::1]:0", "0.0.0.0:0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cp2p_metrics_config_t cfg = {.listen = good[i]};
        int rc = cp2p_metrics_start(h, &cfg, &m);
        if (rc == CP2P_EIO && i == 1)
            continue; /* a machine without IPv6 */
        assert_int_equal(rc, 0);
        assert_true(cp2p_metrics_port(m) > 0);
        cp2p_metrics_stop(m, NULL, NULL);
    }
    /* A port in use is an error, not a crash. */
    cp2p_metrics_config_t cfg = {.listen = "127.0.0.1:0"};
    assert_int_equal(cp2p_metrics_start(h, &cfg, &m), 0);
    char taken[32];
    snprintf(taken, sizeof taken, "127.0.0.1:%d", cp2p_metrics_port(m));
    cp2p_metrics_t *m2;
    cfg.listen = taken;
    assert_int_equal(cp2p_metrics_start(h, &cfg, &m2), CP2P_EIO);
    cp2p_metrics_stop(m, NULL, NULL);
    int closed = 0;
    cp2p_host_close(h, flag_done, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_healthz(void **state)
{
    world_t w;
    world_init(&w, NULL, 0);
    char *r = get(&w, "/healthz"); /* not listening yet: not ready */
    assert_non_null(strstr(r, "HTTP/1.1 503 "));
    assert_string_equal(body_of(r), "not listening\n");
    free(r);
    host_listen(w.a);
    r = get(&w, "/healthz");
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(r, "\r\nContent-Length: 3\r\n"));
    assert_non_null(strstr(r, "\r\nConnection: close\r\n"));
    assert_string_equal(body_of(r), "ok\n");
    free(r);
    static const char head[] = "HEAD /healthz HTTP/1.0\r\n\r\n";
    r = http(&w, head, sizeof head - 1);
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(r), ""); /* HEAD: headers only */
    free(r);
    cp2p_metrics_stats_t st;
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.bad_requests, 0); /* a 503 is not the client's fault */
    world_free(&w);
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

static void on_put(cp2p_dht_t *d, int status, void *arg)
{
    assert_int_equal(status, 0);
    (*(int *)arg)++;
}

static void test_metrics_move(void **state)
{
    world_t w;
    memset(&w, 0, sizeof w);
    assert_int_equal(uv_loop_init(&w.loop), 0);
    uv_timer_init(&w.loop, &w.deadline);
    uv_timer_init(&w.loop, &w.pause);
    w.deadline.data = &w;
    assert_int_equal(cp2p_host_new(&w.loop, NULL, &w.a), 0);
    assert_int_equal(cp2p_host_new(&w.loop, NULL, &w.b), 0);
    host_listen(w.a);
    cp2p_dht_t *da, *db;
    cp2p_dht_config_t dc = {.open_keys = 1};
    assert_int_equal(cp2p_dht_new(w.a, &dc, &da), 0);
    assert_int_equal(cp2p_dht_new(w.b, &dc, &db), 0);
    cp2p_metrics_config_t cfg = {.listen = "127.0.0.1:0", .sources = {cp2p_dht_metrics_source(da)}};
    assert_int_equal(cp2p_metrics_start(w.a, &cfg, &w.m), 0);
    w.port = cp2p_metrics_port(w.m);

    char *r = get(&w, "/metrics");
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    const char *body = body_of(r);
    char id[CP2P_PEER_ID_STRMAX], info[256];
    cp2p_peer_id_to_string(cp2p_host_peer_id(w.a), id, sizeof id);
    snprintf(info, sizeof info, "cp2p_info{peer_id=\"%s\",agent_version=\"cp2p/0.1.0\"} 1\n", id);
    assert_non_null(strstr(body, info));
    assert_non_null(strstr(body, "# TYPE cp2p_connections_opened_total counter\n"));
    assert_non_null(strstr(body, "# TYPE cp2p_connections gauge\n"));
    assert_int_equal(sample(body, "cp2p_connections_opened_total"), 0);
    assert_int_equal(sample(body, "cp2p_connections"), 0);
    assert_int_equal(sample(body, "cp2p_listen_addresses"), 1);
    assert_int_equal(sample(body, "cp2p_dht_requests_in_total"), 0);
    assert_int_equal(sample(body, "cp2p_dht_routing_table_peers"), 0);
    assert_int_equal(sample(body, "cp2p_dht_records"), 0);
    assert_int_equal(sample(body, "cp2p_mdns_discovered_total"), -1); /* no mDNS given */
    assert_int_equal(sample(body, "cp2p_metrics_requests_total"), 0);
    assert_int_equal(sample(body, "cp2p_streams_opened_total{direction=\"inbound\"}"), 0);
    assert_int_equal(sample(body, "cp2p_streams_opened_total{direction=\"outbound\"}"), 0);
    assert_int_equal(sample(body, "cp2p_streams"), 0);
    assert_int_equal(sample(body, "cp2p_streams_bad_total"), 0);
    assert_int_equal(sample(body, "cp2p_stream_bytes_in_total"), 0);
    assert_int_equal(sample(body, "cp2p_stream_bytes_out_total"), 0);
    /* Every line is a comment or "name[{labels}] value". */
    for (const char *p = body; *p; p = strchr(p, '\n') + 1) {
        assert_non_null(strchr(p, '\n'));
        if (*p != '#')
            assert_true(*p >= 'a' && *p <= 'z' && strchr(p, ' ') < strchr(p, '\n'));
    }
    free(r);

    /* Traffic: B connects to A and stores a record through A's DHT. */
    cp2p_multiaddr_t *addrs;
    size_t n;
    assert_int_equal(cp2p_host_listen_addrs(w.a, &addrs, &n), 0);
    assert_int_equal(cp2p_dht_add_peer(db, cp2p_host_peer_id(w.a), addrs, n), 0);
    int connected = 0, put = 0;
    assert_int_equal(cp2p_host_connect(w.b, &addrs[0], on_connected, &connected), 0);
    run_until(&w, &connected);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    assert_int_equal(cp2p_dht_put(db, (const uint8_t *)"key", 3, (const uint8_t *)"v", 1, on_put,
                                  &put), 0);
    run_until(&w, &put);

    r = get(&w, "/metrics");
    body = body_of(r);
    assert_int_equal(sample(body, "cp2p_connections_opened_total"), 1);
    assert_int_equal(sample(body, "cp2p_connections"), 1);
    assert_true(sample(body, "cp2p_dht_requests_in_total") >= 2); /* FIND_NODE, PUT_VALUE */
    assert_int_equal(sample(body, "cp2p_dht_records"), 1); /* A holds B's record */
    assert_int_equal(sample(body, "cp2p_metrics_requests_total"), 1);
    assert_int_equal(sample(body, "cp2p_metrics_bad_requests_total"), 0);
    /* A answered B's DHT streams: inbound, payload both ways, none bad. */
    assert_true(sample(body, "cp2p_streams_opened_total{direction=\"inbound\"}") >= 2);
    assert_int_equal(sample(body, "cp2p_streams_opened_total{direction=\"outbound\"}"), 0);
    assert_true(sample(body, "cp2p_streams") >= 0);
    assert_int_equal(sample(body, "cp2p_streams_bad_total"), 0);
    assert_true(sample(body, "cp2p_stream_bytes_in_total") > 0);
    assert_true(sample(body, "cp2p_stream_bytes_out_total") > 0);
    free(r);

    /* The same text straight from the renderer, with B's DHT too. */
    cp2p_buf_t b = {0};
    assert_int_equal(cp2p_metrics_render(w.b, (cp2p_metrics_source_t[]){cp2p_dht_metrics_source(db), {0}}, &b), 0);
    cp2p_buf_append_byte(&b, 0);
    assert_true(sample((char *)b.data, "cp2p_dht_requests_out_total") >= 2);
    assert_int_equal(sample((char *)b.data, "cp2p_dht_routing_table_peers"), 1);
    assert_true(sample((char *)b.data, "cp2p_streams_opened_total{direction=\"outbound\"}") >= 2);
    assert_true(sample((char *)b.data, "cp2p_stream_bytes_out_total") > 0);
    cp2p_buf_free(&b);
    assert_int_equal(cp2p_metrics_render(NULL, NULL, &b), CP2P_EINVAL);

    int stopped = 0;
    cp2p_metrics_stop(w.m, flag_done, &stopped);
    run_until(&w, &stopped);
    w.m = NULL;
    cp2p_dht_free(da);
    cp2p_dht_free(db);
    int closed = 0;
    cp2p_host_close(w.a, flag_done, &closed);
    cp2p_host_close(w.b, flag_done, &closed);
    while (closed < 2)
        uv_run(&w.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w.deadline, on_closed);
    uv_close((uv_handle_t *)&w.pause, on_closed);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_error(world_t *w, const char *req, size_t len, const char *status)
{
    char *r = http(w, req, len);
    if (strncmp(r, status, strlen(status)))
        fail_msg("%.40s: got %.60s, want %s", req, r, status);
    assert_int_equal(lines(body_of(r)), 1); /* one line, for people and probes alike */
    free(r);
}

static void test_hostile_requests(void **state)
{
    world_t w;
    world_init(&w, NULL, 1);
#define E(req, st) expect_error(&w, req, sizeof req - 1, st)
    E("POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ");
    E("DELETE /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ");
    E("GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ");
    E("GET /metricsx HTTP/1.1\r\n\r\n", "HTTP/1.1 404 ");
    E("GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    E("GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400 ");
    E("GET /metrics\r\n\r\n", "HTTP/1.1 400 ");
    E("get /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    E("GET  /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    E("GET /met\x01rics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    E("GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n", "HTTP/1.1 400 ");
    E("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    E("\r\n\r\n", "HTTP/1.1 400 ");
    E("\n\n", "HTTP/1.1 400 ");
    E("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", "HTTP/1.1 400 "); /* a TLS hello */
#undef E
    /* No end of headers within the bound: 431, whatever follows. */
    size_t big = CP2P_METRICS_MAX_REQUEST * 4;
    char *huge = malloc(big);
    memcpy(huge, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(huge + 26, 'a', big - 26);
    expect_error(&w, huge, big, "HTTP/1.1 431 ");
    memset(huge, 'a', big);
    memcpy(huge, "GET /", 5);
    expect_error(&w, huge, big, "HTTP/1.1 431 ");
    free(huge);

    /* A request in small pieces, and one with a query string, are fine. */
    static const char slow[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    client_t *c = malloc(sizeof *c);
    client_start(&w, c, slow, sizeof slow - 1, 3, 5);
    run_until(&w, &c->done);
    cp2p_buf_append_byte(&c->resp, 0);
    assert_true(!strncmp((char *)c->resp.data, "HTTP/1.1 200 OK\r\n", 17));
    cp2p_buf_free(&c->resp);
    free(c);
    char *r = get(&w, "/metrics?name[]=cp2p_connections");
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_int_equal(sample(body_of(r), "cp2p_metrics_bad_requests_total"), 17);
    free(r);
    cp2p_metrics_stats_t st;
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.bad_requests, 17);
    assert_int_equal(st.requests, 2);
    world_free(&w);
}

static void test_slow_and_many_clients(void **state)
{
    world_t w;
    cp2p_metrics_config_t cfg = {.idle_timeout_ms = 300, .max_clients = 2};
    world_init(&w, &cfg, 1);
    client_t *c = calloc(4, sizeof *c);
    uint64_t t0 = uv_now(&w.loop);
    client_start(&w, &c[0], NULL, 0, 0, 0); /* silent */
    static const char partial[] = "GET /metrics HTTP/1.1\r\n";
    client_start(&w, &c[1], partial, sizeof partial - 1, 0, 0); /* never ends its headers */
    run_for(&w, 50);
    client_start(&w, &c[2], NULL, 0, 0, 0); /* one too many: the oldest gives way */
    run_until(&w, &c[0].done);
    assert_int_equal(c[0].resp.len, 0);
    assert_true(uv_now(&w.loop) - t0 < 250);
    assert_false(c[1].done);
    assert_false(c[2].done);
    run_until(&w, &c[1].done);
    run_until(&w, &c[2].done);
    assert_true(uv_now(&w.loop) - t0 >= 250);
    assert_int_equal(c[1].resp.len, 0);
    assert_int_equal(c[2].resp.len, 0);
    /* A client trickling a byte at a time is bounded by the same clock. */
    static const char trickle[] = "GET /healthz HTTP/1.1\r\nHost: something.long\r\n\r\n";
    client_start(&w, &c[3], trickle, sizeof trickle - 1, 1, 20);
    run_until(&w, &c[3].done);
    assert_int_equal(c[3].resp.len, 0);
    cp2p_metrics_stats_t st;
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.timeouts, 3);
    char *r = get(&w, "/healthz"); /* and the server still answers */
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    free(r);
    /* Stopping with clients connected closes them. */
    client_start(&w, &c[0], NULL, 0, 0, 0);
    run_for(&w, 20);
    int stopped = 0;
    cp2p_metrics_stop(w.m, flag_done, &stopped);
    run_until(&w, &stopped);
    run_until(&w, &c[0].done);
    for (int i = 0; i < 4; i++)
        cp2p_buf_free(&c[i].resp);
    free(c);
    w.m = NULL;
    int closed = 0;
    cp2p_host_close(w.a, flag_done, &closed);
    run_until(&w, &closed);
    uv_close((uv_handle_t *)&w.deadline, on_closed);
    uv_close((uv_handle_t *)&w.pause, on_closed);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
}

/* A request for /healthz is answered on its request line: a probe does not
 * wait for anything after it. Every other request waits for its headers. */
static void test_healthz_on_request_line(void **state)
{
    world_t w;
    cp2p_metrics_config_t cfg = {.idle_timeout_ms = 300};
    world_init(&w, &cfg, 1);
    static const char line[] = "GET /healthz HTTP/1.1\r\n";
    char *r = http(&w, line, sizeof line - 1);
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(r), "ok\n");
    free(r);
    static const char head[] = "HEAD /healthz?verbose HTTP/1.0\n";
    r = http(&w, head, sizeof head - 1);
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_string_equal(body_of(r), "");
    free(r);
    static const char post[] = "POST /healthz HTTP/1.1\r\n";
    expect_error(&w, post, sizeof post - 1, "HTTP/1.1 405 ");
    static const char version[] = "GET /healthz HTTP/2\r\n";
    expect_error(&w, version, sizeof version - 1, "HTTP/1.1 400 ");
    static const char *const wait[] = {"GET /healthzz HTTP/1.1\r\n", "GET /metrics HTTP/1.1\r\n",
                                       "GET /healthz"};
    for (size_t i = 0; i < sizeof wait / sizeof *wait; i++) {
        r = http(&w, wait[i], strlen(wait[i]));
        assert_string_equal(r, ""); /* closed at the timeout, unanswered */
        free(r);
    }
    cp2p_metrics_stats_t st;
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.bad_requests, 2);
    assert_int_equal(st.timeouts, 3);
    world_free(&w);
}

/* A client that sends req (NULL: nothing), accepted before the next one. */
static void start_first(world_t *w, client_t *c, const char *from, const char *req)
{
    client_start_from(w, c, from, req, req ? strlen(req) : 0, 0, 0);
    run_until(w, &c->connected);
    run_for(w, 20);
}

static void silent_from(world_t *w, client_t *c, const char *from)
{
    start_first(w, c, from, NULL);
}

static void free_clients(client_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp2p_buf_free(&c[i].resp);
    free(c);
}

/* Over max_clients, who gives way to a newcomer: a client already answered
 * (waiting for its close) before one still sending its request; of those
 * the oldest; never the newcomer. */
static void test_eviction_order(void **state)
{
    world_t w;
    cp2p_metrics_config_t cfg = {.max_clients = 3};
    world_init(&w, &cfg, 1);
    client_t *c = calloc(5, sizeof *c);
    silent_from(&w, &c[0], NULL);
    start_first(&w, &c[1], NULL, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); /* no end of headers */
    static const char req[] = "GET /healthz HTTP/1.1\r\n\r\n";
    client_start(&w, &c[2], req, sizeof req - 1, 0, 0);
    c[2].keep_open = 1; /* answered, and stays */
    run_until(&w, &c[2].eof);
    assert_true(c[2].resp.len > 17 && !strncmp((char *)c[2].resp.data, "HTTP/1.1 200 OK\r\n", 17));
    cp2p_metrics_stats_t st;
    /* The answered one goes, though it is the youngest. */
    silent_from(&w, &c[3], NULL);
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.evicted, 1);
    assert_false(c[0].done);
    assert_false(c[1].done);
    /* Then the oldest still sending its request. */
    client_start(&w, &c[4], NULL, 0, 0, 0);
    run_until(&w, &c[0].done);
    assert_int_equal(c[0].resp.len, 0);
    run_for(&w, 20);
    assert_false(c[1].done);
    assert_false(c[3].done);
    assert_false(c[4].done);
    /* A scrape is a newcomer too: c[1] goes, and the scrape counts it. */
    char *r = get(&w, "/metrics");
    assert_true(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17));
    assert_int_equal(sample(body_of(r), "cp2p_metrics_evicted_total"), 3);
    free(r);
    run_until(&w, &c[1].done);
    assert_int_equal(c[1].resp.len, 0);
    assert_false(c[3].done);
    assert_false(c[4].done);
    client_end(&c[2]);
    world_free(&w);
    free_clients(c, 5);
}

/* Per address (max_clients_per_ip): a newcomer over it makes its own
 * address's oldest client go; over max_clients, the address holding the
 * most gives way, not a client with an address of its own (a probe). */
static void test_eviction_per_address(void **state)
{
    world_t w;
    /* Loopback counted per IP, each 127.0.0.x an address of its own. */
    cp2p_metrics_config_t cfg = {.max_clients = 4, .max_clients_per_ip = 2, .limit_loopback = 1};
    world_init(&w, &cfg, 1);
    client_t *c = calloc(6, sizeof *c);
    silent_from(&w, &c[0], "127.0.0.2"); /* the oldest of all */
    silent_from(&w, &c[1], "127.0.0.1");
    silent_from(&w, &c[2], "127.0.0.1");
    client_start_from(&w, &c[3], "127.0.0.1", NULL, 0, 0, 0); /* a third from there */
    run_until(&w, &c[1].done);
    run_for(&w, 20);
    assert_false(c[0].done);
    assert_false(c[2].done);
    assert_false(c[3].done);
    silent_from(&w, &c[4], "127.0.0.3"); /* the 4th slot: nobody goes */
    cp2p_metrics_stats_t st;
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.evicted, 1);
    client_start_from(&w, &c[5], "127.0.0.4", NULL, 0, 0, 0); /* a 5th: 127.0.0.1 holds the most */
    run_until(&w, &c[2].done);
    run_for(&w, 20);
    assert_false(c[0].done);
    assert_false(c[3].done);
    assert_false(c[4].done);
    assert_false(c[5].done);
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.evicted, 2);
    world_free(&w);
    free_clients(c, 6);

    /* By default loopback is not counted per IP (tests, sidecars). */
    cfg = (cp2p_metrics_config_t){.max_clients_per_ip = 1};
    world_init(&w, &cfg, 1);
    c = calloc(3, sizeof *c);
    for (int i = 0; i < 3; i++)
        silent_from(&w, &c[i], "127.0.0.1");
    cp2p_metrics_stats(w.m, &st);
    assert_int_equal(st.evicted, 0);
    for (int i = 0; i < 3; i++)
        assert_false(c[i].done);
    world_free(&w);
    free_clients(c, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_address),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics_move),
        cmocka_unit_test(test_hostile_requests),
        cmocka_unit_test(test_slow_and_many_clients),
        cmocka_unit_test(test_healthz_on_request_line),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_eviction_per_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
