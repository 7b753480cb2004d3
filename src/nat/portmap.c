/* Port mapping on the gateway (include/cp2p/nat.h): NAT-PMP (RFC 6886)
 * through libnatpmp, driven on the loop by a uv_poll and a uv_timer, and
 * UPnP IGD (WANIPConnection AddPortMapping, DeletePortMapping,
 * GetExternalIPAddress) through libminiupnpc, whose calls block and so run
 * on libuv's thread pool, one job at a time. One request is under way at a
 * time, whichever the method: the port map is a small sequential machine
 * that pump() moves on after every answer, timeout and new listen port. */
#include "cp2p/nat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <natpmp.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "nat/natpmp_msg.h"

#define NATPMP_FIRST_RETRY_MS 250 /* RFC 6886 3.1: then doubled */
#define RETRY_MIN_S 30            /* after a failed mapping: 30 s, doubled up to RETRY_MAX_S */
#define RETRY_MAX_S 600
#define UPNP_CONFLICT_TRIES 4     /* external ports tried when ours is taken */

enum phase { PH_IDLE, PH_NATPMP, PH_UPNP, PH_READY, PH_NONE };
enum { OP_NONE, OP_PUBLIC, OP_MAP, OP_UNMAP, OP_EXTIP };

typedef struct mapping {
    uint16_t iport, eport;
    uint8_t ip[4];     /* the external address it was told with */
    uint32_t lifetime; /* granted */
    unsigned method;
    int mapped;
    unsigned failures;
    uint64_t due; /* loop time (ms) of the next (re)mapping */
} mapping_t;

/* What libminiupnpc found: written by the discovery job, then read by the
 * later jobs (one at a time) and freed on the loop once none runs. */
typedef struct upnp {
    struct UPNPUrls urls;
    struct IGDdatas data;
    char lanaddr[64];
    int valid;
} upnp_t;

typedef struct upnp_job {
    uv_work_t req;
    struct cp2p_nat *n;
    upnp_t *u;
    int op;
    int timeout_ms;
    char desc[64];
    uint16_t iport, eport; /* in: the wanted external port; out: the mapped one */
    uint32_t lease;        /* in: asked; out: granted (0 = permanent) */
    int rc;
    char why[128];
    char ext_ip[16];
} upnp_job_t;

struct cp2p_nat {
    cp2p_host_t *h;
    uv_loop_t *loop;
    unsigned methods;
    uint32_t lease_s, timeout_ms;
    int advertise, advertised, loopback;
    int force_gw;
    in_addr_t gw;
    char desc[64];
    cp2p_nat_event_fn fn;
    void *arg;
    mapping_t maps[CP2P_NAT_MAX_MAPPINGS];
    size_t nmaps;
    enum phase phase;
    unsigned method; /* in use, once a gateway answered */
    uint8_t ext_ip[4];
    uint64_t ext_due; /* when to ask the gateway for its external address again */
    int busy; /* a request under way */
    /* NAT-PMP */
    natpmp_t np;
    int np_open, np_op;
    size_t np_index;
    uint64_t np_deadline, np_wait_ms;
    int have_epoch;
    uint32_t epoch;    /* the gateway's last "seconds since start of epoch" */
    uint64_t epoch_at; /* loop time it was received */
    uv_poll_t poll;
    uv_timer_t np_timer;
    /* UPnP */
    upnp_t *u;
    upnp_job_t *job;
    uv_timer_t timer; /* renewals, retries */
    int subscribed;
    int closing, handles;
    void (*done)(void *arg);
    void *done_arg;
};

static void pump(cp2p_nat_t *n);

const char *cp2p_nat_method_name(unsigned method)
{
    return method == CP2P_NAT_NATPMP ? "NAT-PMP" : method == CP2P_NAT_UPNP ? "UPnP" : "none";
}

static int ext_addr(const uint8_t ip[4], uint16_t port, cp2p_multiaddr_t *out)
{
    char s[64];
    snprintf(s, sizeof s, "/ip4/%u.%u.%u.%u/tcp/%u", ip[0], ip[1], ip[2], ip[3], port);
    return cp2p_multiaddr_parse(s, out);
}

