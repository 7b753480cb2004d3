/* Port mapping (cp2p/nat.h) with NAT-PMP against a gateway played by the
 * test on a loopback address: the reply parser on byte vectors (RFC 6886),
 * then a host's port mapped, renewed, advertised and removed on close, and
 * a gateway that refuses, lies, floods or says nothing. UPnP IGD is tested
 * against miniupnpd in tests/cli/nat_netns.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host_harness.h"

#include "cp2p/nat.h"
#include "nat/natpmp_msg.h"

/* ---- the parser ---- */

static void test_reply_parse(void **state)
{
    cp2p_natpmp_reply_t r;
    /* external address 203.0.113.7, epoch 1000 */
    static const uint8_t pub[] = {0, 128, 0, 0, 0, 0, 0x03, 0xe8, 203, 0, 113, 7};
    assert_int_equal(cp2p_natpmp_reply_parse(pub, sizeof pub, &r), 0);
    assert_int_equal(r.op, CP2P_NATPMP_OP_PUBLIC);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.epoch, 1000);
    assert_memory_equal(r.ip, ((uint8_t[]){203, 0, 113, 7}), 4);
    /* TCP 4001 mapped to 5001 for 7200 s */
    static const uint8_t map[] = {0, 130, 0, 0, 0, 0, 0, 5, 0x0f, 0xa1, 0x13, 0x89, 0, 0, 0x1c, 0x20};
    assert_int_equal(cp2p_natpmp_reply_parse(map, sizeof map, &r), 0);
    assert_int_equal(r.op, CP2P_NATPMP_OP_TCP);
    assert_int_equal(r.iport, 4001);
    assert_int_equal(r.eport, 5001);
    assert_int_equal(r.lifetime, 7200);
    /* an error needs only its header; the rest is undefined (3.5) */
    static const uint8_t refused[] = {0, 130, 0, 2, 0, 0, 0, 9};
    assert_int_equal(cp2p_natpmp_reply_parse(refused, sizeof refused, &r), 0);
    assert_int_equal(r.result, 2);
    assert_int_equal(r.iport, 0);

    static const uint8_t v1[] = {1, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};       /* version 1 */
    static const uint8_t req[] = {0, 2, 0, 0, 0x0f, 0xa1, 0, 0, 0, 0, 0, 60}; /* a request */
    static const uint8_t udp[] = {0, 129, 0, 0, 0, 0, 0, 5, 0x0f, 0xa1, 0x13, 0x89, 0, 0, 0, 60};
    static const uint8_t pcp[] = {2, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};      /* PCP's version */
    assert_int_equal(cp2p_natpmp_reply_parse(v1, sizeof v1, &r), CP2P_EPARSE);
    assert_int_equal(cp2p_natpmp_reply_parse(req, sizeof req, &r), CP2P_EPARSE);
    assert_int_equal(cp2p_natpmp_reply_parse(udp, sizeof udp, &r), CP2P_EPARSE);
    assert_int_equal(cp2p_natpmp_reply_parse(pcp, sizeof pcp, &r), CP2P_EPARSE);
    for (size_t n = 0; n < sizeof pub; n++) /* every truncation of a success */
        if (n < 8 || n != sizeof pub)
            assert_int_equal(cp2p_natpmp_reply_parse(pub, n, &r), CP2P_EPARSE);
    for (size_t n = 8; n < sizeof map; n++)
        assert_int_equal(cp2p_natpmp_reply_parse(map, n, &r), CP2P_EPARSE);
    uint8_t longer[17] = {0, 130};
    assert_int_equal(cp2p_natpmp_reply_parse(longer, sizeof longer, &r), CP2P_EPARSE);
    assert_int_equal(cp2p_natpmp_reply_parse(pub, sizeof pub - 1, &r), CP2P_EPARSE);
}

/* ---- a gateway on loopback ---- */

enum gw_mode { GW_OK, GW_REFUSE, GW_SILENT, GW_LIES, GW_FLOOD };

