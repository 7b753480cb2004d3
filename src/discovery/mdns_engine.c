/* The mDNS engine (libp2p discovery/mdns spec; RFC 6762 sections 5, 6, 10
 * and 11), sans-I/O: packets in, packets and events out, time passed in
 * (mdns_engine.h). src/discovery/mdns.c feeds it from libuv's UDP sockets. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "discovery/dns.h"
#include "discovery/mdns_engine.h"

#define LOG "mdns"
#define META_SERVICE "_services._dns-sd._udp.local"
#define DNSADDR "dnsaddr="
#define MIN_REPLY_GAP_MS 1000   /* RFC 6762 6: once a second per link */
#define GOODBYE_GRACE_MS 1000   /* RFC 6762 10.1: a TTL 0 record lives one more second */
#define MAX_FOUND 128           /* addresses read from one packet */
#define MAX_QUERIERS 64         /* sources of queries remembered */
#define QUERIER_FORGET_MS 120000 /* a querier not heard from this long is new again */

typedef struct tracked {
    cp2p_peer_id_t peer;
    cp2p_multiaddr_t addr;
    uint64_t expires;
    uint8_t src[CP2P_MDNS_MAX_SOURCE]; /* who told us, as given to input() */
    uint8_t src_len;
} tracked_t;

typedef struct found {
    cp2p_peer_id_t peer;
    cp2p_multiaddr_t addr;
    uint32_t ttl;
} found_t;

struct cp2p_mdns_engine {
    cp2p_dns_name_t service, meta, instance, host;
    char peer_name[CP2P_MDNS_PEER_NAME_MAX + 1];
    cp2p_peer_id_t self;
    char self_str[CP2P_PEER_ID_STRMAX];
    uint32_t ttl_s;
    int loopback;
    char *txt[CP2P_MDNS_MAX_ANNOUNCED];
    size_t ntxt;
    uint8_t ip4[CP2P_MDNS_MAX_ANNOUNCED][4];
    size_t n4;
    uint8_t ip6[CP2P_MDNS_MAX_ANNOUNCED][16];
    size_t n6;
    uint16_t port;
    tracked_t *tracked;
    size_t ntracked;
    uint64_t last_reply[CP2P_MDNS_MAX_LINKS]; /* uv_now of the last reply + 1; 0 = never */
    uint8_t deferred[CP2P_MDNS_MAX_LINKS];    /* a query came too soon: 1, 3 with the meta query */
    struct querier {
        uint8_t src[CP2P_MDNS_MAX_SOURCE];
        size_t len;
        uint64_t seen;
    } queriers[MAX_QUERIERS];
    size_t nqueriers;
    int new_querier;
    cp2p_mdns_stats_t stats;
    cp2p_mdns_engine_event_fn fn;
    void *arg;
};

static void random_name(char *out, size_t len)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[CP2P_MDNS_PEER_NAME_MAX];
    if (RAND_bytes(r, (int)len) != 1) /* uniqueness, not secrecy, is what matters */
        for (size_t i = 0; i < len; i++)
            r[i] = (uint8_t)rand();
    for (size_t i = 0; i < len; i++)
        out[i] = chars[r[i] % 36];
    out[len] = 0;
}

static int valid_peer_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CP2P_MDNS_PEER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

