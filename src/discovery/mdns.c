/* mDNS peer discovery (libp2p discovery/mdns spec): the libuv glue, one
 * UDP socket per interface and family, that feeds the sans-I/O engine of
 * src/discovery/mdns_engine.c and turns its events into the host's. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/mdns.h"
#include "discovery/mdns_engine.h"
#include "host/host_priv.h"

#define LOG "mdns"
#define MDNS_PORT 5353

/* ==== libuv glue: one socket per interface and family ==== */

#define MAX_DIAL_QUEUE 16
/* RFC 6762 5.2: a starting host's first query waits 20-120 ms, the next
 * follows a second later and each interval at least doubles, up to the
 * configured one (rust-libp2p probes the same way). So hosts that start
 * together, and miss each other's first packets, meet within about a second. */
#define FIRST_QUERY_MIN_MS 20
#define FIRST_QUERY_SPREAD_MS 100
#define FIRST_PROBE_GAP_MS 1000
#define ANNOUNCE_GAP_MS 1000 /* RFC 6762 8.3: a second announcement a second later */
#define MIN_QUERY_GAP_MS 1000 /* RFC 6762 5.2: never the same query twice a second */

typedef struct mdns_link {
    cp2p_mdns_t *m;
    uv_udp_t udp;
    unsigned index; /* the engine's link number */
    unsigned ifindex;
    int family;
    struct sockaddr_storage group;
} mdns_link_t;

struct cp2p_mdns {
    cp2p_host_t *h;
    uv_loop_t *loop;
    cp2p_mdns_engine_t *e;
    cp2p_mdns_event_fn fn;
    void *arg;
    uint32_t interval_ms;
    int dial, loopback, no_ipv4, no_ipv6;
    uv_timer_t timer;
    mdns_link_t *links[CP2P_MDNS_MAX_LINKS];
    size_t nlinks;
    unsigned handles; /* open libuv handles */
    int warned_no_link;
    uint64_t next_query, last_query, next_announce; /* next_announce 0: none */
    uint32_t probe_gap_ms; /* the gap after the next query while probing; 0 after */
    cp2p_peer_id_t to_dial[MAX_DIAL_QUEUE];
    size_t nto_dial;
    int stopping;
    void (*done)(void *arg);
    void *done_arg;
    uint8_t rx[CP2P_MDNS_MAX_PACKET];
};

static void finish(cp2p_mdns_t *m)
{
    cp2p_mdns_engine_free(m->e);
    void (*done)(void *) = m->done;
    void *arg = m->done_arg;
    free(m);
    if (done)
        done(arg);
}

static void handle_closed(cp2p_mdns_t *m)
{
    if (--m->handles == 0 && m->stopping)
        finish(m);
}

static void on_link_closed(uv_handle_t *hd)
{
    mdns_link_t *l = hd->data;
    cp2p_mdns_t *m = l->m;
    free(l);
    handle_closed(m);
}

static void on_timer_closed(uv_handle_t *hd)
{
    handle_closed(hd->data);
}

static void send_on(mdns_link_t *l, const uint8_t *p, size_t n)
{
    cp2p_mdns_stats_t *st = cp2p_mdns_engine_stats(l->m->e);
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    /* Synchronous, so a datagram never waits in a queue while the socket
     * closes; an mDNS packet that finds the socket full is simply lost. */
    int rc = uv_udp_try_send(&l->udp, &b, 1, (const struct sockaddr *)&l->group);
    if (rc < 0) {
        st->tx_errors++;
        cp2p_log_debug(LOG, "send on interface %u: %s", l->ifindex, uv_strerror(rc));
    } else {
        st->tx_packets++;
    }
}

static void send_all(cp2p_mdns_t *m, const cp2p_buf_t *b)
{
    for (size_t i = 0; i < m->nlinks; i++)
        send_on(m->links[i], b->data, b->len);
}

static void queue_dial(cp2p_mdns_t *m, const cp2p_peer_id_t *peer)
{
    for (size_t i = 0; i < m->nto_dial; i++)
        if (cp2p_peer_id_equal(&m->to_dial[i], peer))
            return;
    if (m->nto_dial < MAX_DIAL_QUEUE)
        m->to_dial[m->nto_dial++] = *peer;
}