typedef struct gw {
    uv_udp_t udp;
    char ip[16];
    enum gw_mode mode;
    int requests, map_requests, unmaps;
    uint16_t last_iport, last_want;
    uint32_t last_life;
    uint32_t grant; /* lifetime granted */
    uint16_t long_port; /* granted 60 s instead */
    int long_requests;
    int restart_after;  /* map requests before the gateway "restarts" (its epoch back to 0) */
    uint32_t epoch0;    /* the epoch at t0 */
    uint64_t t0;
    uint8_t pub_last; /* the external address is 203.0.113.<pub_last> */
    int closed;
} gw_t;

static void gw_send(gw_t *g, const struct sockaddr *to, const void *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    assert_true(uv_udp_try_send(&g->udp, &b, 1, to) == (int)n);
}

static void gw_alloc(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    static char buf[256];
    *b = uv_buf_init(buf, sizeof buf);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void gw_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
                    unsigned flags)
{
    gw_t *g = u->data;
    if (n <= 0 || !from)
        return;
    const uint8_t *q = (const uint8_t *)b->base;
    g->requests++;
    assert_int_equal(q[0], 0); /* NAT-PMP version 0 */
    if (g->mode == GW_SILENT)
        return;
    uint8_t r[16] = {0, (uint8_t)(128 + q[1])};
    put32(r + 4, g->epoch0 + (uint32_t)((uv_now(u->loop) - g->t0) / 1000)); /* epoch */
    if (q[1] == 0) {
        assert_int_equal(n, 2);
        if (g->mode == GW_LIES) { /* what answers nothing first */
            static const uint8_t junk[][16] = {{0}, {1, 128}, {0, 129}, {0, 130, 0, 0}};
            for (size_t i = 0; i < 4; i++)
                gw_send(g, from, junk[i], i == 0 ? 3 : 12);
        }
        r[8] = 203, r[9] = 0, r[10] = 113, r[11] = g->pub_last;
        gw_send(g, from, r, 12);
        return;
    }
    assert_int_equal(q[1], 2); /* TCP */
    assert_int_equal(n, 12);
    g->map_requests++;
    g->last_iport = (uint16_t)(q[4] << 8 | q[5]);
    g->last_want = (uint16_t)(q[6] << 8 | q[7]);
    g->last_life = (uint32_t)q[8] << 24 | (uint32_t)q[9] << 16 | (uint32_t)q[10] << 8 | q[11];
    if (!g->last_life)
        g->unmaps++;
    if (g->last_iport == g->long_port)
        g->long_requests++;
    if (g->restart_after && g->map_requests == g->restart_after + 1) {
        g->epoch0 = 0; /* from this answer on: a gateway that has just started */
        g->t0 = uv_now(u->loop);
        put32(r + 4, 0);
    }
    if (g->mode == GW_REFUSE) {
        put16(r + 2, 2); /* Not Authorized/Refused */
        gw_send(g, from, r, 8);
        return;
    }
    if (g->mode == GW_LIES) {
        uint8_t other[16];
        memcpy(other, r, 16);
        put16(other + 8, (uint16_t)(g->last_iport + 1)); /* another port's mapping */
        put16(other + 10, 9999);
        gw_send(g, from, other, 16);
        gw_send(g, from, other, 15);                            /* truncated */
        gw_send(g, from, (uint8_t[]){0, 128, 0, 0, 0, 0, 0, 0, 6, 6, 6, 6}, 12); /* wrong op */
    }
    if (g->mode == GW_FLOOD && g->map_requests == 1) {
        /* more than the socket holds: the answer after them is lost too,
         * and the request sent again must get through */
        for (int i = 0; i < 2000; i++)
            gw_send(g, from, (uint8_t[]){0, 130, 0xff, (uint8_t)i}, 4);
        return;
    }
    put16(r + 8, g->last_iport);
    put16(r + 10, g->last_life ? (uint16_t)(g->last_iport + 1000) : 0);
    put32(r + 12, !g->last_life ? 0 : g->last_iport == g->long_port ? 60 : g->grant);
    gw_send(g, from, r, 16);
}

