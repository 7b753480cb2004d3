/* The peerstore: addresses with TTLs, keys, protocols and versions of known
 * peers, bounded, with least-recently-seen eviction (no spec; the address TTLs
 * follow go-libp2p's and js-libp2p's peerstore). */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cp2p/error.h"
#include "cp2p/log.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"

/* Longer than any sane address (a DNS name is at most 255 bytes); bounds what
 * a remote can make us store per peer. */
#define MAX_ADDR_LEN 512

typedef struct addr {
    uint8_t *bytes;
    size_t len;
    uint64_t ttl;
    uint64_t expires; /* UINT64_MAX: never */
    uint64_t stamp;   /* when added or raised to a better source: newer is larger */
    uint8_t src;      /* cp2p_addr_source_t */
} addr_t;

typedef struct peer {
    cp2p_peer_id_t id;
    struct peer *hnext;
    struct peer *newer, *older; /* the recency list */
    addr_t *addrs;
    size_t n_addrs;
    cp2p_pubkey_t *key;
    char **protocols;
    size_t n_protocols;
    char *agent_version;
    char *protocol_version;
    uint8_t *record;
    size_t record_len;
    uint64_t record_seq;
} peer_t;

struct cp2p_peerstore {
    size_t max_peers;
    size_t count;
    size_t mask; /* buckets - 1 */
    peer_t **buckets;
    peer_t *newest, *oldest;
    uint64_t seed; /* random, so remote-chosen peer IDs cannot aim at one bucket */
    uint64_t stamp;
};

static size_t bucket_of(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *id)
{
    uint64_t h = 1469598103934665603ULL ^ ps->seed;
    for (size_t i = 0; i < id->len; i++)
        h = (h ^ id->bytes[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29)) & ps->mask;
}