static void on_dialed(cp2p_host_t *h, int status, const cp2p_peer_id_t *peer, void *arg)
{
    if (status)
        cp2p_log_debug(LOG, "dialling a discovered peer failed: %s", cp2p_strerror(status));
}

/* After the whole packet, so that every address it gave is in the peerstore. */
static void dial_queued(cp2p_mdns_t *m)
{
    size_t n = m->nto_dial;
    m->nto_dial = 0;
    for (size_t i = 0; i < n && !m->stopping; i++)
        if (!cp2p_host_conn_to(m->h, &m->to_dial[i]))
            cp2p_host_connect_peer(m->h, &m->to_dial[i], on_dialed, NULL);
}

static void on_engine_event(cp2p_mdns_engine_event_t type, const cp2p_peer_id_t *peer,
                            const cp2p_multiaddr_t *addr, uint32_t ttl_s, void *arg)
{
    cp2p_mdns_t *m = arg;
    if (m->stopping)
        return;
    if (type != CP2P_MDNS_ENGINE_EXPIRED)
        cp2p_peerstore_add_addrs(cp2p_host_peerstore(m->h), peer, addr, 1, (uint64_t)ttl_s * 1000,
                                 uv_now(m->loop));
    if (type == CP2P_MDNS_ENGINE_REFRESHED)
        return;
    if (type == CP2P_MDNS_ENGINE_DISCOVERED) {
        cp2p_event_t ev = {.type = CP2P_EVENT_PEER_DISCOVERED, .peer = peer, .addr = addr};
        cp2p_host_emit(m->h, &ev);
        if (m->dial)
            queue_dial(m, peer);
    }
    if (m->fn)
        m->fn(type == CP2P_MDNS_ENGINE_DISCOVERED ? CP2P_MDNS_DISCOVERED : CP2P_MDNS_EXPIRED, peer,
              addr, m->arg);
}

static void on_timer(uv_timer_t *t);

static void schedule(cp2p_mdns_t *m)
{
    uint64_t now = uv_now(m->loop);
    uint64_t next = cp2p_mdns_engine_expire(m->e, now);
    if (m->stopping)
        return;
    if (m->next_query < next)
        next = m->next_query;
    if (m->next_announce && m->next_announce < next)
        next = m->next_announce;
    uint64_t deferred = cp2p_mdns_engine_deferred_due(m->e);
    if (deferred < next)
        next = deferred;
    uv_timer_start(&m->timer, on_timer, next > now ? next - now : 0, 0);
}

static uint32_t random_below(uint32_t n)
{
    uint32_t r = 0;
    RAND_bytes((unsigned char *)&r, sizeof r);
    return r % n;
}

/* The bytes of a datagram's source for the engine's querier table. */
static size_t source_bytes(const struct sockaddr *from, uint8_t out[CP2P_MDNS_MAX_SOURCE])
{
    if (from && from->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)from;
        memcpy(out, &a->sin_addr, 4);
        memcpy(out + 4, &a->sin_port, 2);
        return 6;
    }
    if (from && from->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
        memcpy(out, &a->sin6_addr, 16);
        memcpy(out + 16, &a->sin6_port, 2);
        return 18;
    }
    return 0;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    mdns_link_t *l = hd->data;
    *buf = uv_buf_init((char *)l->m->rx, sizeof l->m->rx);
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    mdns_link_t *l = u->data;
    cp2p_mdns_t *m = l->m;
    if (m->stopping || (nread == 0 && !from))
        return;
    if (nread < 0) {
        cp2p_log_debug(LOG, "receive on interface %u: %s", l->ifindex, uv_strerror((int)nread));
        return;
    }
    if (flags & UV_UDP_PARTIAL) { /* larger than any mDNS packet may be */
        cp2p_mdns_stats_t *st = cp2p_mdns_engine_stats(m->e);
        st->rx_packets++;
        st->rx_malformed++;
        return;
    }
    cp2p_buf_t reply = {0};
    uint8_t src[CP2P_MDNS_MAX_SOURCE];
    size_t src_len = source_bytes(from, src);
    uint64_t now = uv_now(m->loop);
    cp2p_mdns_engine_input(m->e, l->index, src, src_len, (const uint8_t *)buf->base,
                           (size_t)nread, now, &reply);
    if (reply.len && !m->stopping)
        send_on(l, reply.data, reply.len);
    cp2p_buf_free(&reply);
    /* Someone new asked: our answer taught it about us, our query (soon,
     * at most once a second) teaches us about it. */
    if (cp2p_mdns_engine_take_new_querier(m->e) && now >= m->last_query + MIN_QUERY_GAP_MS) {
        uint64_t soon = now + FIRST_QUERY_MIN_MS + random_below(FIRST_QUERY_SPREAD_MS);
        if (m->next_query > soon)
            m->next_query = soon;
    }
    if (!m->stopping)
        dial_queued(m);
    if (!m->stopping)
        schedule(m);
}