static void gw_start(world_t *w, gw_t *g, enum gw_mode mode)
{
    memset(g, 0, sizeof *g);
    g->mode = mode;
    g->grant = 3600;
    g->epoch0 = 1000;
    g->pub_last = 7;
    g->t0 = uv_now(&w->loop);
    /* an address of our own in 127/8, so that parallel runs do not meet */
    snprintf(g->ip, sizeof g->ip, "127.%d.%d.1", 1 + getpid() % 250, 1 + (getpid() / 250) % 250);
    struct sockaddr_in a;
    uv_ip4_addr(g->ip, 5351, &a);
    uv_udp_init(&w->loop, &g->udp);
    g->udp.data = g;
    assert_int_equal(uv_udp_bind(&g->udp, (const struct sockaddr *)&a, 0), 0);
    uv_udp_recv_start(&g->udp, gw_alloc, gw_recv);
}

static void gw_closed(uv_handle_t *h)
{
    ((gw_t *)h->data)->closed = 1;
}

static void gw_stop(world_t *w, gw_t *g)
{
    uv_close((uv_handle_t *)&g->udp, gw_closed);
    world_run_until(w, &g->closed, 1000);
}

/* ---- the port map's side ---- */

typedef struct seen {
    int mapped, lost, failed, last_error;
    unsigned last_method;
    uint16_t iport;
    uint32_t lifetime;
    char external[64], reason[128];
    int done;
} seen_t;

static void on_nat(const cp2p_nat_event_t *ev, void *arg)
{
    seen_t *s = arg;
    s->last_method = ev->method;
    s->iport = ev->internal_port;
    s->last_error = ev->error;
    if (ev->reason)
        snprintf(s->reason, sizeof s->reason, "%s", ev->reason);
    if (ev->external) {
        cp2p_buf_t b = {0};
        assert_int_equal(cp2p_multiaddr_to_string(ev->external, &b), 0);
        snprintf(s->external, sizeof s->external, "%s", (char *)b.data);
        cp2p_buf_free(&b);
    }
    if (ev->type == CP2P_NAT_MAPPED) {
        s->mapped++;
        s->lifetime = ev->lifetime_s;
    } else if (ev->type == CP2P_NAT_LOST)
        s->lost++;
    else
        s->failed++;
}

static void on_done(void *arg)
{
    ((seen_t *)arg)->done = 1;
}

static int host_closed;
static void on_host_closed(void *arg)
{
    host_closed = 1;
}

/* A host listening on 127.0.0.1 (ports on loopback are mapped: cfg.loopback). */
static cp2p_host_t *new_host(world_t *w, uint16_t *port)
{
    cp2p_host_t *h;
    assert_int_equal(cp2p_host_new(&w->loop, NULL, &h), 0);
    cp2p_multiaddr_t ma, *l;
    size_t n;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(h, &ma), 0);
    cp2p_multiaddr_free(&ma);
    assert_int_equal(cp2p_host_listen_addrs(h, &l, &n), 0);
    assert_int_equal(n, 1);
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&l[0], CP2P_MA_TCP, &c), 0);
    *port = (uint16_t)(c.value[0] << 8 | c.value[1]);
    cp2p_multiaddr_array_free(l, n);
    return h;
}

static void close_host(world_t *w, cp2p_host_t *h)
{
    host_closed = 0;
    cp2p_host_close(h, on_host_closed, NULL);
    world_run_until(w, &host_closed, 5000);
}

static int host_has_addr(cp2p_host_t *h, const char *want)
{
    cp2p_multiaddr_t *a;
    size_t n;
    int found = 0;
    assert_int_equal(cp2p_host_addrs(h, &a, &n), 0);
    for (size_t i = 0; i < n; i++) {
        cp2p_buf_t b = {0};
        cp2p_multiaddr_to_string(&a[i], &b);
        found |= !strcmp((char *)b.data, want);
        cp2p_buf_free(&b);
    }
    cp2p_multiaddr_array_free(a, n);
    return found;
}

