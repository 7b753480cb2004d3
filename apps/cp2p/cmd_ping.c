/* cp2p ping: serve /ipfs/ping/1.0.0 and optionally ping a peer (libp2p specs
 * ping/ping.md), printing identify results on request. Hidden options used by
 * tests/interop: --echo serves /echo/1.0.0, --echo-streams/--echo-size drive it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "cli_autonat.h"
#include "cli_signals.h"
#include "cp2p/error.h"
#include "cp2p/host.h"
#include "cp2p/identify.h"
#include "cp2p/multiaddr.h"
#include "cp2p/nat.h"
#include "cp2p/peerstore.h"
#include "cp2p/ping.h"
#include "cp2p/dcutr.h"
#include "cp2p/relay.h"
#include "cp2p/rendezvous.h"

#define ECHO_PROTOCOL_ID "/echo/1.0.0"
#define ECHO_CHUNK (64 * 1024)
#define MAX_LISTEN 8

typedef struct app {
    uv_loop_t loop;
    cp2p_host_t *h;
    cp2p_identify_t *id;
    cp2p_nat_t *portmap; /* --nat-port-map */
    cli_autonat_t nat;
    cli_signals_t sig; /* SIGINT, SIGTERM: stop */
    uv_timer_t timer;
    int exit_code;
    int closing;
    int verbose;
    /* ping */
    const char *dial;
    long count; /* 0 = until interrupted */
    long replies;
    uint64_t interval_ms;
    cp2p_peer_id_t remote;
    char remote_str[CP2P_PEER_ID_STRMAX];
    cp2p_ping_t *ping;
    cp2p_dcutr_t *dcutr;
    int ping_out, repath; /* a ping is outstanding; it was cancelled to move paths */
    cp2p_relay_client_t *relay;
    /* echo client */
    long echo_streams;
    long echo_done;
    uint64_t echo_size;
    /* rendezvous: register under ns at the point, discover, ping who is found */
    const char *rdv_addr, *rdv_ns;
    uint64_t rdv_ttl;
    int rdv_register;
    int rdv_format;
    cp2p_rendezvous_t *rz;
    cp2p_peer_id_t point;
    uv_timer_t rdv_timer;
    uint8_t cookie[512];
    size_t cookie_len;
    int found;
} app_t;

typedef struct echo_client {
    app_t *app;
    cp2p_stream_t *s;
    long index;
    uint64_t sent, received;
    uint8_t chunk[ECHO_CHUNK];
} echo_client_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cp2p ping [--listen MULTIADDR]... [--dial MULTIADDR | MULTIADDR] [options]\n"
            "  --listen MA       listen on MA (/ip4/0.0.0.0/tcp/4242, .../tcp/4243/ws,\n"
            "                    /unix/run/p.sock); repeatable\n"
            "  --dial MA         ping the peer at MA (/ip4/../tcp/..[/p2p/ID], /dns4/..,\n"
            "                    .../p2p/RELAY/p2p-circuit/p2p/ID through a relay); also as the last argument\n"
            "  --relay MA        reserve on the circuit relay at MA (/ip4/../tcp/../p2p/RELAY) and\n"
            "                    listen through it; repeatable\n"
            "  --auto-relay MA   AutoRelay: keep reservations on up to 2 of these relays, moving to the\n"
            "                    next when one goes (as a private host does); repeatable\n"
            "  --count N         exit after N replies (default: until interrupted)\n"
            "  --interval S      seconds between pings (default 1)\n"
            "  --timeout S       dial timeout in seconds (default 10)\n"
            "  --muxer NAME      yamux or mplex (default: both, yamux preferred)\n"
            "  --security NAME   noise or tls (default: noise)\n"
            "  --key FILE        identity key (default: a fresh Ed25519 key)\n"
            "  --rendezvous MA   meet peers at the rendezvous point MA (with --namespace): register\n"
            "                    there (with --listen or --relay), discover, ping the first peer found;\n"
            "                    prints\n"
            "                    'registered <ns> ttl=<s>' and 'discovered <peer id> <multiaddr>'\n"
            "  --namespace NS    the rendezvous namespace (1 to 255 bytes)\n"
            "  --rendezvous-ttl S  registration TTL in seconds (default: the point's, 2 h);\n"
            "                    registered again when three quarters of it have passed\n"
            "  --rendezvous-record auto|standard|legacy  our record's envelope: the spec's, or\n"
            "                    rust-libp2p's legacy one (auto: the spec's, legacy where refused)\n"
            "  --psk FILE        private network key: a swarm.key file (cp2p keygen --psk)\n"
            "  --no-hole-punch   do not upgrade relayed connections to direct ones (DCUtR; on\n"
            "                    with --relay or a /p2p-circuit dial, printing 'direct connection MA')\n"
            "  --punch-private   offer and dial private and loopback addresses when hole\n"
            "                    punching (NATs inside a LAN, tests); default: public only\n"
            "  --wss-cert FILE   certificate (PEM) for /wss listen addresses; --wss-key FILE its key\n"
            "  --verbose         print what identify learns about peers\n"
            "  --nat-port-map    map the listen ports on the gateway (NAT-PMP, UPnP IGD), print\n"
            "                    'port mapping: MA' and advertise MA (not yet confirmed by AutoNAT)\n"
            "  --nat-method M    natpmp or upnp only (default: NAT-PMP, then UPnP)\n"
            "  --nat-lease S     the mapping's lifetime asked for, renewed at half (default 3600)\n"
            "  --help            this text\n");
    cli_autonat_usage(f);
}