static int set_opt(uv_udp_t *u, int level, int name, const void *v, socklen_t len)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)u, &fd) || setsockopt(fd, level, name, v, len))
        return CP2P_EIO;
    return 0;
}

/* Bound to the wildcard address with SO_REUSEADDR like every other mDNS
 * stack on the machine; MULTICAST_ALL off so that this socket only hears the
 * group it joined on its own interface. */
static int setup_link(mdns_link_t *l)
{
    int on = 1, off = 0, hops = 255, rc;
    if (l->family == AF_INET) {
        struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons(MDNS_PORT)};
        struct sockaddr_in *g = (struct sockaddr_in *)&l->group;
        struct ip_mreqn mr = {.imr_ifindex = (int)l->ifindex};
        g->sin_family = AF_INET;
        g->sin_port = htons(MDNS_PORT);
        inet_pton(AF_INET, "224.0.0.251", &g->sin_addr);
        mr.imr_multiaddr = g->sin_addr;
        set_opt(&l->udp, IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off);
        if ((rc = uv_udp_bind(&l->udp, (struct sockaddr *)&any, UV_UDP_REUSEADDR)))
            return CP2P_EIO;
        if (set_opt(&l->udp, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) ||
            set_opt(&l->udp, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) ||
            set_opt(&l->udp, IPPROTO_IP, IP_MULTICAST_TTL, &hops, sizeof hops) ||
            set_opt(&l->udp, IPPROTO_IP, IP_MULTICAST_LOOP, &on, sizeof on))
            return CP2P_EIO;
    } else {
        struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons(MDNS_PORT)};
        struct sockaddr_in6 *g = (struct sockaddr_in6 *)&l->group;
        struct ipv6_mreq mr = {.ipv6mr_interface = l->ifindex};
        g->sin6_family = AF_INET6;
        g->sin6_port = htons(MDNS_PORT);
        g->sin6_scope_id = l->ifindex;
        inet_pton(AF_INET6, "ff02::fb", &g->sin6_addr);
        mr.ipv6mr_multiaddr = g->sin6_addr;
        set_opt(&l->udp, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &off, sizeof off);
        if ((rc = uv_udp_bind(&l->udp, (struct sockaddr *)&any, UV_UDP_REUSEADDR | UV_UDP_IPV6ONLY)))
            return CP2P_EIO;
        if (set_opt(&l->udp, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) ||
            set_opt(&l->udp, IPPROTO_IPV6, IPV6_MULTICAST_IF, &l->ifindex, sizeof l->ifindex) ||
            set_opt(&l->udp, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) ||
            set_opt(&l->udp, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &on, sizeof on))
            return CP2P_EIO;
    }
    return uv_udp_recv_start(&l->udp, on_alloc, on_recv) ? CP2P_EIO : 0;
}

static void open_link(cp2p_mdns_t *m, unsigned ifindex, int family, const char *ifname)
{
    for (size_t i = 0; i < m->nlinks; i++)
        if (m->links[i]->ifindex == ifindex && m->links[i]->family == family)
            return;
    if (m->nlinks >= CP2P_MDNS_MAX_LINKS)
        return;
    mdns_link_t *l = calloc(1, sizeof *l);
    if (!l)
        return;
    l->m = m;
    l->ifindex = ifindex;
    l->family = family;
    if (uv_udp_init_ex(m->loop, &l->udp, (unsigned)family)) {
        free(l);
        return;
    }
    l->udp.data = l;
    m->handles++;
    if (setup_link(l)) {
        cp2p_log_debug(LOG, "cannot use %s (%s) for mDNS", ifname,
                       family == AF_INET ? "IPv4" : "IPv6");
        uv_close((uv_handle_t *)&l->udp, on_link_closed);
        return;
    }
    cp2p_log_info(LOG, "listening on %s (%s)", ifname, family == AF_INET ? "IPv4" : "IPv6");
    l->index = (unsigned)m->nlinks;
    m->links[m->nlinks++] = l;
}