static void emit(cp2p_nat_t *n, cp2p_nat_event_type_t type, const mapping_t *m, int error,
                 const char *reason)
{
    if (!n->fn || n->closing)
        return;
    cp2p_multiaddr_t ma = {0};
    cp2p_nat_event_t ev = {.type = type, .method = n->method, .error = error, .reason = reason};
    if (m) {
        ev.internal_port = m->iport;
        ev.lifetime_s = m->lifetime;
        if (type != CP2P_NAT_FAILED && ext_addr(m->ip, m->eport, &ma) == 0)
            ev.external = &ma;
    }
    n->fn(&ev, n->arg);
    cp2p_multiaddr_free(&ma);
}

int cp2p_nat_addrs(const cp2p_nat_t *n, cp2p_multiaddr_t **addrs, size_t *count)
{
    *addrs = NULL;
    *count = 0;
    size_t k = 0;
    for (size_t i = 0; i < n->nmaps; i++)
        k += n->maps[i].mapped;
    if (!k)
        return 0;
    cp2p_multiaddr_t *a = calloc(k, sizeof *a);
    if (!a)
        return CP2P_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n->nmaps; i++) {
        if (!n->maps[i].mapped)
            continue;
        int rc = ext_addr(n->maps[i].ip, n->maps[i].eport, &a[j]);
        if (rc) {
            cp2p_multiaddr_array_free(a, j);
            return rc;
        }
        j++;
    }
    *addrs = a;
    *count = j;
    return 0;
}

/* The announce list, when advertising: the listen addresses, then ours. */
static void readvertise(cp2p_nat_t *n)
{
    if (!n->advertise)
        return;
    cp2p_multiaddr_t *l = NULL, *m = NULL;
    size_t nl = 0, nm = 0;
    if (cp2p_host_listen_addrs(n->h, &l, &nl) == 0 && cp2p_nat_addrs(n, &m, &nm) == 0) {
        cp2p_multiaddr_t all[CP2P_HOST_MAX_ANNOUNCE_ADDRS];
        size_t k = 0;
        for (size_t i = 0; i < nm && k < CP2P_HOST_MAX_ANNOUNCE_ADDRS; i++)
            all[k++] = m[i];
        for (size_t i = 0; i < nl && k < CP2P_HOST_MAX_ANNOUNCE_ADDRS; i++)
            all[k++] = l[i];
        if (nm && cp2p_host_set_announce_addrs(n->h, all, k) == 0)
            n->advertised = 1;
        else if (!nm && n->advertised && cp2p_host_set_announce_addrs(n->h, NULL, 0) == 0)
            n->advertised = 0;
    }
    cp2p_multiaddr_array_free(l, nl);
    cp2p_multiaddr_array_free(m, nm);
}

/* ---- the ports to map ---- */

/* Every TCP port the host listens on over a private IPv4 address (a public
 * one needs no mapping; loopback only if asked), once. */
static void scan(cp2p_nat_t *n)
{
    cp2p_multiaddr_t *l = NULL;
    size_t nl = 0;
    if (cp2p_host_listen_addrs(n->h, &l, &nl))
        return;
    for (size_t i = 0; i < nl; i++) {
        cp2p_multiaddr_iter_t it;
        cp2p_multiaddr_component_t c[3];
        cp2p_multiaddr_iter_init(&it, &l[i]);
        size_t k = 0;
        while (k < 3 && cp2p_multiaddr_iter_next(&it, &c[k]))
            k++;
        if (k != 2 || c[0].code != CP2P_MA_IP4 || c[1].code != CP2P_MA_TCP || c[1].value_len != 2)
            continue;
        cp2p_ip_scope_t scope = cp2p_ip_scope(c[0].value, 4);
        if (scope != CP2P_IP_PRIVATE && !(n->loopback && scope == CP2P_IP_LOOPBACK))
            continue;
        uint16_t port = (uint16_t)(c[1].value[0] << 8 | c[1].value[1]);
        int known = 0;
        for (size_t j = 0; j < n->nmaps; j++)
            known |= n->maps[j].iport == port;
        if (known)
            continue;
        if (n->nmaps == CP2P_NAT_MAX_MAPPINGS) {
            cp2p_log_warn("nat", "port %u not mapped: %d ports are mapped already", port,
                          CP2P_NAT_MAX_MAPPINGS);
            continue;
        }
        n->maps[n->nmaps++] = (mapping_t){.iport = port, .due = 0};
    }
    cp2p_multiaddr_array_free(l, nl);
}