int cp2p_mdns_engine_new(const cp2p_mdns_engine_config_t *cfg, const cp2p_peer_id_t *self,
                         cp2p_mdns_engine_event_fn fn, void *arg, cp2p_mdns_engine_t **out)
{
    if (!self || !out)
        return CP2P_EINVAL;
    cp2p_mdns_engine_config_t c = cfg ? *cfg : (cp2p_mdns_engine_config_t){0};
    if (c.peer_name && !valid_peer_name(c.peer_name))
        return CP2P_EINVAL;
    cp2p_mdns_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return CP2P_ENOMEM;
    if (c.peer_name)
        strcpy(e->peer_name, c.peer_name);
    else
        random_name(e->peer_name, 32);
    cp2p_dns_name_t local;
    if (cp2p_dns_name_from_text(c.service ? c.service : CP2P_MDNS_DEFAULT_SERVICE, &e->service) ||
        cp2p_dns_name_from_text(META_SERVICE, &e->meta) ||
        cp2p_dns_name_from_text("local", &local) ||
        cp2p_dns_name_prepend(e->peer_name, strlen(e->peer_name), &e->service, &e->instance) ||
        cp2p_dns_name_prepend(e->peer_name, strlen(e->peer_name), &local, &e->host) ||
        cp2p_peer_id_to_string(self, e->self_str, sizeof e->self_str)) {
        free(e);
        return CP2P_EINVAL;
    }
    e->self = *self;
    e->ttl_s = c.ttl_s ? c.ttl_s : CP2P_MDNS_DEFAULT_TTL_S;
    e->loopback = c.loopback;
    e->fn = fn;
    e->arg = arg;
    *out = e;
    return 0;
}

static void clear_addrs(cp2p_mdns_engine_t *e)
{
    for (size_t i = 0; i < e->ntxt; i++)
        free(e->txt[i]);
    e->ntxt = e->n4 = e->n6 = 0;
    e->port = 0;
}

void cp2p_mdns_engine_free(cp2p_mdns_engine_t *e)
{
    if (!e)
        return;
    clear_addrs(e);
    for (size_t i = 0; i < e->ntracked; i++)
        cp2p_multiaddr_free(&e->tracked[i].addr);
    free(e->tracked);
    free(e);
}

const char *cp2p_mdns_engine_peer_name(const cp2p_mdns_engine_t *e)
{
    return e->peer_name;
}

cp2p_mdns_stats_t *cp2p_mdns_engine_stats(cp2p_mdns_engine_t *e)
{
    return &e->stats;
}

uint32_t cp2p_mdns_engine_ttl(const cp2p_mdns_engine_t *e)
{
    return e->ttl_s;
}

size_t cp2p_mdns_engine_tracked(const cp2p_mdns_engine_t *e)
{
    return e->ntracked;
}

/* Loopback, and IPv6 link-local addresses, which mean nothing without the
 * zone of the link they were seen on. */
static int skip_ip(const cp2p_mdns_engine_t *e, const cp2p_multiaddr_component_t *c)
{
    if (c->code == CP2P_MA_UNIX)
        return 1; /* a path on this machine: nobody else on the link can use it */
    if (c->code == CP2P_MA_IP4 && c->value_len == 4)
        return !e->loopback && c->value[0] == 127;
    if (c->code == CP2P_MA_IP6 && c->value_len == 16) {
        static const uint8_t lo6[16] = {[15] = 1};
        if (c->value[0] == 0xfe && (c->value[1] & 0xc0) == 0x80)
            return 1;
        return !e->loopback && !memcmp(c->value, lo6, 16);
    }
    return 0;
}

static void note_ip(cp2p_mdns_engine_t *e, const cp2p_multiaddr_component_t *c)
{
    if (c->code == CP2P_MA_IP4 && c->value_len == 4) {
        for (size_t i = 0; i < e->n4; i++)
            if (!memcmp(e->ip4[i], c->value, 4))
                return;
        memcpy(e->ip4[e->n4++], c->value, 4);
    } else if (c->code == CP2P_MA_IP6 && c->value_len == 16) {
        for (size_t i = 0; i < e->n6; i++)
            if (!memcmp(e->ip6[i], c->value, 16))
                return;
        memcpy(e->ip6[e->n6++], c->value, 16);
    }
}