/* Interfaces come and go: this runs at start and before every query. */
static void scan_interfaces(cp2p_mdns_t *m)
{
    struct ifaddrs *ifs, *a;
    if (getifaddrs(&ifs))
        return;
    for (a = ifs; a; a = a->ifa_next) {
        if (!a->ifa_addr)
            continue;
        int fam = a->ifa_addr->sa_family;
        if ((fam != AF_INET || m->no_ipv4) && (fam != AF_INET6 || m->no_ipv6))
            continue;
        unsigned fl = a->ifa_flags;
        if (!(fl & IFF_UP) || ((fl & IFF_LOOPBACK) ? !m->loopback : !(fl & IFF_MULTICAST)))
            continue;
        unsigned idx = if_nametoindex(a->ifa_name);
        if (idx)
            open_link(m, idx, fam, a->ifa_name);
    }
    freeifaddrs(ifs);
    if (!m->nlinks && !m->warned_no_link) {
        m->warned_no_link = 1;
        cp2p_log_warn(LOG, "no interface to use for mDNS yet");
    }
}

static void refresh_addrs(cp2p_mdns_t *m)
{
    cp2p_multiaddr_t *addrs = NULL;
    size_t n = 0;
    if (cp2p_host_addrs(m->h, &addrs, &n))
        return;
    cp2p_mdns_engine_set_addrs(m->e, addrs, n);
    cp2p_multiaddr_array_free(addrs, n);
}

static void announce(cp2p_mdns_t *m, uint32_t ttl_s)
{
    cp2p_buf_t b = {0};
    if (cp2p_mdns_engine_response(m->e, ttl_s, &b) == 0)
        send_all(m, &b);
    cp2p_buf_free(&b);
}

static void on_timer(uv_timer_t *t)
{
    cp2p_mdns_t *m = t->data;
    uint64_t now = uv_now(m->loop);
    if (now >= m->next_query) {
        scan_interfaces(m);
        refresh_addrs(m);
        cp2p_buf_t q = {0};
        if (cp2p_mdns_engine_query(m->e, &q) == 0)
            send_all(m, &q);
        cp2p_buf_free(&q);
        m->last_query = now;
        if (m->probe_gap_ms && m->probe_gap_ms < m->interval_ms) {
            m->next_query = now + m->probe_gap_ms;
            m->probe_gap_ms *= 2;
        } else {
            m->next_query = now + m->interval_ms;
            m->probe_gap_ms = 0;
        }
    }
    if (m->next_announce && now >= m->next_announce) {
        m->next_announce = 0;
        announce(m, cp2p_mdns_engine_ttl(m->e));
    }
    for (size_t i = 0; i < m->nlinks; i++) {
        cp2p_buf_t b = {0};
        if (cp2p_mdns_engine_deferred(m->e, m->links[i]->index, now, &b) == 1)
            send_on(m->links[i], b.data, b.len);
        cp2p_buf_free(&b);
    }
    schedule(m);
}

static void on_host_event(const cp2p_event_t *ev, void *arg)
{
    if (ev->type == CP2P_EVENT_LISTEN_ADDR)
        refresh_addrs(arg);
}