static void test_maps_renews_advertises_unmaps(void **state)
{
    world_t w;
    world_init(&w);
    gw_t g;
    gw_start(&w, &g, GW_OK);
    g.grant = 4; /* renewed at half: 2 s */
    uint16_t port;
    cp2p_host_t *h = new_host(&w, &port);
    seen_t s = {0};
    cp2p_nat_t *n;
    cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1,
                             .advertise = 1, .lease_s = 60};
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
    assert_int_equal(g.requests, 0); /* nothing inside the call */
    world_run_until(&w, &s.mapped, 3000);
    char want[64];
    snprintf(want, sizeof want, "/ip4/203.0.113.7/tcp/%u", port + 1000);
    assert_string_equal(s.external, want);
    assert_int_equal(s.iport, port);
    assert_int_equal(s.lifetime, 4);
    assert_int_equal(s.last_method, CP2P_NAT_NATPMP);
    assert_int_equal(g.last_iport, port);
    assert_int_equal(g.last_want, port); /* the same port asked for first */
    assert_int_equal(g.last_life, 60);
    assert_true(host_has_addr(h, want)); /* advertised */
    cp2p_multiaddr_t *a;
    size_t na;
    assert_int_equal(cp2p_nat_addrs(n, &a, &na), 0);
    assert_int_equal(na, 1);
    cp2p_multiaddr_array_free(a, na);

    /* renewed at half the lease, asking for the port it has */
    world_run_until_n(&w, &g.map_requests, 2, 3500);
    assert_int_equal(g.last_want, port + 1000);
    assert_int_equal(s.mapped, 1); /* the same mapping: no new event */

    cp2p_nat_close(n, on_done, &s);
    assert_false(s.done);
    world_run_until(&w, &s.done, 3000);
    assert_int_equal(g.unmaps, 1); /* lifetime 0, suggested port 0 (RFC 6886 3.4) */
    assert_int_equal(g.last_want, 0);
    assert_int_equal(g.last_iport, port);
    assert_false(host_has_addr(h, want)); /* no longer advertised */
    assert_int_equal(s.mapped, 1);
    gw_stop(&w, &g);
    close_host(&w, h);
    world_end(&w);
}

/* RFC 6886 3.6: a gateway whose epoch went back restarted and lost every
 * mapping: the one renewed tells, the other one is made again at once,
 * not when its own renewal is due (30 s later). Then the gateway refuses:
 * the mappings it drops are reported lost and no longer advertised. */
static void test_gateway_restarts_then_refuses(void **state)
{
    world_t w;
    world_init(&w);
    gw_t g;
    gw_start(&w, &g, GW_OK);
    g.grant = 2;
    g.restart_after = 2;
    uint16_t port, port2;
    cp2p_host_t *h = new_host(&w, &port);
    cp2p_multiaddr_t ma;
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", &ma), 0);
    assert_int_equal(cp2p_host_listen(h, &ma), 0);
    cp2p_multiaddr_free(&ma);
    cp2p_multiaddr_t *l;
    size_t nl;
    assert_int_equal(cp2p_host_listen_addrs(h, &l, &nl), 0);
    assert_int_equal(nl, 2);
    cp2p_multiaddr_component_t c;
    assert_int_equal(cp2p_multiaddr_get(&l[1], CP2P_MA_TCP, &c), 0);
    port2 = (uint16_t)(c.value[0] << 8 | c.value[1]);
    if (port2 == port) {
        assert_int_equal(cp2p_multiaddr_get(&l[0], CP2P_MA_TCP, &c), 0);
        port2 = (uint16_t)(c.value[0] << 8 | c.value[1]);
    }
    cp2p_multiaddr_array_free(l, nl);
    g.long_port = port2;
    seen_t s = {0};
    cp2p_nat_t *n;
    cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1,
                             .advertise = 1};
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
    world_run_until_n(&w, &s.mapped, 2, 3000);
    assert_int_equal(g.long_requests, 1);
    /* the short one is renewed at 2 s; its answer shows the restart */
    world_run_until_n(&w, &g.long_requests, 2, 3500);
    assert_int_equal(g.map_requests, 4);
    assert_int_equal(s.mapped, 2); /* the same addresses: no new events */

    char want[64];
    snprintf(want, sizeof want, "/ip4/203.0.113.7/tcp/%u", port + 1000);
    assert_true(host_has_addr(h, want));
    g.mode = GW_REFUSE;
    world_run_until(&w, &s.lost, 4000);
    assert_string_equal(s.external, want);
    assert_int_equal(s.last_error, CP2P_EREFUSED);
    assert_false(host_has_addr(h, want));
    cp2p_nat_close(n, on_done, &s);
    world_run_until(&w, &s.done, 3000);
    gw_stop(&w, &g);
    close_host(&w, h);
    world_end(&w);
}