int cp2p_mdns_engine_set_addrs(cp2p_mdns_engine_t *e, const cp2p_multiaddr_t *addrs, size_t n)
{
    clear_addrs(e);
    cp2p_buf_t b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && e->ntxt < CP2P_MDNS_MAX_ANNOUNCED && !rc; i++) {
        cp2p_multiaddr_iter_t it;
        cp2p_multiaddr_component_t c, first;
        cp2p_multiaddr_iter_init(&it, &addrs[i]);
        if (!cp2p_multiaddr_iter_next(&it, &first) || skip_ip(e, &first))
            continue;
        if (cp2p_multiaddr_get(&addrs[i], CP2P_MA_P2P, &c) == 0)
            continue; /* relayed or foreign: not ours to announce */
        cp2p_buf_reset(&b);
        if (cp2p_buf_append(&b, DNSADDR, strlen(DNSADDR)) || cp2p_multiaddr_to_string(&addrs[i], &b)) {
            rc = CP2P_ENOMEM;
            break;
        }
        if (cp2p_buf_append(&b, "/p2p/", 5) || cp2p_buf_append(&b, e->self_str, strlen(e->self_str) + 1)) {
            rc = CP2P_ENOMEM;
            break;
        }
        if (b.len - 1 > 255) { /* one TXT character-string (RFC 6763 6.1) */
            cp2p_log_debug(LOG, "address too long to announce: %s", (char *)b.data + strlen(DNSADDR));
            continue;
        }
        if (!(e->txt[e->ntxt] = strdup((char *)b.data))) {
            rc = CP2P_ENOMEM;
            break;
        }
        e->ntxt++;
        note_ip(e, &first);
        while (!e->port && cp2p_multiaddr_iter_next(&it, &c))
            if ((c.code == CP2P_MA_TCP || c.code == CP2P_MA_UDP) && c.value_len == 2)
                e->port = (uint16_t)(c.value[0] << 8 | c.value[1]);
    }
    cp2p_buf_free(&b);
    return rc;
}

int cp2p_mdns_engine_query(cp2p_mdns_engine_t *e, cp2p_buf_t *out)
{
    int rc = cp2p_dns_put_header(out, 0, 0, 1, 0, 0, 0);
    return rc ? rc : cp2p_dns_put_question(out, &e->service, CP2P_DNS_TYPE_PTR, CP2P_DNS_CLASS_IN);
}

static int build_response(cp2p_mdns_engine_t *e, uint32_t ttl, int meta, cp2p_buf_t *out)
{
    if (e->ntxt == 0)
        return CP2P_ENOTFOUND;
    cp2p_buf_t an = {0}, ar = {0};
    uint16_t nar = 0;
    int rc = cp2p_dns_put_ptr(&an, &e->service, ttl, &e->instance);
    if (!rc && meta)
        rc = cp2p_dns_put_ptr(&an, &e->meta, ttl, &e->service);
    /* SRV, A and AAAA are for DNS-SD browsers (and go-libp2p, which needs an
     * address record before it looks at the TXT). */
    if (!rc && !(rc = cp2p_dns_put_srv(&ar, &e->instance, ttl, e->port, &e->host)))
        nar++;
    for (size_t i = 0; i < e->n4 && !rc; i++, nar++)
        rc = cp2p_dns_put_a(&ar, &e->host, ttl, e->ip4[i]);
    for (size_t i = 0; i < e->n6 && !rc; i++, nar++)
        rc = cp2p_dns_put_aaaa(&ar, &e->host, ttl, e->ip6[i]);
    /* The TXT records go last so that the ones that do not fit are dropped. */
    for (size_t i = 0; i < e->ntxt && !rc; i++) {
        size_t before = ar.len;
        const char *s = e->txt[i];
        rc = cp2p_dns_put_txt(&ar, &e->instance, ttl, &s, 1);
        if (!rc && CP2P_DNS_HEADER_LEN + an.len + ar.len > CP2P_MDNS_MAX_PACKET) {
            ar.len = before;
            break;
        }
        if (!rc)
            nar++;
    }
    if (!rc)
        rc = cp2p_dns_put_header(out, 0, CP2P_DNS_FLAG_QR | CP2P_DNS_FLAG_AA, 0, meta ? 2 : 1, 0, nar);
    if (!rc)
        rc = cp2p_buf_append(out, an.data, an.len);
    if (!rc)
        rc = cp2p_buf_append(out, ar.data, ar.len);
    cp2p_buf_free(&an);
    cp2p_buf_free(&ar);
    return rc;
}