static void on_host_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_nat_t *n = arg;
    if (ev->type != CP2P_EVENT_LISTEN_ADDR || n->closing)
        return;
    size_t before = n->nmaps;
    scan(n);
    if (n->nmaps != before)
        pump(n);
}

/* ---- results, whichever the method ---- */

static void no_gateway(cp2p_nat_t *n, const char *why)
{
    n->phase = PH_NONE;
    n->method = 0;
    cp2p_log_warn("nat", "no gateway for port mapping (%s): the host goes on without", why);
    emit(n, CP2P_NAT_FAILED, NULL, CP2P_EUNREACHABLE, why);
}

static uint64_t retry_ms(unsigned failures)
{
    uint64_t s = RETRY_MIN_S;
    for (unsigned i = 1; i < failures && s < RETRY_MAX_S; i++)
        s *= 2;
    return (s < RETRY_MAX_S ? s : RETRY_MAX_S) * 1000;
}

static void mapped(cp2p_nat_t *n, mapping_t *m, uint16_t eport, uint32_t lifetime)
{
    int changed = !m->mapped || m->eport != eport || m->method != n->method ||
                  memcmp(m->ip, n->ext_ip, 4);
    memcpy(m->ip, n->ext_ip, 4);
    m->mapped = 1;
    m->eport = eport;
    m->lifetime = lifetime;
    m->method = n->method;
    m->failures = 0;
    uint64_t renew_s = lifetime ? lifetime / 2 : n->lease_s / 2;
    if (renew_s < CP2P_NAT_MIN_RENEW_S)
        renew_s = CP2P_NAT_MIN_RENEW_S;
    m->due = uv_now(n->loop) + renew_s * 1000;
    if (!changed)
        return;
    char ip[16];
    inet_ntop(AF_INET, m->ip, ip, sizeof ip);
    cp2p_log_info("nat", "%s: port %u mapped to %s:%u for %u s", cp2p_nat_method_name(n->method),
                  m->iport, ip, eport, lifetime);
    readvertise(n);
    emit(n, CP2P_NAT_MAPPED, m, 0, NULL);
}

static void map_failed(cp2p_nat_t *n, mapping_t *m, int error, const char *why)
{
    m->failures++;
    m->due = uv_now(n->loop) + retry_ms(m->failures);
    if (m->mapped) {
        m->mapped = 0;
        cp2p_log_warn("nat", "%s: port %u is no longer mapped: %s", cp2p_nat_method_name(n->method),
                      m->iport, why);
        readvertise(n);
        emit(n, CP2P_NAT_LOST, m, error, why);
    } else if (m->failures == 1) {
        cp2p_log_warn("nat", "%s: port %u cannot be mapped: %s", cp2p_nat_method_name(n->method),
                      m->iport, why);
        emit(n, CP2P_NAT_FAILED, m, error, why);
    }
}

static uint64_t recheck_ms(const cp2p_nat_t *n)
{
    uint32_t s = n->lease_s / 2;
    return (uint64_t)(s < CP2P_NAT_MIN_RENEW_S ? CP2P_NAT_MIN_RENEW_S : s) * 1000;
}

/* The gateway's external address, asked again while mappings stand (an ISP
 * may change it): if it moved, every mapping is made again now, and told
 * with its new address. */
static void ext_answer(cp2p_nat_t *n, int rc, const uint8_t ip[4], const char *why)
{
    n->ext_due = uv_now(n->loop) + recheck_ms(n);
    if (rc) {
        cp2p_log_info("nat", "%s: external address: %s", cp2p_nat_method_name(n->method), why);
        return;
    }
    if (!memcmp(ip, n->ext_ip, 4))
        return;
    char was[16], now[16];
    inet_ntop(AF_INET, n->ext_ip, was, sizeof was);
    inet_ntop(AF_INET, ip, now, sizeof now);
    cp2p_log_info("nat", "%s: the external address moved from %s to %s",
                  cp2p_nat_method_name(n->method), was, now);
    memcpy(n->ext_ip, ip, 4);
    for (size_t i = 0; i < n->nmaps; i++)
        if (n->maps[i].mapped)
            n->maps[i].due = uv_now(n->loop);
}

/* ---- NAT-PMP ---- */