static void on_closed_handle(uv_handle_t *hd)
{
}

static void host_closed(void *arg)
{
    app_t *a = arg;
    a->h = NULL;
    cli_signals_close(&a->sig);
    uv_close((uv_handle_t *)&a->timer, on_closed_handle);
    uv_close((uv_handle_t *)&a->rdv_timer, on_closed_handle);
}

static void close_host(app_t *a);

static void rz_closed(void *arg)
{
    close_host(arg);
}

static void close_host(app_t *a);

static void nat_closed(void *arg)
{
    app_t *a = arg;
    a->portmap = NULL;
    close_host(a);
}

static void close_host(app_t *a)
{
    if (a->portmap) { /* first the mappings come off the gateway, then the host goes */
        cp2p_nat_close(a->portmap, nat_closed, a);
        return;
    }
    if (a->rz) { /* unregisters first: the host comes after */
        cp2p_rendezvous_t *rz = a->rz;
        a->rz = NULL;
        cp2p_rendezvous_close(rz, rz_closed, a);
        return;
    }
    cp2p_ping_free(a->ping);
    a->ping = NULL;
    cp2p_dcutr_free(a->dcutr);
    a->dcutr = NULL;
    cli_autonat_stop(&a->nat);
    cp2p_relay_client_close(a->relay, NULL, NULL);
    a->relay = NULL;
    cp2p_identify_free(a->id);
    a->id = NULL;
    cp2p_host_close(a->h, host_closed, a);
}

static void shutdown_app(app_t *a, int code)
{
    if (a->closing)
        return;
    a->closing = 1;
    a->exit_code = code;
    uv_timer_stop(&a->timer);
    uv_timer_stop(&a->rdv_timer);
    close_host(a);
}

static void on_signal(void *arg)
{
    shutdown_app(arg, 0);
}

/* --- echo: server side (the ping responder's echo) --- */

static void echo_handler(cp2p_stream_t *s, void *arg)
{
    cp2p_echo_stream(s);
}

/* --- echo: client side (interop tests) --- */

static uint8_t pattern(long stream, uint64_t off)
{
    return (uint8_t)((off * 7 + (off >> 16) + (uint64_t)stream * 13) & 0xff);
}

static void echo_client_end(echo_client_t *c, int status)
{
    app_t *a = c->app;
    if (c->s) {
        cp2p_stream_read_stop(c->s);
        if (status < 0)
            cp2p_stream_reset(c->s);
        cp2p_stream_unref(c->s);
    }
    free(c);
    if (status < 0) {
        if (!a->closing)
            fprintf(stderr, "cp2p: ping: echo stream failed: %s\n", cp2p_strerror(status));
        shutdown_app(a, 1);
    } else if (++a->echo_done == a->echo_streams) {
        printf("echo ok streams=%ld bytes=%llu\n", a->echo_streams,
               (unsigned long long)a->echo_size);
        fflush(stdout);
        if (!a->count || a->replies >= a->count)
            shutdown_app(a, 0);
    }
}