int cp2p_mdns_start(cp2p_host_t *h, const cp2p_mdns_config_t *cfg, cp2p_mdns_event_fn fn,
                    void *arg, cp2p_mdns_t **out)
{
    if (!h || !out)
        return CP2P_EINVAL;
    cp2p_mdns_config_t c = cfg ? *cfg : (cp2p_mdns_config_t){0};
    if (c.no_ipv4 && c.no_ipv6)
        return CP2P_EINVAL;
    cp2p_mdns_t *m = calloc(1, sizeof *m);
    if (!m)
        return CP2P_ENOMEM;
    cp2p_mdns_engine_config_t ec = {.service = c.service, .peer_name = c.peer_name,
                                    .ttl_s = c.ttl_s, .loopback = c.loopback};
    int rc = cp2p_mdns_engine_new(&ec, cp2p_host_peer_id(h), on_engine_event, m, &m->e);
    if (rc) {
        free(m);
        return rc;
    }
    m->h = h;
    m->loop = cp2p_host_loop(h);
    m->fn = fn;
    m->arg = arg;
    m->interval_ms = c.interval_ms ? c.interval_ms : CP2P_MDNS_DEFAULT_INTERVAL_MS;
    m->dial = c.dial;
    m->loopback = c.loopback;
    m->no_ipv4 = c.no_ipv4;
    m->no_ipv6 = c.no_ipv6;
    if ((rc = cp2p_host_subscribe(h, on_host_event, m))) {
        cp2p_mdns_engine_free(m->e);
        free(m);
        return rc;
    }
    uv_timer_init(m->loop, &m->timer);
    m->timer.data = m;
    m->handles++;
    scan_interfaces(m);
    refresh_addrs(m);
    /* Announce (RFC 6762 8.3), and again a second later; probe meanwhile. */
    announce(m, cp2p_mdns_engine_ttl(m->e));
    uint64_t now = uv_now(m->loop);
    m->next_announce = now + ANNOUNCE_GAP_MS;
    m->next_query = now + FIRST_QUERY_MIN_MS + random_below(FIRST_QUERY_SPREAD_MS);
    m->probe_gap_ms = FIRST_PROBE_GAP_MS;
    schedule(m);
    *out = m;
    return 0;
}

void cp2p_mdns_stop(cp2p_mdns_t *m, void (*done)(void *arg), void *arg)
{
    if (!m || m->stopping)
        return;
    m->stopping = 1;
    m->done = done;
    m->done_arg = arg;
    cp2p_host_unsubscribe(m->h, on_host_event, m);
    announce(m, 0); /* goodbye, RFC 6762 10.1 */
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, on_timer_closed);
    for (size_t i = 0; i < m->nlinks; i++) {
        uv_udp_recv_stop(&m->links[i]->udp);
        uv_close((uv_handle_t *)&m->links[i]->udp, on_link_closed);
    }
    m->nlinks = 0;
}

void cp2p_mdns_stats(const cp2p_mdns_t *m, cp2p_mdns_stats_t *out)
{
    *out = *cp2p_mdns_engine_stats(m->e);
}

static size_t collect_metrics(const void *mdns, cp2p_metric_t *out, size_t cap)
{
    cp2p_mdns_stats_t s;
    cp2p_mdns_stats(mdns, &s);
    const cp2p_metric_t all[] = {
        {"cp2p_mdns_discovered_total", "counter", "Peer addresses discovered with mDNS.", s.discovered},
        {"cp2p_mdns_expired_total", "counter", "Peer addresses expired.", s.expired},
        {"cp2p_mdns_packets_received_total", "counter", "mDNS packets received.", s.rx_packets},
        {"cp2p_mdns_packets_malformed_total", "counter", "mDNS packets dropped as malformed.", s.rx_malformed},
        {"cp2p_mdns_packets_rejected_total", "counter", "mDNS records for our service dropped as wrong.", s.rx_rejected},
        {"cp2p_mdns_packets_sent_total", "counter", "mDNS packets sent.", s.tx_packets},
        {"cp2p_mdns_send_errors_total", "counter", "mDNS packets that could not be sent.", s.tx_errors},
        {"cp2p_mdns_over_limit_total", "counter", "Addresses ignored: the table, or a peer's or a sender's share of it, was full.", s.over_limit},
    };
    size_t n = sizeof all / sizeof *all < cap ? sizeof all / sizeof *all : cap;
    memcpy(out, all, n * sizeof *out);
    return n;
}

const char *cp2p_mdns_peer_name(const cp2p_mdns_t *m)
{
    return cp2p_mdns_engine_peer_name(m->e);
}

cp2p_metrics_source_t cp2p_mdns_metrics_source(const cp2p_mdns_t *m)
{
    return (cp2p_metrics_source_t){m ? collect_metrics : NULL, m};
}