static void np_send(cp2p_nat_t *n)
{
    int r;
    if (n->np_op == OP_PUBLIC)
        r = sendpublicaddressrequest(&n->np);
    else {
        mapping_t *m = &n->maps[n->np_index];
        uint32_t life = n->np_op == OP_UNMAP ? 0 : n->lease_s;
        uint16_t want = n->np_op == OP_UNMAP ? 0 : m->mapped ? m->eport : m->iport;
        r = sendnewportmappingrequest(&n->np, NATPMP_PROTOCOL_TCP, m->iport, want, life);
    }
    if (r < 0)
        cp2p_log_debug("nat", "NAT-PMP: send failed (%d, errno %d)", r, errno);
}

static void np_done(cp2p_nat_t *n, int rc, const cp2p_natpmp_reply_t *rep, const char *why);
static void on_np_timer(uv_timer_t *t);

/* Wait for the answer until the next retransmission or the deadline. */
static void np_arm(cp2p_nat_t *n)
{
    uint64_t now = uv_now(n->loop);
    uint64_t left = n->np_deadline > now ? n->np_deadline - now : 0;
    uv_timer_start(&n->np_timer, on_np_timer, n->np_wait_ms < left ? n->np_wait_ms : left, 0);
}

static void np_request(cp2p_nat_t *n, int op, size_t index)
{
    n->busy = 1;
    n->np_op = op;
    n->np_index = index;
    n->np_wait_ms = NATPMP_FIRST_RETRY_MS;
    n->np_deadline = uv_now(n->loop) + n->timeout_ms;
    np_send(n);
    np_arm(n);
}

/* The datagrams waiting on the socket (16 at most a turn): the first that
 * answers the request under way ends it; those before it are dropped, as
 * is whatever comes when no request is under way. NAT-PMP has no request
 * ids: an answer is matched by its opcode and port. */
static void np_read(cp2p_nat_t *n)
{
    for (int i = 0; i < 16; i++) {
        uint8_t buf[64];
        ssize_t k = recv(n->np.s, buf, sizeof buf, 0);
        if (k >= 0 && n->np_op == OP_NONE)
            continue;
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || n->np_op == OP_NONE)
                return;
            /* ICMP port unreachable: nothing listens for NAT-PMP there */
            np_done(n, errno == ECONNREFUSED ? CP2P_ECONNREFUSED : CP2P_EIO, NULL,
                    errno == ECONNREFUSED ? "the gateway refused (no NAT-PMP)" : strerror(errno));
            return;
        }
        cp2p_natpmp_reply_t rep;
        uint8_t want = n->np_op == OP_PUBLIC ? CP2P_NATPMP_OP_PUBLIC : CP2P_NATPMP_OP_TCP;
        if (cp2p_natpmp_reply_parse(buf, (size_t)k, &rep) || rep.op != want ||
            (want == CP2P_NATPMP_OP_TCP && rep.result == 0 &&
             rep.iport != n->maps[n->np_index].iport)) {
            cp2p_log_debug("nat", "NAT-PMP: dropped a datagram of %zd bytes that answers nothing", k);
            continue;
        }
        np_done(n, 0, &rep, NULL);
        return; /* what is left waits for the next turn, and the next request */
    }
}

static void on_np_readable(uv_poll_t *p, int status, int events)
{
    cp2p_nat_t *n = p->data;
    np_read(n);
}

static void on_np_timer(uv_timer_t *t)
{
    cp2p_nat_t *n = t->data;
    if (n->np_op == OP_NONE)
        return;
    if (uv_now(n->loop) >= n->np_deadline) {
        np_done(n, CP2P_ETIMEOUT, NULL, "no NAT-PMP answer");
        return;
    }
    n->np_wait_ms *= 2;
    np_send(n); /* RFC 6886 3.1: again, twice as long to wait */
    np_arm(n);
}

static int np_open(cp2p_nat_t *n)
{
    int r = initnatpmp(&n->np, n->force_gw, n->gw);
    if (r < 0)
        return r;
    n->poll.data = n;
    if (uv_poll_init_socket(n->loop, &n->poll, n->np.s)) {
        closenatpmp(&n->np);
        return -1;
    }
    n->handles++;
    n->np_open = 1;
    uv_poll_start(&n->poll, UV_READABLE, on_np_readable);
    return 0;
}

/* RFC 6886 3.6: a gateway whose epoch went back lost its mappings (it
 * restarted): every mapping is made again now. */