static void echo_client_write_next(echo_client_t *c);

static void echo_client_written(cp2p_stream_t *s, int status, void *arg)
{
    echo_client_t *c = arg;
    if (status < 0)
        return; /* the reader sees the stream die and ends the client */
    echo_client_write_next(c);
}

static void echo_client_write_next(echo_client_t *c)
{
    if (c->sent == c->app->echo_size) {
        cp2p_stream_close_write(c->s);
        return;
    }
    size_t n = c->app->echo_size - c->sent < ECHO_CHUNK ? (size_t)(c->app->echo_size - c->sent)
                                                        : ECHO_CHUNK;
    for (size_t i = 0; i < n; i++)
        c->chunk[i] = pattern(c->index, c->sent + i);
    c->sent += n;
    if (cp2p_stream_write(c->s, c->chunk, n, echo_client_written, c) < 0)
        cp2p_stream_reset(c->s);
}

static void echo_client_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    echo_client_t *c = arg;
    if (status == CP2P_ECLOSED) {
        echo_client_end(c, c->received == c->app->echo_size ? 0 : CP2P_EPROTO);
        return;
    }
    if (status < 0) {
        echo_client_end(c, status);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (c->received + i >= c->app->echo_size || p[i] != pattern(c->index, c->received + i)) {
            echo_client_end(c, CP2P_EPROTO);
            return;
        }
    c->received += n;
}

static void echo_client_opened(int status, cp2p_stream_t *s, void *arg)
{
    echo_client_t *c = arg;
    if (status < 0) {
        echo_client_end(c, status);
        return;
    }
    c->s = s;
    if (cp2p_stream_read_start(s, echo_client_read, c) < 0) {
        echo_client_end(c, CP2P_ECLOSED);
        return;
    }
    echo_client_write_next(c);
}

static void start_echo_clients(app_t *a)
{
    static const char *const protos[] = {ECHO_PROTOCOL_ID};
    for (long i = 0; i < a->echo_streams; i++) {
        echo_client_t *c = calloc(1, sizeof *c);
        int rc = c ? 0 : CP2P_ENOMEM;
        if (c) {
            c->app = a;
            c->index = i;
            rc = cp2p_host_new_stream(a->h, &a->remote, protos, 1, echo_client_opened, c);
        }
        if (rc < 0) {
            free(c);
            fprintf(stderr, "cp2p: ping: cannot open echo stream: %s\n", cp2p_strerror(rc));
            shutdown_app(a, 1);
            return;
        }
    }
}

/* --- ping --- */

static void send_ping(app_t *a);

static void on_timer(uv_timer_t *t)
{
    send_ping(t->data);
}

static void on_pong(int status, uint64_t rtt_us, void *arg)
{
    app_t *a = arg;
    a->ping_out = 0;
    if (a->closing)
        return;
    if (status == CP2P_ECANCELED && a->repath) { /* moved to the direct connection */
        a->repath = 0;
        send_ping(a);
        return;
    }
    if (status < 0) {
        fprintf(stderr, "cp2p: ping: ping %s failed: %s\n", a->remote_str, cp2p_strerror(status));
        shutdown_app(a, 1);
        return;
    }
    a->replies++;
    printf("ping %s rtt=%.2f ms\n", a->remote_str, (double)rtt_us / 1000.0);
    fflush(stdout);
    if (a->count && a->replies >= a->count) {
        if (a->echo_done == a->echo_streams)
            shutdown_app(a, 0);
        return;
    }
    uv_timer_start(&a->timer, on_timer, a->interval_ms, 0);
}

static void send_ping(app_t *a)
{
    int rc = a->ping ? 0 : cp2p_ping_new(a->h, &a->remote, &a->ping);
    if (!rc)
        rc = cp2p_ping_send(a->ping, on_pong, a);
    a->ping_out = rc == 0;
    if (rc < 0) {
        fprintf(stderr, "cp2p: ping: cannot ping %s: %s\n", a->remote_str, cp2p_strerror(rc));
        shutdown_app(a, 1);
    }
}