/* The ISP gives the gateway a new address: asked again at half the lease,
 * it moves every mapping, told again with the new address, advertised in
 * place of the old one. */
static void test_external_address_moves(void **state)
{
    world_t w;
    world_init(&w);
    gw_t g;
    gw_start(&w, &g, GW_OK);
    g.grant = 60;
    uint16_t port;
    cp2p_host_t *h = new_host(&w, &port);
    seen_t s = {0};
    cp2p_nat_t *n;
    cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1,
                             .advertise = 1, .lease_s = 4};
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
    world_run_until(&w, &s.mapped, 3000);
    char was[64], now[64];
    snprintf(was, sizeof was, "/ip4/203.0.113.7/tcp/%u", port + 1000);
    snprintf(now, sizeof now, "/ip4/203.0.113.8/tcp/%u", port + 1000);
    assert_string_equal(s.external, was);
    g.pub_last = 8;
    world_run_until_n(&w, &s.mapped, 2, 3500); /* asked again after 2 s */
    assert_string_equal(s.external, now);
    assert_true(host_has_addr(h, now));
    assert_false(host_has_addr(h, was));
    cp2p_multiaddr_t *a;
    size_t na;
    assert_int_equal(cp2p_nat_addrs(n, &a, &na), 0);
    assert_int_equal(na, 1);
    cp2p_buf_t b = {0};
    cp2p_multiaddr_to_string(&a[0], &b);
    assert_string_equal((char *)b.data, now);
    cp2p_buf_free(&b);
    cp2p_multiaddr_array_free(a, na);
    int maps = g.map_requests;
    world_run_for(&w, 500); /* the same address again: nothing more to do */
    assert_int_equal(g.map_requests, maps);
    assert_int_equal(s.mapped, 2);
    cp2p_nat_close(n, on_done, &s);
    world_run_until(&w, &s.done, 3000);
    gw_stop(&w, &g);
    close_host(&w, h);
    world_end(&w);
}

static void test_gateway_lies_and_floods(void **state)
{
    for (enum gw_mode mode = GW_LIES; mode <= GW_FLOOD; mode++) {
        world_t w;
        world_init(&w);
        gw_t g;
        gw_start(&w, &g, mode);
        uint16_t port;
        cp2p_host_t *h = new_host(&w, &port);
        seen_t s = {0};
        cp2p_nat_t *n;
        cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1};
        assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
        world_run_until(&w, &s.mapped, 5000);
        char want[64];
        snprintf(want, sizeof want, "/ip4/203.0.113.7/tcp/%u", port + 1000);
        assert_string_equal(s.external, want); /* not 6.6.6.6, not 9999 */
        assert_int_equal(s.failed, 0);
        if (mode == GW_FLOOD)
            assert_true(g.map_requests >= 2); /* the first answer drowned */
        world_run_for(&w, 200);
        assert_int_equal(s.mapped, 1);
        cp2p_nat_close(n, on_done, &s);
        world_run_until(&w, &s.done, 3000);
        gw_stop(&w, &g);
        close_host(&w, h);
        world_end(&w);
    }
}