static void np_epoch(cp2p_nat_t *n, uint32_t epoch)
{
    uint64_t now = uv_now(n->loop);
    if (n->have_epoch) {
        uint64_t elapsed_s = (now - n->epoch_at) / 1000;
        if ((uint64_t)epoch + 2 < (uint64_t)n->epoch + elapsed_s * 7 / 8) {
            cp2p_log_info("nat", "NAT-PMP: the gateway restarted (epoch %u, was %u): mapping again",
                          epoch, n->epoch);
            for (size_t i = 0; i < n->nmaps; i++)
                if (n->maps[i].mapped)
                    n->maps[i].due = now;
        }
    }
    n->have_epoch = 1;
    n->epoch = epoch;
    n->epoch_at = now;
}

static void np_done(cp2p_nat_t *n, int rc, const cp2p_natpmp_reply_t *rep, const char *why)
{
    int op = n->np_op;
    n->np_op = OP_NONE;
    n->busy = 0;
    uv_timer_stop(&n->np_timer);
    char reason[96];
    if (!rc && rep->result) {
        /* 1 unsupported version, 2 refused, 3 network failure, 4 out of resources */
        snprintf(reason, sizeof reason, "the gateway answered NAT-PMP result %u", rep->result);
        why = reason;
        rc = CP2P_EREFUSED;
    }
    mapping_t *m = op == OP_PUBLIC ? NULL : &n->maps[n->np_index];
    if (rep) /* the mapping this answers is made now: mapped() sets its renewal again */
        np_epoch(n, rep->epoch);
    switch (op) {
    case OP_PUBLIC:
        if (!rc && (rep->ip[0] == 0 || rep->ip[0] >= 224)) {
            rc = CP2P_EPROTO;
            why = "the gateway has no usable external address";
        }
        if (n->phase == PH_READY)
            ext_answer(n, rc, rc ? NULL : rep->ip, why);
        else if (rc) {
            cp2p_log_info("nat", "NAT-PMP: %s", why);
            n->phase = PH_UPNP; /* next method, if allowed */
        } else {
            memcpy(n->ext_ip, rep->ip, 4);
            n->method = CP2P_NAT_NATPMP;
            n->phase = PH_READY;
            n->ext_due = uv_now(n->loop) + recheck_ms(n);
        }
        break;
    case OP_MAP:
        if (!rc && rep->eport == 0) {
            rc = CP2P_EPROTO;
            why = "the gateway mapped no port";
        }
        if (rc)
            map_failed(n, m, rc, why);
        else
            mapped(n, m, rep->eport, rep->lifetime);
        break;
    case OP_UNMAP:
        m->mapped = 0;
        m->due = UINT64_MAX;
        if (rc)
            cp2p_log_info("nat", "NAT-PMP: removing port %u: %s", m->iport, why);
        break;
    }
    pump(n);
}

/* ---- UPnP IGD (on the thread pool) ---- */