int cp2p_mdns_engine_response(cp2p_mdns_engine_t *e, uint32_t ttl_s, cp2p_buf_t *out)
{
    return build_response(e, ttl_s, 0, out);
}

static int class_ok(uint16_t cls)
{
    return cls == CP2P_DNS_CLASS_IN || cls == CP2P_DNS_CLASS_ANY;
}

/* Remember who asks about our service; a source not heard from lately sets
 * new_querier (the oldest entry makes room). */
static void note_querier(cp2p_mdns_engine_t *e, const uint8_t *src, size_t len, uint64_t now)
{
    if (!len || len > CP2P_MDNS_MAX_SOURCE)
        return;
    size_t oldest = 0;
    for (size_t i = 0; i < e->nqueriers; i++) {
        struct querier *q = &e->queriers[i];
        if (q->len == len && !memcmp(q->src, src, len)) {
            if (now >= q->seen + QUERIER_FORGET_MS)
                e->new_querier = 1;
            q->seen = now;
            return;
        }
        if (q->seen < e->queriers[oldest].seen)
            oldest = i;
    }
    size_t i = e->nqueriers < MAX_QUERIERS ? e->nqueriers++ : oldest;
    memcpy(e->queriers[i].src, src, len);
    e->queriers[i].len = len;
    e->queriers[i].seen = now;
    e->new_querier = 1;
}

int cp2p_mdns_engine_take_new_querier(cp2p_mdns_engine_t *e)
{
    int v = e->new_querier;
    e->new_querier = 0;
    return v;
}

static int on_query(cp2p_mdns_engine_t *e, unsigned link, const cp2p_dns_msg_t *m, uint64_t now,
                    const uint8_t *src, size_t src_len, cp2p_buf_t *reply)
{
    int want = 0, meta = 0;
    for (size_t i = 0; i < m->nq; i++) {
        const cp2p_dns_question_t *q = &m->q[i];
        int any = q->type == CP2P_DNS_TYPE_ANY;
        int about_us =
            (cp2p_dns_name_equal(&q->name, &e->service) && (any || q->type == CP2P_DNS_TYPE_PTR)) ||
            (cp2p_dns_name_equal(&q->name, &e->instance) &&
             (any || q->type == CP2P_DNS_TYPE_TXT || q->type == CP2P_DNS_TYPE_SRV)) ||
            (cp2p_dns_name_equal(&q->name, &e->host) &&
             (any || q->type == CP2P_DNS_TYPE_A || q->type == CP2P_DNS_TYPE_AAAA));
        int is_meta = cp2p_dns_name_equal(&q->name, &e->meta) && (any || q->type == CP2P_DNS_TYPE_PTR);
        if ((about_us || is_meta) && !class_ok(q->cls))
            return CP2P_EPROTO;
        want |= about_us | is_meta;
        meta |= is_meta;
    }
    if (!want)
        return 0;
    note_querier(e, src, src_len, now);
    /* Too soon after our last answer on this link (our own query, looped
     * back, is answered too): the answer waits for the second to pass. */
    if (e->last_reply[link] && now + 1 - e->last_reply[link] < MIN_REPLY_GAP_MS) {
        e->deferred[link] |= (uint8_t)(1 | (meta ? 2 : 0));
        return 0;
    }
    int rc = build_response(e, e->ttl_s, meta, reply);
    if (rc == CP2P_ENOTFOUND)
        return 0;
    if (!rc)
        e->last_reply[link] = now + 1;
    return rc;
}

uint64_t cp2p_mdns_engine_deferred_due(const cp2p_mdns_engine_t *e)
{
    uint64_t due = UINT64_MAX;
    for (unsigned i = 0; i < CP2P_MDNS_MAX_LINKS; i++)
        if (e->deferred[i] && e->last_reply[i] - 1 + MIN_REPLY_GAP_MS < due)
            due = e->last_reply[i] - 1 + MIN_REPLY_GAP_MS;
    return due;
}