static int id_equal(const cp2p_peer_id_t *a, const cp2p_peer_id_t *b)
{
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static peer_t *lookup(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *id)
{
    if (!id || id->len == 0 || id->len > CP2P_PEER_ID_MAX)
        return NULL;
    for (peer_t *p = ps->buckets[bucket_of(ps, id)]; p; p = p->hnext)
        if (id_equal(&p->id, id))
            return p;
    return NULL;
}

static void list_unlink(cp2p_peerstore_t *ps, peer_t *p)
{
    if (p->newer)
        p->newer->older = p->older;
    else
        ps->newest = p->older;
    if (p->older)
        p->older->newer = p->newer;
    else
        ps->oldest = p->newer;
    p->newer = p->older = NULL;
}

static void list_push_newest(cp2p_peerstore_t *ps, peer_t *p)
{
    p->older = ps->newest;
    p->newer = NULL;
    if (ps->newest)
        ps->newest->newer = p;
    ps->newest = p;
    if (!ps->oldest)
        ps->oldest = p;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void peer_free(peer_t *p)
{
    for (size_t i = 0; i < p->n_addrs; i++)
        free(p->addrs[i].bytes);
    free(p->addrs);
    cp2p_pubkey_free(p->key);
    free_strings(p->protocols, p->n_protocols);
    free(p->agent_version);
    free(p->protocol_version);
    free(p->record);
    free(p);
}

static void drop(cp2p_peerstore_t *ps, peer_t *p)
{
    peer_t **pp = &ps->buckets[bucket_of(ps, &p->id)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    list_unlink(ps, p);
    ps->count--;
    peer_free(p);
}

/* Find or create the peer and mark it the most recently seen. */
static peer_t *seen(cp2p_peerstore_t *ps, const cp2p_peer_id_t *id)
{
    if (!id || id->len == 0 || id->len > CP2P_PEER_ID_MAX)
        return NULL;
    peer_t *p = lookup(ps, id);
    if (p) {
        list_unlink(ps, p);
        list_push_newest(ps, p);
        return p;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id = *id;
    if (ps->count >= ps->max_peers) {
        cp2p_log_debug("peerstore", "full (%zu peers): evicting the least recently seen",
                       ps->count);
        drop(ps, ps->oldest);
    }
    size_t b = bucket_of(ps, id);
    p->hnext = ps->buckets[b];
    ps->buckets[b] = p;
    list_push_newest(ps, p);
    ps->count++;
    return p;
}

int cp2p_peerstore_new(size_t max_peers, cp2p_peerstore_t **out)
{
    cp2p_peerstore_t *ps = calloc(1, sizeof *ps);
    if (!ps)
        return CP2P_ENOMEM;
    ps->max_peers = max_peers ? max_peers : CP2P_PEERSTORE_DEFAULT_MAX_PEERS;
    size_t nb = 16;
    while (nb < ps->max_peers && nb < (1u << 16))
        nb <<= 1;
    ps->mask = nb - 1;
    ps->buckets = calloc(nb, sizeof *ps->buckets);
    if (!ps->buckets || RAND_bytes((unsigned char *)&ps->seed, sizeof ps->seed) != 1) {
        free(ps->buckets);
        free(ps);
        return CP2P_ENOMEM;
    }
    *out = ps;
    return 0;
}

void cp2p_peerstore_free(cp2p_peerstore_t *ps)
{
    if (!ps)
        return;
    while (ps->oldest)
        drop(ps, ps->oldest);
    free(ps->buckets);
    free(ps);
}

size_t cp2p_peerstore_count(const cp2p_peerstore_t *ps)
{
    return ps->count;
}

size_t cp2p_peerstore_peers(const cp2p_peerstore_t *ps, cp2p_peer_id_t *out, size_t cap)
{
    size_t i = 0;
    for (const peer_t *p = ps->newest; p && i < cap; p = p->older)
        out[i++] = p->id;
    return ps->count;
}

int cp2p_peerstore_touch(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer)
{
    return seen(ps, peer) ? 0 : CP2P_EINVAL;
}

int cp2p_peerstore_remove(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer)
{
    peer_t *p = lookup(ps, peer);
    if (!p)
        return CP2P_ENOTFOUND;
    drop(ps, p);
    return 0;
}

/* --- addresses --- */

static uint64_t expiry(uint64_t ttl, uint64_t now)
{
    if (ttl >= CP2P_TTL_CONNECTED || ttl > UINT64_MAX - now)
        return UINT64_MAX;
    return now + ttl;
}

static addr_t *find_addr(peer_t *p, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < p->n_addrs; i++)
        if (p->addrs[i].len == n && memcmp(p->addrs[i].bytes, b, n) == 0)
            return &p->addrs[i];
    return NULL;
}

static void remove_addr(peer_t *p, addr_t *a)
{
    free(a->bytes);
    *a = p->addrs[--p->n_addrs];
}

static void purge_expired(peer_t *p, uint64_t now)
{
    for (size_t i = p->n_addrs; i-- > 0;)
        if (p->addrs[i].expires <= now)
            remove_addr(p, &p->addrs[i]);
}

/* Room for a newcomer from src: 0 with *v NULL if there is room, 0 with *v
 * the address it displaces (the worst source, then the oldest; third-party
 * addresses also make room among themselves past their own limit), or
 * CP2P_ELIMIT if every address comes from a better source. */
static int make_room(peer_t *p, uint8_t src, addr_t **v)
{
    size_t third = 0;
    for (size_t i = 0; i < p->n_addrs; i++)
        third += p->addrs[i].src == CP2P_ADDR_THIRD_PARTY;
    *v = NULL;
    if (p->n_addrs < CP2P_PEERSTORE_MAX_ADDRS &&
        (src != CP2P_ADDR_THIRD_PARTY || third < CP2P_PEERSTORE_MAX_THIRD_PARTY_ADDRS))
        return 0;
    for (size_t i = 0; i < p->n_addrs; i++) {
        addr_t *a = &p->addrs[i];
        if (a->src <= src && (!*v || a->src < (*v)->src ||
                              (a->src == (*v)->src && a->stamp < (*v)->stamp)))
            *v = a;
    }
    return *v ? 0 : CP2P_ELIMIT;
}

static int append_addr(cp2p_peerstore_t *ps, peer_t *p, const uint8_t *b, size_t n,
                       uint64_t ttl, uint64_t now, uint8_t src)
{
    if (p->n_addrs == CP2P_PEERSTORE_MAX_ADDRS)
        purge_expired(p, now);
    addr_t *v;
    if (make_room(p, src, &v) < 0)
        return CP2P_ELIMIT;
    if (!p->addrs) {
        p->addrs = calloc(CP2P_PEERSTORE_MAX_ADDRS, sizeof *p->addrs);
        if (!p->addrs)
            return CP2P_ENOMEM;
    }
    uint8_t *copy = malloc(n);
    if (!copy)
        return CP2P_ENOMEM;
    memcpy(copy, b, n);
    if (v)
        remove_addr(p, v);
    p->addrs[p->n_addrs++] = (addr_t){copy, n, ttl, expiry(ttl, now), ++ps->stamp, src};
    return 0;
}

/* How long the address b[0..len) is as kept for peer: a trailing /p2p/<peer>
 * says nothing more and is cut (as go-libp2p's address book does), so that
 * one address is one entry however it was written (rust-libp2p sends the
 * addresses it dialed with /p2p/<id> appended, others without); 0 when it
 * ends in /p2p/ of another peer, which is not an address of this one, or is
 * nothing but /p2p/<peer>. */
static size_t own_form(const cp2p_peer_id_t *peer, const uint8_t *b, size_t len)
{
    cp2p_multiaddr_t ma = {(uint8_t *)b, len};
    cp2p_multiaddr_iter_t it;
    cp2p_multiaddr_component_t c, last = {0};
    cp2p_multiaddr_iter_init(&it, &ma);
    while (cp2p_multiaddr_iter_next(&it, &c))
        last = c;
    if (!last.raw || last.code != CP2P_MA_P2P)
        return len;
    if (last.value_len != peer->len || memcmp(last.value, peer->bytes, peer->len))
        return 0;
    return (size_t)(last.raw - b);
}

static int put_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                     const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl, uint64_t now,
                     int exact, uint8_t src)
{
    if (n && !addrs)
        return CP2P_EINVAL;
    if (src < CP2P_ADDR_THIRD_PARTY || src > CP2P_ADDR_CONFIRMED)
        return CP2P_EINVAL;
    peer_t *p = seen(ps, peer);
    if (!p)
        return peer ? CP2P_ENOMEM : CP2P_EINVAL;
    uint64_t exp = expiry(ttl, now);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = addrs[i].bytes;
        size_t len = addrs[i].len;
        if (!b || len == 0 || len > MAX_ADDR_LEN || !(len = own_form(peer, b, len)))
            continue;
        addr_t *a = find_addr(p, b, len);
        if (a && exact && ttl == 0) {
            remove_addr(p, a);
            continue;
        }
        if (a && src > a->src) {
            a->src = src;
            a->stamp = ++ps->stamp;
        }
        if (a && (exact || exp > a->expires)) {
            a->ttl = ttl;
            a->expires = exp;
        } else if (!a && ttl > 0) {
            int rc = append_addr(ps, p, b, len, ttl, now, src);
            if (rc == CP2P_ENOMEM)
                return rc;
            if (rc)
                cp2p_log_debug("peerstore", "address limit reached, dropping an address");
        }
    }
    return 0;
}

int cp2p_peerstore_add_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                             const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                             uint64_t now_ms)
{
    return put_addrs(ps, peer, addrs, n, ttl_ms, now_ms, 0, CP2P_ADDR_CLAIMED);
}