static void upnp_work(uv_work_t *req)
{
    upnp_job_t *j = req->data;
    upnp_t *u = j->u;
    int err = 0, r;
    switch (j->op) {
    case OP_PUBLIC: {
        struct UPNPDev *devs = upnpDiscover(j->timeout_ms, NULL, NULL, UPNP_LOCAL_PORT_ANY, 0, 2, &err);
        if (!devs) {
            j->rc = CP2P_ETIMEOUT;
            snprintf(j->why, sizeof j->why, "no UPnP IGD answered SSDP");
            return;
        }
        r = UPNP_GetValidIGD(devs, &u->urls, &u->data, u->lanaddr, sizeof u->lanaddr);
        freeUPNPDevlist(devs);
        if (r == 0) {
            j->rc = CP2P_ENOTFOUND;
            snprintf(j->why, sizeof j->why, "UPnP devices answered, none is an IGD");
            return;
        }
        u->valid = 1; /* urls are allocated from here on */
        /* 2: an IGD whose external address is private or reserved (this
         * libminiupnpc checks no connection then): behind another NAT, or a
         * test network. The address is only a candidate either way. */
        if (r != 1 && !(r == 2 && UPNPIGD_IsConnected(&u->urls, &u->data))) {
            j->rc = CP2P_EUNREACHABLE;
            snprintf(j->why, sizeof j->why, "the UPnP IGD is not connected");
            return;
        }
        char ip[40] = "";
        r = UPNP_GetExternalIPAddress(u->urls.controlURL, u->data.first.servicetype, ip);
        struct in_addr a;
        if (r != UPNPCOMMAND_SUCCESS || inet_pton(AF_INET, ip, &a) != 1 || a.s_addr == 0) {
            j->rc = CP2P_EPROTO;
            snprintf(j->why, sizeof j->why, "the UPnP IGD gave no external address (%d)", r);
            return;
        }
        snprintf(j->ext_ip, sizeof j->ext_ip, "%s", ip);
        return;
    }
    case OP_EXTIP: {
        char ip[40] = "";
        r = UPNP_GetExternalIPAddress(u->urls.controlURL, u->data.first.servicetype, ip);
        struct in_addr a;
        if (r != UPNPCOMMAND_SUCCESS || inet_pton(AF_INET, ip, &a) != 1 || a.s_addr == 0) {
            j->rc = CP2P_EPROTO;
            snprintf(j->why, sizeof j->why, "GetExternalIPAddress failed (%d)", r);
            return;
        }
        snprintf(j->ext_ip, sizeof j->ext_ip, "%s", ip);
        return;
    }
    case OP_MAP: {
        char ep[8], ip[8], lease[16];
        uint32_t life = j->lease;
        uint16_t want = j->eport;
        snprintf(ip, sizeof ip, "%u", j->iport);
        for (int t = 0; t < UPNP_CONFLICT_TRIES; t++) {
            snprintf(ep, sizeof ep, "%u", want);
            snprintf(lease, sizeof lease, "%u", life);
            r = UPNP_AddPortMapping(u->urls.controlURL, u->data.first.servicetype, ep, ip,
                                    u->lanaddr, j->desc, "TCP", NULL, lease);
            if (r == 725 && life) { /* OnlyPermanentLeasesSupported */
                life = 0;
                t--;
                continue;
            }
            if (r == 718 || r == 724) /* ConflictInMappingEntry, SamePortValuesRequired */
            {
                want = (uint16_t)(1024 + (((unsigned)want * 2654435761u) >> 7) % 64511);
                continue;
            }
            break;
        }
        if (r != UPNPCOMMAND_SUCCESS) {
            j->rc = CP2P_EREFUSED;
            snprintf(j->why, sizeof j->why, "AddPortMapping: %s (%d)", strupnperror(r), r);
            return;
        }
        j->eport = want;
        j->lease = life;
        return;
    }
    case OP_UNMAP: {
        char ep[8];
        snprintf(ep, sizeof ep, "%u", j->eport);
        r = UPNP_DeletePortMapping(u->urls.controlURL, u->data.first.servicetype, ep, "TCP", NULL);
        if (r != UPNPCOMMAND_SUCCESS) {
            j->rc = CP2P_EREFUSED;
            snprintf(j->why, sizeof j->why, "DeletePortMapping: %s (%d)", strupnperror(r), r);
        }
        return;
    }
    }
}

static void upnp_after(uv_work_t *req, int status)
{
    upnp_job_t *j = req->data;
    cp2p_nat_t *n = j->n;
    n->job = NULL;
    n->busy = 0;
    mapping_t *m = NULL; /* the mapping the job was for: ports are never removed */
    for (size_t i = 0; j->op != OP_PUBLIC && j->op != OP_EXTIP && i < n->nmaps; i++)
        if (n->maps[i].iport == j->iport)
            m = &n->maps[i];
    switch (m || j->op == OP_PUBLIC || j->op == OP_EXTIP ? j->op : OP_NONE) {
    case OP_EXTIP: {
        uint8_t ip[4] = {0};
        if (!j->rc)
            inet_pton(AF_INET, j->ext_ip, ip);
        ext_answer(n, j->rc, ip, j->why);
        break;
    }
    case OP_PUBLIC:
        if (j->rc) {
            cp2p_log_info("nat", "UPnP: %s", j->why);
            n->phase = PH_NONE;
            no_gateway(n, n->methods & CP2P_NAT_NATPMP ? "no NAT-PMP or UPnP IGD answer" : j->why);
        } else {
            inet_pton(AF_INET, j->ext_ip, n->ext_ip);
            n->method = CP2P_NAT_UPNP;
            n->phase = PH_READY;
            n->ext_due = uv_now(n->loop) + recheck_ms(n);
        }
        break;
    case OP_MAP:
        if (j->rc)
            map_failed(n, m, j->rc, j->why);
        else
            mapped(n, m, j->eport, j->lease);
        break;
    case OP_UNMAP:
        m->mapped = 0;
        m->due = UINT64_MAX;
        if (j->rc)
            cp2p_log_info("nat", "UPnP: removing port %u: %s", m->iport, j->why);
        break;
    default:
        break;
    }
    free(j);
    pump(n);
}