int cp2p_mdns_engine_deferred(cp2p_mdns_engine_t *e, unsigned link, uint64_t now,
                              cp2p_buf_t *reply)
{
    if (link >= CP2P_MDNS_MAX_LINKS || !e->deferred[link] ||
        now + 1 - e->last_reply[link] < MIN_REPLY_GAP_MS)
        return 0;
    int meta = e->deferred[link] & 2;
    e->deferred[link] = 0;
    int rc = build_response(e, e->ttl_s, meta, reply);
    if (rc)
        return rc == CP2P_ENOTFOUND ? 0 : rc;
    e->last_reply[link] = now + 1;
    return 1;
}

static tracked_t *find_tracked(cp2p_mdns_engine_t *e, const cp2p_peer_id_t *peer,
                               const cp2p_multiaddr_t *addr)
{
    for (size_t i = 0; i < e->ntracked; i++)
        if (cp2p_peer_id_equal(&e->tracked[i].peer, peer) && cp2p_multiaddr_equal(&e->tracked[i].addr, addr))
            return &e->tracked[i];
    return NULL;
}

/* Takes f->addr. */
/* 1 if the table may take one more entry for this peer from this sender:
 * one peer, or one sender making up peers, cannot take the whole table and
 * hide the others. */
static int share_left(cp2p_mdns_engine_t *e, const cp2p_peer_id_t *peer, const uint8_t *src,
                      size_t src_len)
{
    size_t of_peer = 0, of_src = 0;
    for (size_t i = 0; i < e->ntracked; i++) {
        const tracked_t *t = &e->tracked[i];
        of_peer += cp2p_peer_id_equal(&t->peer, peer);
        of_src += src_len && t->src_len == src_len && !memcmp(t->src, src, src_len);
    }
    return of_peer < CP2P_MDNS_MAX_PER_PEER && of_src < CP2P_MDNS_MAX_PER_SOURCE;
}

static void apply(cp2p_mdns_engine_t *e, found_t *f, uint64_t now, const uint8_t *src,
                  size_t src_len)
{
    tracked_t *t = find_tracked(e, &f->peer, &f->addr);
    if (t) {
        if (f->ttl == 0) {
            if (t->expires > now + GOODBYE_GRACE_MS)
                t->expires = now + GOODBYE_GRACE_MS;
        } else {
            t->expires = now + (uint64_t)f->ttl * 1000;
            if (e->fn)
                e->fn(CP2P_MDNS_ENGINE_REFRESHED, &t->peer, &t->addr, f->ttl, e->arg);
        }
        cp2p_multiaddr_free(&f->addr);
        return;
    }
    if (f->ttl == 0 || e->ntracked >= CP2P_MDNS_MAX_TRACKED ||
        !share_left(e, &f->peer, src, src_len)) {
        if (f->ttl) {
            e->stats.over_limit++;
            cp2p_log_debug(LOG, "tracking %zu addresses already: one more ignored", e->ntracked);
        }
        cp2p_multiaddr_free(&f->addr);
        return;
    }
    if (!e->tracked && !(e->tracked = malloc(CP2P_MDNS_MAX_TRACKED * sizeof *e->tracked))) {
        cp2p_multiaddr_free(&f->addr);
        return;
    }
    t = &e->tracked[e->ntracked++];
    t->peer = f->peer;
    t->addr = f->addr;
    t->src_len = src_len <= CP2P_MDNS_MAX_SOURCE ? (uint8_t)src_len : 0;
    if (t->src_len)
        memcpy(t->src, src, t->src_len);
    t->expires = now + (uint64_t)f->ttl * 1000;
    f->addr = (cp2p_multiaddr_t){0};
    e->stats.discovered++;
    if (e->fn)
        e->fn(CP2P_MDNS_ENGINE_DISCOVERED, &t->peer, &t->addr, f->ttl, e->arg);
}