static void test_gateway_refuses(void **state)
{
    world_t w;
    world_init(&w);
    gw_t g;
    gw_start(&w, &g, GW_REFUSE);
    uint16_t port;
    cp2p_host_t *h = new_host(&w, &port);
    seen_t s = {0};
    cp2p_nat_t *n;
    cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1};
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
    world_run_until(&w, &s.failed, 3000);
    assert_int_equal(s.mapped, 0);
    assert_int_equal(s.iport, port);
    assert_int_equal(s.last_error, CP2P_EREFUSED);
    assert_non_null(strstr(s.reason, "result 2"));
    int before = g.map_requests;
    world_run_for(&w, 500); /* no hammering: the next try is 30 s away */
    assert_int_equal(g.map_requests, before);
    cp2p_nat_close(n, on_done, &s);
    world_run_until(&w, &s.done, 3000);
    assert_int_equal(g.unmaps, 0); /* nothing was mapped, nothing to remove */
    gw_stop(&w, &g);
    close_host(&w, h);
    world_end(&w);
}

static void test_gateway_silent(void **state)
{
    world_t w;
    world_init(&w);
    gw_t g;
    gw_start(&w, &g, GW_SILENT);
    uint16_t port;
    cp2p_host_t *h = new_host(&w, &port);
    seen_t s = {0};
    cp2p_nat_t *n;
    cp2p_nat_config_t cfg = {.methods = CP2P_NAT_NATPMP, .gateway = g.ip, .loopback = 1,
                             .timeout_ms = 1000};
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s, &n), 0);
    uint64_t t0 = uv_now(&w.loop);
    world_run_until(&w, &s.failed, 3000);
    assert_true(uv_now(&w.loop) - t0 >= 900);
    assert_int_equal(s.last_method, 0); /* no gateway */
    assert_int_equal(s.last_error, CP2P_EUNREACHABLE);
    assert_true(g.requests >= 3); /* sent again at 250 ms, then 500 ms later (RFC 6886 3.1) */
    assert_true(g.requests <= 5);
    /* closing while a request waits for its answer: done within the timeout */
    seen_t s2 = {0};
    cp2p_nat_t *n2;
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s2, &n2), 0);
    world_run_for(&w, 100);
    cp2p_nat_close(n2, on_done, &s2);
    world_run_until(&w, &s2.done, 2000);
    assert_int_equal(s2.failed, 0); /* no event after close */
    /* closing before the first turn */
    seen_t s3 = {0};
    cp2p_nat_t *n3;
    assert_int_equal(cp2p_nat_start(h, &cfg, on_nat, &s3, &n3), 0);
    cp2p_nat_close(n3, on_done, &s3);
    assert_false(s3.done);
    world_run_until(&w, &s3.done, 1000);
    cp2p_nat_close(n, on_done, &s);
    world_run_until(&w, &s.done, 1000);
    gw_stop(&w, &g);
    close_host(&w, h);
    world_end(&w);
}

static void test_bad_config(void **state)
{
    world_t w;
    world_init(&w);
    uint16_t port;
    cp2p_host_t *h = new_host(&w, &port);
    cp2p_nat_t *n;
    cp2p_nat_config_t bad_gw = {.gateway = "not an address"};
    assert_int_equal(cp2p_nat_start(h, &bad_gw, NULL, NULL, &n), CP2P_EINVAL);
    cp2p_nat_config_t bad_method = {.methods = 8};
    assert_int_equal(cp2p_nat_start(h, &bad_method, NULL, NULL, &n), CP2P_EINVAL);
    assert_string_equal(cp2p_nat_method_name(CP2P_NAT_UPNP), "UPnP");
    assert_string_equal(cp2p_nat_method_name(CP2P_NAT_NATPMP), "NAT-PMP");
    assert_string_equal(cp2p_nat_method_name(0), "none");
    close_host(&w, h);
    world_end(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_parse),
        cmocka_unit_test(test_maps_renews_advertises_unmaps),
        cmocka_unit_test(test_gateway_restarts_then_refuses),
        cmocka_unit_test(test_external_address_moves),
        cmocka_unit_test(test_gateway_lies_and_floods),
        cmocka_unit_test(test_gateway_refuses),
        cmocka_unit_test(test_gateway_silent),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