static void on_connected(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    if (a->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "cp2p: ping: cannot reach %s: %s\n", a->dial ? a->dial : a->remote_str,
                cp2p_strerror(status));
        shutdown_app(a, 1);
        return;
    }
    a->remote = *peer;
    cp2p_peer_id_to_string(peer, a->remote_str, sizeof a->remote_str);
    cp2p_conn_t *c = cp2p_host_conn_to(h, peer);
    if (c && cp2p_conn_is_relayed(c)) {
        cp2p_buf_t s = {0};
        cp2p_multiaddr_to_string(cp2p_conn_remote_addr(c), &s);
        printf("relayed connection %s\n", s.data ? (char *)s.data : "");
        fflush(stdout);
        cp2p_buf_free(&s);
    }
    if (a->echo_streams)
        start_echo_clients(a);
    if (!a->echo_streams || a->count)
        send_ping(a);
}

/* --- hole punching --- */

static void on_dcutr(const cp2p_dcutr_result_t *r, void *arg)
{
    app_t *a = arg;
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(r->peer, id, sizeof id);
    if (r->status) {
        /* CP2P_ENOTFOUND: one side had no address the other could punch to. */
        printf("hole punch with %s failed after %d attempt%s, staying relayed: %s\n", id, r->attempts,
               r->attempts == 1 ? "" : "s",
               r->status == CP2P_ENOTFOUND ? "no address to punch to (both sides need --listen)"
                                           : cp2p_strerror(r->status));
        fflush(stdout);
        return;
    }
    cp2p_buf_t s = {0};
    cp2p_multiaddr_to_string(cp2p_conn_remote_addr(r->conn), &s);
    printf("direct connection %s/p2p/%s\n", s.data ? (char *)s.data : "", id);
    fflush(stdout);
    cp2p_buf_free(&s);
    /* The ping stream runs on the relayed connection: a new one goes to the
     * direct connection. */
    if (a->ping && a->dial && cp2p_peer_id_equal(r->peer, &a->remote)) {
        a->repath = a->ping_out;
        cp2p_ping_free(a->ping);
        a->ping = NULL;
    }
}

/* --- rendezvous --- */

static void discover(app_t *a);

static void on_rdv_timer(uv_timer_t *t)
{
    discover(t->data);
}

static void on_discovered(int status, int code, const cp2p_rendezvous_peer_t *peers, size_t n,
                          const uint8_t *cookie, size_t cookie_len, void *arg)
{
    app_t *a = arg;
    if (a->closing)
        return;
    if (status == CP2P_EREFUSED && code == 103) { /* E_INVALID_COOKIE: from the start */
        a->cookie_len = 0;
    } else if (status < 0) {
        fprintf(stderr, "cp2p: ping: rendezvous discover failed: %s\n", cp2p_strerror(status));
        shutdown_app(a, 1);
        return;
    }
    if (cookie && cookie_len <= sizeof a->cookie) {
        memcpy(a->cookie, cookie, cookie_len);
        a->cookie_len = cookie_len;
    }
    const cp2p_peer_id_t *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cp2p_peer_id_equal(&peers[i].peer, cp2p_host_peer_id(a->h)))
            continue;
        char id[CP2P_PEER_ID_STRMAX];
        cp2p_peer_id_to_string(&peers[i].peer, id, sizeof id);
        for (size_t j = 0; j < peers[i].n_addrs; j++) {
            cp2p_buf_t str = {0};
            if (cp2p_multiaddr_to_string(&peers[i].addrs[j], &str) == 0)
                printf("discovered %s %s\n", id, (char *)str.data);
            cp2p_buf_free(&str);
        }
        if (!pick && peers[i].n_addrs)
            pick = &peers[i].peer;
    }
    fflush(stdout);
    if (!pick || a->found) {
        uv_timer_start(&a->rdv_timer, on_rdv_timer, 1000, 0);
        return;
    }
    a->found = 1;
    a->remote = *pick;
    cp2p_peer_id_to_string(pick, a->remote_str, sizeof a->remote_str);
    int rc = cp2p_host_connect_peer(a->h, pick, on_connected, a);
    if (rc < 0) {
        fprintf(stderr, "cp2p: ping: cannot dial %s: %s\n", a->remote_str, cp2p_strerror(rc));
        shutdown_app(a, 1);
    }
}