/* "dnsaddr=<multiaddr ending in /p2p/<id>>" into f; 1 if it is one of ours
 * or not a dnsaddr at all (skip it), 0 if f is filled, <0 if it is wrong. */
static int read_dnsaddr(const cp2p_mdns_engine_t *e, const uint8_t *s, size_t len, found_t *f)
{
    size_t pl = strlen(DNSADDR);
    if (len < pl || memcmp(s, DNSADDR, pl) != 0)
        return 1;
    char text[256];
    memcpy(text, s + pl, len - pl);
    text[len - pl] = 0;
    cp2p_multiaddr_t ma;
    if (cp2p_multiaddr_parse(text, &ma))
        return CP2P_EPROTO;
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c, last = {0};
    cp2p_multiaddr_iter_init(&it, &ma);
    while (cp2p_multiaddr_iter_next(&it, &c))
        last = c;
    int rc = CP2P_EPROTO;
    if (last.code == CP2P_MA_P2P && cp2p_peer_id_from_bytes(last.value, last.value_len, &f->peer) == 0 &&
        cp2p_multiaddr_decapsulate_code(&ma, CP2P_MA_P2P) == 0 && ma.len > 0)
        rc = cp2p_peer_id_equal(&f->peer, &e->self) ? 1 : 0;
    if (rc == 0)
        f->addr = ma;
    else
        cp2p_multiaddr_free(&ma);
    return rc;
}

/* 1 if a PTR record of our service in m points to name: the instance the
 * records of that name describe, wherever the name is. */
static int service_points_to(const cp2p_mdns_engine_t *e, const cp2p_dns_msg_t *m,
                             const cp2p_dns_name_t *name)
{
    for (size_t i = 0; i < m->nan + m->nns + m->nar; i++) {
        const cp2p_dns_rr_t *rr = &m->rr[i];
        if (rr->type == CP2P_DNS_TYPE_PTR && cp2p_dns_name_equal(&rr->name, &e->service) &&
            cp2p_dns_name_equal(&rr->target, name))
            return 1;
    }
    return 0;
}

/* 1 if the datagram came from a loopback address (127/8, ::1, ::ffff:127/104). */
static int loopback_source(const uint8_t *src, size_t len)
{
    static const uint8_t lo6[16] = {[15] = 1}, mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (len == 6)
        return src[0] == 127;
    return len == 18 && (!memcmp(src, lo6, 16) || (!memcmp(src, mapped, 12) && src[12] == 127));
}

/* 1 if addr starts with a loopback IP address. */
static int loopback_addr(const cp2p_multiaddr_t *addr)
{
    static const uint8_t lo6[16] = {[15] = 1};
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c;
    cp2p_multiaddr_iter_init(&it, addr);
    if (!cp2p_multiaddr_iter_next(&it, &c))
        return 0;
    return (c.code == CP2P_MA_IP4 && c.value_len == 4 && c.value[0] == 127) ||
           (c.code == CP2P_MA_IP6 && c.value_len == 16 && !memcmp(c.value, lo6, 16));
}

/* Every TXT record of an instance of our service, whichever section it is
 * in: js-libp2p puts them in the answers, the spec and rust-libp2p in the
 * additional records; go-libp2p packs all addresses into one record. An
 * instance is a name one label under the service name (the spec's
 * <peer-name>.<service-name>), or any name a PTR record of the service in
 * the same packet points to, as DNS-SD follows it: rust-libp2p 0.57 names
 * its instance <peer-name>. alone. Loopback addresses from a host that is
 * not on loopback (go-libp2p and js-libp2p announce theirs) would lead to
 * ourselves: they are left out, unless loopback is on. */
