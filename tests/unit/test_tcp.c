/* TCP transport: listen on port 0, dial, echo, name resolution, refused dials,
 * wildcard expansion and address matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "transport/transport.h"

static const cp2p_transport_vtable_t *T = &cp2p_tcp_transport;

typedef struct fixture {
    uv_loop_t loop;
    cp2p_listener_t *l;
    cp2p_rawconn_t *server, *client;
    int dial_status, dialled;
    char got[64];
    size_t got_len;
} fixture_t;

static cp2p_multiaddr_t ma(const char *s)
{
    cp2p_multiaddr_t m = {0};
    assert_int_equal(cp2p_multiaddr_parse(s, &m), 0);
    return m;
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    static char buf[256];
    *b = uv_buf_init(buf, sizeof buf);
}

static void free_req(uv_write_t *w, int status)
{
    free(w);
}

/* Server side: echo whatever arrives. */
static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n <= 0)
        return;
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    assert_int_equal(uv_write(w, s, &out, 1, free_req), 0);
}

static void on_accept(void *arg, cp2p_rawconn_t *rc)
{
    fixture_t *f = arg;
    f->server = rc;
    uv_read_start(rc->stream, alloc_cb, echo_read);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    fixture_t *f = s->data;
    if (n <= 0)
        return;
    memcpy(f->got + f->got_len, b->base, (size_t)n);
    f->got_len += (size_t)n;
    if (f->got_len >= 5)
        uv_stop(&f->loop);
}

static void on_dial(void *arg, int status, cp2p_rawconn_t *rc)
{
    fixture_t *f = arg;
    f->dialled = 1;
    f->dial_status = status;
    f->client = rc;
    if (status) {
        uv_stop(&f->loop);
        return;
    }
    rc->stream->data = f;
    uv_read_start(rc->stream, alloc_cb, client_read);
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init("hello", 5);
    assert_int_equal(uv_write(w, rc->stream, &out, 1, free_req), 0);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cp2p_rawconn_free(f->server);
    cp2p_rawconn_free(f->client);
    if (f->l)
        T->listener_close(f->l);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Listens on listen_s and returns the port it got. */
static unsigned listen_on(fixture_t *f, const char *listen_s)
{
    cp2p_multiaddr_t m = ma(listen_s);
    assert_int_equal(T->listen(&f->loop, &m, on_accept, f, &f->l), 0);
    cp2p_multiaddr_free(&m);
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    assert_int_equal(T->listener_addrs(f->l, &addrs, &n), 0);
    assert_true(n >= 1);
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&addrs[0], CP2P_MA_TCP, &c), 0);
    unsigned port = (unsigned)(c.value[0] << 8 | c.value[1]);
    assert_true(port != 0);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
    free(addrs);
    return port;
}

/* prefix + port + suffix, dialled, "hello" echoed back. */
static void dial_and_echo(fixture_t *f, const char *prefix, unsigned port, const char *suffix)
{
    char s[160];
    snprintf(s, sizeof s, "%s%u%s", prefix, port, suffix);
    cp2p_multiaddr_t m = ma(s);
    cp2p_dial_t *d;
    assert_int_equal(T->dial(&f->loop, &m, on_dial, f, &d), 0);
    cp2p_multiaddr_free(&m);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->dialled);
    assert_int_equal(f->dial_status, 0);
    assert_int_equal(f->got_len, 5);
    assert_memory_equal(f->got, "hello", 5);
    /* The raw connection knows both ends. */
    assert_int_equal(cp2p_multiaddr_get(&f->client->remote, CP2P_MA_TCP, &(cp2p_multiaddr_component_t){0}), 0);
    assert_true(f->client->local.len > 0);
}

static void test_ip4_echo(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    dial_and_echo(f, "/ip4/127.0.0.1/tcp/", port, "");
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&f->client->remote, CP2P_MA_TCP, &c), 0);
    assert_int_equal(c.value[0] << 8 | c.value[1], port);
}

static void test_dns4_localhost(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    dial_and_echo(f, "/dns4/localhost/tcp/", port, "");
}

