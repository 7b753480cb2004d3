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


static unsigned ma_port(const cp2p_multiaddr_t *m)
{
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(m, CP2P_MA_TCP, &c), 0);
    return (unsigned)(c.value[0] << 8 | c.value[1]);
}

/* A port-reusing dial leaves from the listen port: the server sees it as the
 * remote port, and the transport keeps working for a plain dial beside it. */
static void test_reuse_port_dial(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    cp2p_multiaddr_t m = ma("/ip4/127.0.0.1/tcp/0");
    cp2p_listener_t *mine;
    assert_int_equal(T->listen(&f->loop, &m, on_accept, f, &mine), 0);
    cp2p_multiaddr_free(&m);
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    assert_int_equal(T->listener_addrs(mine, &addrs, &n), 0);
    unsigned my_port = ma_port(&addrs[0]);
    cp2p_multiaddr_array_free(addrs, n);
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    m = ma(s);
    cp2p_dial_t *d;
    assert_non_null(T->dial_reuse);
    assert_int_equal(T->dial_reuse(&f->loop, &m, &mine, 1, 0, on_dial, f, &d), 0);
    cp2p_multiaddr_free(&m);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->dial_status, 0);
    assert_int_equal(ma_port(&f->client->local), my_port);
    assert_non_null(f->server);
    assert_int_equal(ma_port(&f->server->remote), my_port);
    T->listener_close(mine);
}

/* A second listener on a port in use is still refused (SO_REUSEPORT would
 * otherwise let it share the first one's connections). */
static void test_port_in_use(void **state)
{
    fixture_t *f = *state;
    unsigned port = listen_on(f, "/ip4/127.0.0.1/tcp/0");
    char s[64];
    snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", port);
    cp2p_multiaddr_t m = ma(s);
    cp2p_listener_t *l2 = NULL;
    assert_int_equal(T->listen(&f->loop, &m, on_accept, f, &l2), CP2P_EEXIST);
    cp2p_multiaddr_free(&m);
}

/* Two peers that dial each other from their listen ports at once (a hole
 * punch without the NAT): whether the SYNs cross (simultaneous open) or one
 * listener accepts first, each side ends up with one connection between
 * the two listen ports. */
typedef struct sim_side {
    cp2p_listener_t *l;
    unsigned port;
    cp2p_rawconn_t *dialled, *accepted;
    int dial_done, dial_status;
    int *pending;
    uv_loop_t *loop;
} sim_side_t;

static void sim_accept(void *arg, cp2p_rawconn_t *rc)
{
    sim_side_t *s = arg;
    if (s->accepted)
        cp2p_rawconn_free(s->accepted);
    s->accepted = rc;
}

static void sim_dial(void *arg, int status, cp2p_rawconn_t *rc)
{
    sim_side_t *s = arg;
    s->dial_done = 1;
    s->dial_status = status;
    s->dialled = rc;
    if (--*s->pending == 0)
        uv_stop(s->loop);
}

static void test_simultaneous_open(void **state)
{
    fixture_t *f = *state;
    sim_side_t a = {0}, b = {0};
    int pending = 2;
    sim_side_t *sides[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        cp2p_multiaddr_t m = ma("/ip4/127.0.0.1/tcp/0");
        assert_int_equal(T->listen(&f->loop, &m, sim_accept, sides[i], &sides[i]->l), 0);
        cp2p_multiaddr_free(&m);
        cp2p_multiaddr_t *addrs = NULL;
        size_t n = 0;
        assert_int_equal(T->listener_addrs(sides[i]->l, &addrs, &n), 0);
        sides[i]->port = ma_port(&addrs[0]);
        cp2p_multiaddr_array_free(addrs, n);
        sides[i]->pending = &pending;
        sides[i]->loop = &f->loop;
    }
    for (int i = 0; i < 2; i++) {
        char s[64];
        snprintf(s, sizeof s, "/ip4/127.0.0.1/tcp/%u", sides[1 - i]->port);
        cp2p_multiaddr_t m = ma(s);
        cp2p_dial_t *d;
        int rc = T->dial_reuse(&f->loop, &m, &sides[i]->l, 1, 1, sim_dial, sides[i], &d);
        cp2p_multiaddr_free(&m);
        if (rc) { /* refused at once: the other side's connection holds the 4-tuple */
            sides[i]->dial_done = 1;
            sides[i]->dial_status = rc;
            pending--;
        }
    }
    if (pending)
        uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Let an accept that trails the dials arrive. */
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    unsigned got[2][2] = {{0}};
    int conns[2] = {0};
    for (int i = 0; i < 2; i++) {
        sim_side_t *s = sides[i];
        cp2p_rawconn_t *c = s->dialled ? s->dialled : s->accepted;
        conns[i] = (s->dialled != NULL) + (s->accepted != NULL);
        if (c) {
            got[i][0] = ma_port(&c->local);
            got[i][1] = ma_port(&c->remote);
        }
        cp2p_rawconn_free(s->dialled);
        cp2p_rawconn_free(s->accepted);
        T->listener_close(s->l);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(conns[i], 1);
        assert_int_equal(got[i][0], sides[i]->port);
        assert_int_equal(got[i][1], sides[1 - i]->port);
    }
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
        cmocka_unit_test_setup_teardown(test_reuse_port_dial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simultaneous_open, setup, teardown),
        cmocka_unit_test(test_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