static void discover(app_t *a)
{
    int rc = cp2p_rendezvous_discover(a->rz, &a->point, a->rdv_ns, 0,
                                      a->cookie_len ? a->cookie : NULL, a->cookie_len,
                                      on_discovered, a);
    if (rc < 0) {
        fprintf(stderr, "cp2p: ping: rendezvous discover failed: %s\n", cp2p_strerror(rc));
        shutdown_app(a, 1);
    }
}

static const char *rdv_status(int code)
{
    switch (code) {
    case 100: return " E_INVALID_NAMESPACE";
    case 101: return " E_INVALID_SIGNED_PEER_RECORD";
    case 102: return " E_INVALID_TTL";
    case 200: return " E_NOT_AUTHORIZED";
    case 300: return " E_INTERNAL_ERROR";
    case 400: return " E_UNAVAILABLE";
    default: return "";
    }
}

static void on_registered(int status, int code, uint64_t ttl_s, void *arg)
{
    app_t *a = arg;
    if (a->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "cp2p: ping: rendezvous register failed: %s%s\n", cp2p_strerror(status),
                rdv_status(code));
        shutdown_app(a, 1);
        return;
    }
    printf("registered %s ttl=%llu\n", a->rdv_ns, (unsigned long long)ttl_s);
    fflush(stdout);
}

static void on_point(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    app_t *a = arg;
    if (a->closing)
        return;
    if (status < 0) {
        fprintf(stderr, "cp2p: ping: cannot reach the rendezvous point %s: %s\n", a->rdv_addr,
                cp2p_strerror(status));
        shutdown_app(a, 1);
        return;
    }
    a->point = *peer;
    int rc = cp2p_rendezvous_new(a->h, &a->rz);
    if (!rc)
        rc = cp2p_rendezvous_set_record_format(a->rz, a->rdv_format);
    if (!rc && a->rdv_register)
        rc = cp2p_rendezvous_register(a->rz, &a->point, a->rdv_ns, a->rdv_ttl, on_registered, a);
    if (rc < 0) {
        fprintf(stderr, "cp2p: ping: cannot register at the rendezvous point: %s\n",
                cp2p_strerror(rc));
        shutdown_app(a, 1);
        return;
    }
    discover(a);
}

/* --- identify output --- */

static void print_identified(app_t *a, const cp2p_peer_id_t *peer)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(a->h);
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(peer, id, sizeof id);
    const char *agent = cp2p_peerstore_agent_version(ps, peer);
    const char *protos[CP2P_PEERSTORE_MAX_PROTOCOLS];
    size_t np = cp2p_peerstore_protocols(ps, peer, protos, CP2P_PEERSTORE_MAX_PROTOCOLS);
    cp2p_multiaddr_t addrs[CP2P_PEERSTORE_MAX_ADDRS];
    size_t na = cp2p_peerstore_addrs(ps, peer, uv_now(&a->loop), addrs, CP2P_PEERSTORE_MAX_ADDRS);
    printf("identified %s agent=%s protocols=", id, agent ? agent : "");
    for (size_t i = 0; i < np && i < CP2P_PEERSTORE_MAX_PROTOCOLS; i++)
        printf("%s%s", i ? "," : "", protos[i]);
    printf(" addrs=");
    for (size_t i = 0; i < na && i < CP2P_PEERSTORE_MAX_ADDRS; i++) {
        cp2p_buf_t s = {0};
        if (cp2p_multiaddr_to_string(&addrs[i], &s) == 0)
            printf("%s%s", i ? "," : "", (char *)s.data);
        cp2p_buf_free(&s);
    }
    size_t record_len;
    uint64_t seq;
    if (cp2p_peerstore_record(ps, peer, &record_len, &seq))
        printf(" record=%llu\n", (unsigned long long)seq);
    else
        printf(" record=none\n");
    fflush(stdout);
}