static void test_p2p_suffix_is_ignored(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    dial_and_echo(f, "/ip4/127.0.0.1/tcp/", port,
                  "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
}

static void test_ip6(void **state)
{
    fixture_t *f = *state;
    cp2p_multiaddr_t m = ma("/ip6/::1/tcp/0");
    int rc = T->listen(&f->loop, &m, on_accept, f, &f->l);
    cp2p_multiaddr_free(&m);
    if (rc) {
        skip(); /* no IPv6 loopback in this sandbox */
        return;
    }
    T->listener_close(f->l);
    f->l = NULL;
    unsigned port = listen_on(f, "/ip6/::1/tcp/0");
    dial_and_echo(f, "/ip6/::1/tcp/", port, "");
}

static void test_refused(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    T->listener_close(f->l);
    f->l = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    cp2p_multiaddr_t m = ma(s);
    cp2p_dial_t *d;
    assert_int_equal(T->dial(&f->loop, &m, on_dial, f, &d), 0);
    cp2p_multiaddr_free(&m);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->dialled);
    assert_int_equal(f->dial_status, CP2P_ECONNREFUSED);
    assert_null(f->client);
}

static void test_unresolvable(void **state)
{
    fixture_t *f = *state;
    cp2p_multiaddr_t m = ma("/dns4/no-such-host.invalid/tcp/1");
    cp2p_dial_t *d;
    assert_int_equal(T->dial(&f->loop, &m, on_dial, f, &d), 0);
    cp2p_multiaddr_free(&m);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->dial_status, CP2P_EUNREACHABLE);
}

static void test_cancel(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    cp2p_multiaddr_t m = ma(s);
    cp2p_dial_t *d;
    assert_int_equal(T->dial(&f->loop, &m, on_dial, f, &d), 0);
    cp2p_multiaddr_free(&m);
    T->dial_cancel(d);
    T->listener_close(f->l);
    f->l = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(f->dialled);
    cp2p_rawconn_free(f->server);
    f->server = NULL;
}

static void test_wildcard_and_two_listeners(void **state)
{
    fixture_t *f = *state;
    cp2p_multiaddr_t m = ma("/ip4/0.0.0.0/tcp/0");
    cp2p_listener_t *l2;
    assert_int_equal(T->listen(&f->loop, &m, on_accept, f, &l2), 0);
    cp2p_multiaddr_free(&m);
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    assert_int_equal(T->listener_addrs(l2, &addrs, &n), 0);
    int loopback = 0;
    for (size_t i = 0; i < n; i++) {
        cp2p_multiaddr_component_t c;
        assert_int_equal(cp2p_multiaddr_get(&addrs[i], CP2P_MA_IP4, &c), 0);
        assert_false(memcmp(c.value, "\0\0\0\0", 4) == 0);
        if (memcmp(c.value, "\x7f\0\0\x01", 4) == 0)
            loopback = 1;
        cp2p_multiaddr_free(&addrs[i]);
    }
    free(addrs);
    assert_true(loopback);
    T->listener_close(l2);
    dial_and_echo(f, "/ip4/127.0.0.1/tcp/", port, "");
}

static void test_matches(void **state)
{
    const char *yes[] = {"/ip4/1.2.3.4/tcp/1", "/ip6/::1/tcp/4001", "/dns/example.com/tcp/80",
                         "/dns6/example.com/tcp/80",
                         "/ip4/1.2.3.4/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"};
    const char *no[] = {"/ip4/1.2.3.4/udp/1", "/ip4/1.2.3.4", "/ip4/1.2.3.4/tcp/1/ws",
                        "/ip4/1.2.3.4/udp/1/quic-v1", "/tcp/1"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        cp2p_multiaddr_t m = ma(yes[i]);
        assert_true(T->matches(&m));
        cp2p_multiaddr_free(&m);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        cp2p_multiaddr_t m = {0};
        if (cp2p_multiaddr_parse(no[i], &m) != 0)
            continue;
        assert_false(T->matches(&m));
        cp2p_multiaddr_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ip4_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns4_localhost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_p2p_suffix_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ip6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unresolvable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_and_two_listeners, setup, teardown),
        cmocka_unit_test(test_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