int cp2p_peerstore_add_addrs_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                  const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                                  uint64_t now_ms, cp2p_addr_source_t src)
{
    return put_addrs(ps, peer, addrs, n, ttl_ms, now_ms, 0, (uint8_t)src);
}

int cp2p_peerstore_set_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                             const cp2p_multiaddr_t *addrs, size_t n, uint64_t ttl_ms,
                             uint64_t now_ms)
{
    return put_addrs(ps, peer, addrs, n, ttl_ms, now_ms, 1, CP2P_ADDR_CLAIMED);
}

int cp2p_peerstore_update_addrs_ttl(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                    uint64_t old_ttl, uint64_t new_ttl, uint64_t now_ms)
{
    return cp2p_peerstore_update_addrs_ttl_from(ps, peer, CP2P_ADDR_ANY, old_ttl, new_ttl,
                                                now_ms);
}

int cp2p_peerstore_update_addrs_ttl_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                         cp2p_addr_source_t src, uint64_t old_ttl,
                                         uint64_t new_ttl, uint64_t now_ms)
{
    peer_t *p = lookup(ps, peer);
    if (!p)
        return CP2P_ENOTFOUND;
    for (size_t i = p->n_addrs; i-- > 0;) {
        addr_t *a = &p->addrs[i];
        if (a->ttl != old_ttl || (src != CP2P_ADDR_ANY && a->src != src))
            continue;
        if (new_ttl == 0) {
            remove_addr(p, a);
        } else {
            a->ttl = new_ttl;
            a->expires = expiry(new_ttl, now_ms);
        }
    }
    return 0;
}