static void on_relay_event(const cp2p_relay_event_t *ev, void *arg)
{
    app_t *a = arg;
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_host_peer_id(a->h), id, sizeof id);
    cp2p_buf_t s = {0};
    cp2p_multiaddr_to_string(ev->addr, &s);
    if (ev->type == CP2P_RELAY_RESERVED) {
        printf("Listening on %s/p2p/%s\n", (char *)s.data, id);
        if (a->verbose)
            printf("reserved %s voucher=%s\n", (char *)s.data,
                   ev->voucher > 0 ? "valid" : ev->voucher < 0 ? "invalid" : "none");
    }
    else
        fprintf(stderr, "cp2p: ping: relay %s: %s\n", (char *)s.data,
                ev->type == CP2P_RELAY_RESERVATION_LOST ? "reservation lost" : "cannot reserve");
    fflush(stdout);
    cp2p_buf_free(&s);
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    app_t *a = arg;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED && a->verbose)
        print_identified(a, ev->peer);
}

/* --- port mapping --- */

static void on_nat(const cp2p_nat_event_t *ev, void *arg)
{
    cp2p_buf_t s = {0};
    if (!ev->external || cp2p_multiaddr_to_string(ev->external, &s))
        return;
    if (ev->type == CP2P_NAT_MAPPED)
        printf("port mapping: %s\n", (char *)s.data);
    else if (ev->type == CP2P_NAT_LOST)
        printf("port mapping lost: %s\n", (char *)s.data);
    fflush(stdout);
    cp2p_buf_free(&s);
}

/* --- setup --- */