/* A request that could not even be queued ends as if the gateway had failed
 * it (what comes next is timed as after any failure). */
static void upnp_not_sent(cp2p_nat_t *n, int op, size_t index, int rc, const char *why)
{
    switch (op) {
    case OP_PUBLIC:
        no_gateway(n, why);
        break;
    case OP_EXTIP:
        ext_answer(n, rc, NULL, why);
        break;
    case OP_MAP:
        map_failed(n, &n->maps[index], rc, why);
        break;
    case OP_UNMAP:
        n->maps[index].mapped = 0; /* closing: it goes with its lease */
        break;
    }
}

static void upnp_request(cp2p_nat_t *n, int op, size_t index)
{
    upnp_job_t *j = calloc(1, sizeof *j);
    if (!j || (!n->u && !(n->u = calloc(1, sizeof *n->u)))) {
        free(j);
        upnp_not_sent(n, op, index, CP2P_ENOMEM, "out of memory");
        return;
    }
    j->req.data = j;
    j->n = n;
    j->u = n->u;
    j->op = op;
    j->timeout_ms = (int)n->timeout_ms;
    snprintf(j->desc, sizeof j->desc, "%s", n->desc);
    if (op == OP_MAP || op == OP_UNMAP) {
        mapping_t *m = &n->maps[index];
        j->iport = m->iport;
        j->eport = m->mapped ? m->eport : m->iport;
        j->lease = n->lease_s;
    }
    n->busy = 1;
    n->job = j;
    if (uv_queue_work(n->loop, &j->req, upnp_work, upnp_after)) {
        n->busy = 0;
        n->job = NULL;
        free(j);
        upnp_not_sent(n, op, index, CP2P_EIO, "cannot queue the UPnP request");
    }
}

/* ---- the machine ---- */

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

static void on_handle_closed(uv_handle_t *hd)
{
    cp2p_nat_t *n = hd->data;
    if (--n->handles)
        return;
    if (n->np_open)
        closenatpmp(&n->np);
    if (n->u && n->u->valid)
        FreeUPNPUrls(&n->u->urls);
    free(n->u);
    void (*done)(void *) = n->done;
    void *arg = n->done_arg;
    free(n);
    if (done)
        done(arg);
}

static void finish(cp2p_nat_t *n)
{
    if (n->advertised)
        cp2p_host_set_announce_addrs(n->h, NULL, 0);
    n->advertised = 0;
    if (n->np_open) {
        uv_poll_stop(&n->poll);
        uv_close((uv_handle_t *)&n->poll, on_handle_closed);
    }
    uv_close((uv_handle_t *)&n->np_timer, on_handle_closed);
    uv_close((uv_handle_t *)&n->timer, on_handle_closed);
}