static int better(const addr_t *a, const addr_t *b)
{
    return a->src != b->src ? a->src > b->src : a->stamp > b->stamp;
}

size_t cp2p_peerstore_addrs_from(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                 uint64_t now_ms, cp2p_addr_source_t min_src,
                                 cp2p_multiaddr_t *out, size_t cap)
{
    peer_t *p = lookup(ps, peer);
    if (!p)
        return 0;
    /* Best first: an insertion sort of at most CP2P_PEERSTORE_MAX_ADDRS. */
    const addr_t *v[CP2P_PEERSTORE_MAX_ADDRS];
    size_t total = 0;
    for (size_t i = 0; i < p->n_addrs; i++) {
        const addr_t *a = &p->addrs[i];
        if (a->expires <= now_ms || a->src < min_src)
            continue;
        size_t j = total++;
        for (; j > 0 && better(a, v[j - 1]); j--)
            v[j] = v[j - 1];
        v[j] = a;
    }
    for (size_t i = 0; i < total && i < cap; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].bytes = v[i]->bytes;
        out[i].len = v[i]->len;
    }
    return total;
}

size_t cp2p_peerstore_addrs(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer, uint64_t now_ms,
                            cp2p_multiaddr_t *out, size_t cap)
{
    return cp2p_peerstore_addrs_from(ps, peer, now_ms, CP2P_ADDR_ANY, out, cap);
}

void cp2p_peerstore_expire(cp2p_peerstore_t *ps, uint64_t now_ms)
{
    for (peer_t *p = ps->newest; p; p = p->older)
        purge_expired(p, now_ms);
}

/* --- key, protocols, versions, record --- */

int cp2p_peerstore_set_pubkey(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                              const cp2p_pubkey_t *k)
{
    if (!k || !peer)
        return CP2P_EINVAL;
    if (!cp2p_peer_id_matches_pubkey(peer, k))
        return CP2P_EPEERID;
    peer_t *p = seen(ps, peer);
    if (!p)
        return CP2P_ENOMEM;
    if (p->key)
        return 0; /* the key of a peer ID never changes */
    return cp2p_pubkey_dup(k, &p->key);
}

const cp2p_pubkey_t *cp2p_peerstore_pubkey(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer)
{
    const peer_t *p = lookup(ps, peer);
    return p ? p->key : NULL;
}