static int on_response(cp2p_mdns_engine_t *e, const cp2p_dns_msg_t *m, uint64_t now,
                       const uint8_t *src, size_t src_len)
{
    found_t *found = NULL;
    size_t nfound = 0;
    int rc = 0;
    /* With loopback on, the user runs peers on this host and wants their
     * loopback addresses whatever source address the kernel gave the
     * datagram (multicast over lo may leave from the host's own address). */
    int remote = !e->loopback && src_len && !loopback_source(src, src_len);
    for (size_t i = 0; i < m->nan + m->nns + m->nar && !rc; i++) {
        const cp2p_dns_rr_t *rr = &m->rr[i];
        const uint8_t *label;
        size_t llen;
        if (rr->type != CP2P_DNS_TYPE_TXT)
            continue;
        if (cp2p_dns_name_child_label(&rr->name, &e->service, &label, &llen)) {
            if (llen == strlen(e->peer_name) && !strncasecmp((const char *)label, e->peer_name, llen))
                continue; /* our own response, looped back */
        } else if (!service_points_to(e, m, &rr->name)) {
            continue;
        }
        if (rr->cls != CP2P_DNS_CLASS_IN) {
            rc = CP2P_EPROTO;
            break;
        }
        size_t off = 0, len;
        const uint8_t *s;
        while (!rc && nfound < MAX_FOUND && cp2p_dns_txt_next(rr, &off, &s, &len)) {
            if (!found && !(found = malloc(MAX_FOUND * sizeof *found))) {
                rc = CP2P_ENOMEM;
                break;
            }
            int r = read_dnsaddr(e, s, len, &found[nfound]);
            if (r < 0)
                rc = r;
            else if (r == 0 && remote && loopback_addr(&found[nfound].addr))
                cp2p_multiaddr_free(&found[nfound].addr);
            else if (r == 0)
                found[nfound++].ttl = rr->ttl;
        }
    }
    for (size_t i = 0; i < nfound; i++) {
        if (rc)
            cp2p_multiaddr_free(&found[i].addr);
        else
            apply(e, &found[i], now, src, src_len);
    }
    free(found);
    return rc;
}

int cp2p_mdns_engine_input(cp2p_mdns_engine_t *e, unsigned link, const uint8_t *src,
                           size_t src_len, const uint8_t *p, size_t n, uint64_t now_ms,
                           cp2p_buf_t *reply)
{
    if (!e || link >= CP2P_MDNS_MAX_LINKS || (!p && n) || !reply)
        return CP2P_EINVAL;
    e->stats.rx_packets++;
    cp2p_dns_msg_t m;
    int rc = cp2p_dns_decode(p, n, &m);
    if (rc) {
        e->stats.rx_malformed++;
        cp2p_log_debug(LOG, "dropped a malformed packet of %zu bytes: %s", n, cp2p_strerror(rc));
        return rc;
    }
    /* RFC 6762 18.3 and 18.11: other opcodes and rcodes are to be ignored. */
    if (CP2P_DNS_OPCODE(m.flags) || CP2P_DNS_RCODE(m.flags)) {
        e->stats.rx_malformed++;
        cp2p_dns_msg_free(&m);
        return CP2P_EUNSUPPORTED;
    }
    if (m.flags & CP2P_DNS_FLAG_QR)
        rc = on_response(e, &m, now_ms, src, src_len);
    else
        rc = on_query(e, link, &m, now_ms, src, src_len, reply);
    cp2p_dns_msg_free(&m);
    if (rc == CP2P_EPROTO) {
        e->stats.rx_rejected++;
        cp2p_log_debug(LOG, "dropped a packet with a bad record for our service");
    }
    return rc;
}

uint64_t cp2p_mdns_engine_expire(cp2p_mdns_engine_t *e, uint64_t now_ms)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < e->ntracked;) {
        if (e->tracked[i].expires > now_ms) {
            if (e->tracked[i].expires < next)
                next = e->tracked[i].expires;
            i++;
            continue;
        }
        /* Out of the table before the callback, which may look at it. */
        tracked_t t = e->tracked[i];
        e->tracked[i] = e->tracked[--e->ntracked];
        e->stats.expired++;
        if (e->fn)
            e->fn(CP2P_MDNS_ENGINE_EXPIRED, &t.peer, &t.addr, 0, e->arg);
        cp2p_multiaddr_free(&t.addr);
    }
    return next;
}