static void pump(cp2p_nat_t *n)
{
    if (n->busy)
        return;
    uv_timer_stop(&n->timer);
    if (n->closing) {
        for (size_t i = 0; i < n->nmaps; i++) {
            if (!n->maps[i].mapped)
                continue;
            if (n->maps[i].method == CP2P_NAT_NATPMP && n->np_open)
                np_request(n, OP_UNMAP, i);
            else if (n->maps[i].method == CP2P_NAT_UPNP && n->u && n->u->valid)
                upnp_request(n, OP_UNMAP, i);
            else
                n->maps[i].mapped = 0;
            if (n->busy)
                return;
        }
        finish(n);
        return;
    }
    if (!n->nmaps)
        return; /* nothing to map yet: no need to bother the gateway */
    switch (n->phase) {
    case PH_IDLE:
        n->phase = PH_NATPMP;
        if (n->methods & CP2P_NAT_NATPMP) {
            int r = np_open(n);
            if (r == 0) {
                np_request(n, OP_PUBLIC, 0);
                return;
            }
            cp2p_log_info("nat", "NAT-PMP: %s",
                          r == NATPMP_ERR_CANNOTGETGATEWAY ? "no default gateway" : "no socket");
        }
        /* fall through */
    case PH_NATPMP:
    case PH_UPNP:
        if (n->methods & CP2P_NAT_UPNP) {
            n->phase = PH_UPNP;
            upnp_request(n, OP_PUBLIC, 0);
            if (n->busy)
                return;
        }
        if (n->phase != PH_NONE)
            no_gateway(n, n->methods & CP2P_NAT_UPNP ? "no NAT-PMP or UPnP IGD answer"
                                                     : "no NAT-PMP answer");
        return;
    case PH_NONE:
        return;
    case PH_READY:
        break;
    }
    uint64_t now = uv_now(n->loop), next = UINT64_MAX;
    int any = 0;
    for (size_t i = 0; i < n->nmaps; i++)
        any |= n->maps[i].mapped;
    if (any && n->ext_due <= now) {
        if (n->method == CP2P_NAT_NATPMP)
            np_request(n, OP_PUBLIC, 0);
        else
            upnp_request(n, OP_EXTIP, 0);
        if (n->busy)
            return;
    }
    if (any)
        next = n->ext_due;
    for (size_t i = 0; i < n->nmaps; i++) {
        mapping_t *m = &n->maps[i];
        if (m->due <= now) {
            if (n->method == CP2P_NAT_NATPMP)
                np_request(n, OP_MAP, i);
            else
                upnp_request(n, OP_MAP, i);
            if (n->busy)
                return;
        }
        if (m->due < next)
            next = m->due;
    }
    if (next != UINT64_MAX)
        uv_timer_start(&n->timer, on_timer, next > now ? next - now : 0, 0);
}

/* The first turn: the ports the host has now. */
static void kick(uv_timer_t *t)
{
    cp2p_nat_t *n = t->data;
    scan(n);
    pump(n);
}

int cp2p_nat_start(cp2p_host_t *h, const cp2p_nat_config_t *cfg, cp2p_nat_event_fn fn, void *arg,
                   cp2p_nat_t **out)
{
    cp2p_nat_config_t c = cfg ? *cfg : (cp2p_nat_config_t){0};
    if (!h || !out || (c.methods & ~(CP2P_NAT_NATPMP | CP2P_NAT_UPNP)))
        return CP2P_EINVAL;
    struct in_addr gw = {0};
    if (c.gateway && inet_pton(AF_INET, c.gateway, &gw) != 1)
        return CP2P_EINVAL;
    cp2p_nat_t *n = calloc(1, sizeof *n);
    if (!n)
        return CP2P_ENOMEM;
    n->h = h;
    n->loop = cp2p_host_loop(h);
    n->methods = c.methods ? c.methods : CP2P_NAT_NATPMP | CP2P_NAT_UPNP;
    n->lease_s = c.lease_s ? c.lease_s : CP2P_NAT_DEFAULT_LEASE_S;
    n->timeout_ms = c.timeout_ms ? c.timeout_ms : CP2P_NAT_DEFAULT_TIMEOUT_MS;
    n->advertise = c.advertise;
    n->loopback = c.loopback;
    n->force_gw = c.gateway != NULL;
    n->gw = gw.s_addr;
    snprintf(n->desc, sizeof n->desc, "%s", c.description ? c.description : "cp2p");
    n->fn = fn;
    n->arg = arg;
    int rc = cp2p_host_subscribe(h, on_host_event, n);
    if (rc) {
        free(n);
        return rc;
    }
    n->subscribed = 1;
    uv_timer_init(n->loop, &n->timer);
    uv_timer_init(n->loop, &n->np_timer);
    n->timer.data = n->np_timer.data = n;
    n->handles = 2;
    uv_timer_start(&n->timer, kick, 0, 0); /* a later turn; pump() stops it on close */
    *out = n;
    return 0;
}

void cp2p_nat_close(cp2p_nat_t *n, void (*done)(void *arg), void *arg)
{
    if (!n || n->closing)
        return;
    n->closing = 1;
    n->fn = NULL;
    n->done = done;
    n->done_arg = arg;
    if (n->subscribed)
        cp2p_host_unsubscribe(n->h, on_host_event, n);
    n->subscribed = 0;
    pump(n); /* a request under way ends first; its completion pumps again */
}