static int valid_string(const char *s)
{
    return s && s[0] && strnlen(s, CP2P_PEERSTORE_MAX_STRING) < CP2P_PEERSTORE_MAX_STRING;
}

int cp2p_peerstore_set_protocols(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                 const char *const *protocols, size_t n)
{
    if (n > CP2P_PEERSTORE_MAX_PROTOCOLS)
        return CP2P_ELIMIT;
    for (size_t i = 0; i < n; i++)
        if (!valid_string(protocols[i]))
            return CP2P_EINVAL;
    char **v = n ? calloc(n, sizeof *v) : NULL;
    if (n && !v)
        return CP2P_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i] = strdup(protocols[i]);
        if (!v[i]) {
            free_strings(v, i);
            return CP2P_ENOMEM;
        }
    }
    peer_t *p = seen(ps, peer);
    if (!p) {
        free_strings(v, n);
        return peer ? CP2P_ENOMEM : CP2P_EINVAL;
    }
    free_strings(p->protocols, p->n_protocols);
    p->protocols = v;
    p->n_protocols = n;
    return 0;
}

size_t cp2p_peerstore_protocols(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                const char **out, size_t cap)
{
    const peer_t *p = lookup(ps, peer);
    if (!p)
        return 0;
    for (size_t i = 0; i < p->n_protocols && i < cap; i++)
        out[i] = p->protocols[i];
    return p->n_protocols;
}

int cp2p_peerstore_supports(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                            const char *protocol)
{
    const peer_t *p = lookup(ps, peer);
    for (size_t i = 0; p && protocol && i < p->n_protocols; i++)
        if (strcmp(p->protocols[i], protocol) == 0)
            return 1;
    return 0;
}

static int set_string(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer, const char *s,
                      int agent)
{
    if (!valid_string(s))
        return CP2P_EINVAL;
    char *copy = strdup(s);
    peer_t *p = copy ? seen(ps, peer) : NULL;
    if (!p) {
        free(copy);
        return peer ? CP2P_ENOMEM : CP2P_EINVAL;
    }
    char **slot = agent ? &p->agent_version : &p->protocol_version;
    free(*slot);
    *slot = copy;
    return 0;
}

int cp2p_peerstore_set_agent_version(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                     const char *s)
{
    return set_string(ps, peer, s, 1);
}

int cp2p_peerstore_set_protocol_version(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                        const char *s)
{
    return set_string(ps, peer, s, 0);
}

const char *cp2p_peerstore_agent_version(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer)
{
    const peer_t *p = lookup(ps, peer);
    return p ? p->agent_version : NULL;
}

const char *cp2p_peerstore_protocol_version(const cp2p_peerstore_t *ps,
                                            const cp2p_peer_id_t *peer)
{
    const peer_t *p = lookup(ps, peer);
    return p ? p->protocol_version : NULL;
}

int cp2p_peerstore_set_record(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                              const uint8_t *envelope, size_t n, uint64_t seq)
{
    if (!envelope || n == 0 || n > CP2P_PEERSTORE_MAX_RECORD)
        return CP2P_EINVAL;
    peer_t *p = lookup(ps, peer);
    if (p && p->record && p->record_seq >= seq)
        return CP2P_EEXIST;
    uint8_t *copy = malloc(n);
    if (!copy)
        return CP2P_ENOMEM;
    memcpy(copy, envelope, n);
    p = seen(ps, peer);
    if (!p) {
        free(copy);
        return peer ? CP2P_ENOMEM : CP2P_EINVAL;
    }
    free(p->record);
    p->record = copy;
    p->record_len = n;
    p->record_seq = seq;
    return 0;
}

const uint8_t *cp2p_peerstore_record(const cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                                     size_t *n, uint64_t *seq)
{
    const peer_t *p = lookup(ps, peer);
    *n = p && p->record ? p->record_len : 0;
    if (seq)
        *seq = p && p->record ? p->record_seq : 0;
    return p ? p->record : NULL;
}