int cmd_ping(int argc, char **argv)
{
    app_t a = {.interval_ms = 1000, .echo_size = 1024 * 1024, .nat = CLI_AUTONAT_INIT(a.nat)};
    const char *listen_v[MAX_LISTEN], *pos_v[1], *relay_v[MAX_LISTEN], *auto_v[MAX_LISTEN];
    cli_list_t autos = {auto_v, 0, MAX_LISTEN};
    cli_list_t listen = {listen_v, 0, MAX_LISTEN}, pos = {pos_v, 0, 1},
               relays = {relay_v, 0, MAX_LISTEN};
    const char *muxer = NULL, *security = NULL, *key_file = NULL, *dial = NULL, *psk_file = NULL;
    const char *wss_cert = NULL, *wss_key = NULL, *nat_method = NULL;
    uint8_t psk[32];
    double timeout_s = 10, count = 0, interval = 1, echo_streams = 0, echo_size = 1024 * 1024;
    double nat_lease = 0;
    int echo = 0, verbose = 0, no_punch = 0, punch_private = 0, nat_port_map = 0;
    const char *rdv = NULL, *ns = NULL, *rdv_record = NULL;
    double rdv_ttl = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--listen", CLI_LIST, &listen),
        CLI_OPTION("--dial", CLI_STR, &dial),
        CLI_OPTION("--relay", CLI_LIST, &relays),
        CLI_OPTION("--auto-relay", CLI_LIST, &autos),
        CLI_OPTION("--muxer", CLI_STR, &muxer),
        CLI_OPTION("--security", CLI_STR, &security),
        CLI_OPTION("--key", CLI_STR, &key_file),
        CLI_OPTION("--psk", CLI_STR, &psk_file),
        CLI_OPTION("--wss-cert", CLI_STR, &wss_cert),
        CLI_OPTION("--wss-key", CLI_STR, &wss_key),
        CLI_OPTION("--verbose|-v", CLI_FLAG, &verbose),
        CLI_OPTION("--no-hole-punch", CLI_FLAG, &no_punch),
        CLI_OPTION("--punch-private", CLI_FLAG, &punch_private),
        CLI_OPTION("--echo", CLI_FLAG, &echo),
        CLI_OPTION("--nat-port-map", CLI_FLAG, &nat_port_map),
        CLI_OPTION("--nat-method", CLI_STR, &nat_method),
        CLI_NUMBER("--nat-lease", &nat_lease, 4, 86400 * 7),
        CLI_OPTION("--rendezvous", CLI_STR, &rdv),
        CLI_OPTION("--namespace", CLI_STR, &ns),
        CLI_OPTION("--rendezvous-record", CLI_STR, &rdv_record),
        CLI_NUMBER("--rendezvous-ttl", &rdv_ttl, 1, CP2P_RENDEZVOUS_MAX_TTL_S),
        CLI_NUMBER("--count", &count, 1, 1e15),
        CLI_NUMBER("--interval", &interval, 0, 86400),
        CLI_NUMBER("--timeout", &timeout_s, 0.001, 86400),
        CLI_NUMBER("--echo-streams", &echo_streams, 1, 1e6),
        CLI_NUMBER("--echo-size", &echo_size, 0, 1e15),
        CLI_AUTONAT_OPTIONS(&a.nat),
        CLI_END,
    };
    int prc = cli_parse("ping", argc, argv, opts, usage, &pos);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (muxer && strcmp(muxer, "yamux") && strcmp(muxer, "mplex"))
        return cli_usage("ping", "bad option --muxer %s", muxer);
    if (security && strcmp(security, "noise") && strcmp(security, "tls"))
        return cli_usage("ping", "bad option --security %s", security);
    if (nat_method && strcmp(nat_method, "natpmp") && strcmp(nat_method, "upnp"))
        return cli_usage("ping", "bad option --nat-method %s", nat_method);
    if ((nat_method || nat_lease) && !nat_port_map)
        return cli_usage("ping", "%s needs --nat-port-map", nat_method ? "--nat-method" : "--nat-lease");
    /* the address alone, as rust-libp2p's ping example takes it */
    if (pos.n && (dial || pos.v[0][0] != '/'))
        return cli_usage("ping", "unexpected argument %s", pos.v[0]);
    a.dial = dial ? dial : pos.n ? pos.v[0] : NULL;
    a.verbose = verbose;
    a.count = (long)count;
    a.interval_ms = (uint64_t)(interval * 1000);
    a.echo_streams = (long)echo_streams;
    a.echo_size = (uint64_t)echo_size;
    if (!listen.n && !a.dial && !relays.n && !autos.n && !rdv) {
        return cli_usage("ping", "give --listen, --relay, --dial, --rendezvous or more");
    }
    if (!rdv != !ns)
        return cli_usage("ping", "--rendezvous and --namespace go together");
    if (rdv && a.dial)
        return cli_usage("ping", "--rendezvous finds whom to ping: no --dial with it");
    if (ns && (!ns[0] || strlen(ns) > CP2P_RENDEZVOUS_MAX_NAMESPACE))
        return cli_usage("ping", "--namespace must be 1 to 255 bytes");
    if (rdv_record) {
        if (!strcmp(rdv_record, "auto"))
            a.rdv_format = CP2P_RENDEZVOUS_RECORD_AUTO;
        else if (!strcmp(rdv_record, "standard"))
            a.rdv_format = CP2P_RENDEZVOUS_RECORD_STANDARD;
        else if (!strcmp(rdv_record, "legacy"))
            a.rdv_format = CP2P_RENDEZVOUS_RECORD_LEGACY;
        else
            return cli_usage("ping", "bad option --rendezvous-record %s", rdv_record);
    }
    a.rdv_addr = rdv;
    a.rdv_ns = ns;
    a.rdv_ttl = (uint64_t)rdv_ttl;
    a.rdv_register = listen.n > 0 || relays.n > 0 || autos.n > 0;
    if (a.echo_streams && !a.dial) {
        return cli_usage("ping", "--echo-streams needs --dial");
    }

    cp2p_host_config_t cfg = {.dial_timeout_ms = (uint32_t)(timeout_s * 1000)};
    const char *mux_id[1];
    if (muxer) {
        mux_id[0] = !strcmp(muxer, "yamux") ? "/yamux/1.0.0" : "/mplex/6.7.0";
        cfg.muxers = mux_id;
        cfg.n_muxers = 1;
    }
    const char *sec_id[1];
    if (security) {
        sec_id[0] = !strcmp(security, "noise") ? "/noise" : "/tls/1.0.0";
        cfg.security = sec_id;
        cfg.n_security = 1;
    }
    int rc = cli_autonat_config(&a.nat, "ping", &cfg);
    if (rc)
        return rc;
    if (psk_file && cli_load_psk("ping", psk_file, psk))
        return CLI_FAIL;
    cfg.psk = psk_file ? psk : NULL;
    if (!wss_cert != !wss_key)
        return cli_usage("ping", "--wss-cert and --wss-key go together");
    cfg.wss_cert_file = wss_cert;
    cfg.wss_key_file = wss_key;
    if (key_file && (rc = cp2p_privkey_load_file(key_file, &cfg.identity)) < 0) {
        return cli_fail("ping", "cannot read key %s: %s", key_file, cli_key_error(rc));
    }
    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.timer);
    a.timer.data = &a;
    uv_timer_init(&a.loop, &a.rdv_timer);
    a.rdv_timer.data = &a;
    cli_signals_start(&a.sig, &a.loop, on_signal, &a);

    char what[CP2P_MULTIADDR_STRMAX + 32] = "cannot create the host";
    rc = cp2p_host_new(&a.loop, &cfg, &a.h);
    if (!rc)
        rc = cp2p_ping_enable(a.h);
    if (!rc && echo)
        rc = cp2p_host_set_handler(a.h, ECHO_PROTOCOL_ID, echo_handler, NULL);
    if (!rc)
        rc = cp2p_identify_enable(a.h, NULL, &a.id);
    if (!rc)
        rc = cp2p_host_subscribe(a.h, on_event, &a);
    /* Hole punching (and the port reuse it turns on for every dial) only
     * where a relay is in play: listening through one, or dialling through one. */
    if (!rc && !no_punch && (relays.n || (a.dial && strstr(a.dial, "/p2p-circuit")))) {
        cp2p_dcutr_config_t dcfg = {.allow_private = punch_private, .on_result = on_dcutr, .arg = &a};
        rc = cp2p_dcutr_enable(a.h, &dcfg, &a.dcutr);
    }
    if (!rc) {
        cp2p_relay_client_config_t rcfg = {.on_event = on_relay_event, .event_arg = &a,
                                           .static_relays = autos.v, .n_static_relays = autos.n};
        snprintf(what, sizeof what, "bad --auto-relay (a /p2p/<relay> address is needed)");
        rc = cp2p_relay_client_enable(a.h, &rcfg, &a.relay);
        if (!rc && autos.n)
            rc = cp2p_relay_autorelay_start(a.relay);
    }
    for (size_t i = 0; !rc && i < listen.n; i++) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot listen on %s", listen.v[i]);
        rc = cp2p_multiaddr_parse(listen.v[i], &ma);
        if (!rc) {
            rc = cp2p_host_listen(a.h, &ma);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (!rc) {
        cli_print_peer_id(a.h);
        rc = cli_print_listen_addrs(a.h, "Listening on ");
    }
    if (!rc) {
        snprintf(what, sizeof what, "cannot start AutoNAT");
        rc = cli_autonat_start(&a.nat, a.h);
    }
    for (size_t i = 0; !rc && i < relays.n; i++) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot use relay %s (an address ending in /p2p/<relay id> is needed)",
                 relays.v[i]);
        rc = cp2p_multiaddr_parse(relays.v[i], &ma);
        if (!rc) {
            rc = cp2p_relay_client_listen(a.relay, &ma);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (!rc && nat_port_map) {
        cp2p_nat_config_t nc = {.advertise = 1, .lease_s = (uint32_t)nat_lease};
        if (nat_method)
            nc.methods = !strcmp(nat_method, "upnp") ? CP2P_NAT_UPNP : CP2P_NAT_NATPMP;
        snprintf(what, sizeof what, "cannot start port mapping");
        rc = cp2p_nat_start(a.h, &nc, on_nat, &a, &a.portmap);
    }
    if (!rc && a.dial) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot dial %s", a.dial);
        rc = cp2p_multiaddr_parse(a.dial, &ma);
        if (!rc) {
            rc = cp2p_host_connect(a.h, &ma, on_connected, &a);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (!rc && a.rdv_addr) {
        cp2p_multiaddr_t ma;
        snprintf(what, sizeof what, "cannot dial the rendezvous point %s", a.rdv_addr);
        rc = cp2p_multiaddr_parse(a.rdv_addr, &ma);
        if (!rc) {
            rc = cp2p_host_connect(a.h, &ma, on_point, &a);
            cp2p_multiaddr_free(&ma);
        }
    }
    if (rc) {
        fprintf(stderr, "cp2p: ping: %s: %s\n", what, cp2p_strerror(rc));
        if (a.h)
            shutdown_app(&a, 1);
        else
            host_closed(&a);
        a.exit_code = 1;
    }
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    return a.exit_code;
}
