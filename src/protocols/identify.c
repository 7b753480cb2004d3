/* Identify and Identify Push, /ipfs/id/1.0.0 and /ipfs/id/push/1.0.0 (libp2p
 * specs identify/README.md): the message codec and its wiring into a host. */
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "cp2p/envelope.h"
#include "cp2p/error.h"
#include "cp2p/identify.h"
#include "cp2p/log.h"
#include "cp2p/multiaddr.h"
#include "cp2p/peerstore.h"
#include "cp2p/varint.h"
#include "host/host_priv.h"
#include "identify.pb-c.h"

/* --- codec --- */

static int set_str(char **dst, const char *src)
{
    char *c = strdup(src);
    if (!c)
        return CP2P_ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int set_bytes(uint8_t **dst, size_t *dst_len, const ProtobufCBinaryData *src)
{
    uint8_t *c = malloc(src->len ? src->len : 1);
    if (!c)
        return CP2P_ENOMEM;
    if (src->len)
        memcpy(c, src->data, src->len);
    free(*dst);
    *dst = c;
    *dst_len = src->len;
    return 0;
}

static int merge(cp2p_identify_msg_t *m, const Identify__Pb__Identify *pb)
{
    int rc = 0;
    if (pb->protocolversion)
        rc = set_str(&m->protocol_version, pb->protocolversion);
    if (!rc && pb->agentversion)
        rc = set_str(&m->agent_version, pb->agentversion);
    if (!rc && pb->has_publickey)
        rc = set_bytes(&m->public_key, &m->public_key_len, &pb->publickey);
    if (!rc && pb->has_observedaddr)
        rc = set_bytes(&m->observed_addr, &m->observed_addr_len, &pb->observedaddr);
    if (!rc && pb->has_signedpeerrecord)
        rc = set_bytes(&m->signed_peer_record, &m->signed_peer_record_len, &pb->signedpeerrecord);
    if (rc)
        return rc;

    if (m->n_listen_addrs + pb->n_listenaddrs > CP2P_IDENTIFY_MAX_ADDRS ||
        m->n_protocols + pb->n_protocols > CP2P_IDENTIFY_MAX_PROTOCOLS)
        return CP2P_ELIMIT;
    if (pb->n_listenaddrs) {
        size_t n = m->n_listen_addrs + pb->n_listenaddrs;
        uint8_t **a = realloc(m->listen_addrs, n * sizeof *a);
        if (!a)
            return CP2P_ENOMEM;
        m->listen_addrs = a;
        size_t *l = realloc(m->listen_addr_lens, n * sizeof *l);
        if (!l)
            return CP2P_ENOMEM;
        m->listen_addr_lens = l;
        for (size_t i = 0; i < pb->n_listenaddrs; i++) {
            size_t k = m->n_listen_addrs;
            a[k] = NULL;
            if (set_bytes(&a[k], &l[k], &pb->listenaddrs[i]))
                return CP2P_ENOMEM;
            m->n_listen_addrs++;
        }
    }
    if (pb->n_protocols) {
        char **p = realloc(m->protocols, (m->n_protocols + pb->n_protocols) * sizeof *p);
        if (!p)
            return CP2P_ENOMEM;
        m->protocols = p;
        for (size_t i = 0; i < pb->n_protocols; i++) {
            p[m->n_protocols] = strdup(pb->protocols[i]);
            if (!p[m->n_protocols])
                return CP2P_ENOMEM;
            m->n_protocols++;
        }
    }
    return 0;
}

int cp2p_identify_decode(const uint8_t *p, size_t n, cp2p_identify_msg_t *out)
{
    memset(out, 0, sizeof *out);
    if (n > CP2P_IDENTIFY_MAX_TOTAL)
        return CP2P_EOVERFLOW;
    if (n == 0)
        return CP2P_ETRUNC;
    size_t off = 0;
    int rc = 0;
    for (int count = 0; off < n && !rc; count++) {
        uint64_t len;
        int h = cp2p_uvarint_decode(p + off, n - off, &len);
        if (h < 0) {
            rc = h;
            break;
        }
        off += (size_t)h;
        if (count == CP2P_IDENTIFY_MAX_MESSAGES)
            rc = CP2P_ELIMIT;
        else if (len > CP2P_IDENTIFY_MAX_MESSAGE)
            rc = CP2P_EOVERFLOW;
        else if (len > n - off)
            rc = CP2P_ETRUNC;
        if (rc)
            break;
        Identify__Pb__Identify *pb = identify__pb__identify__unpack(NULL, (size_t)len, p + off);
        if (!pb) {
            rc = CP2P_EPARSE;
            break;
        }
        rc = merge(out, pb);
        identify__pb__identify__free_unpacked(pb, NULL);
        off += (size_t)len;
    }
    if (rc)
        cp2p_identify_msg_free(out);
    return rc;
}

void cp2p_identify_msg_free(cp2p_identify_msg_t *m)
{
    free(m->protocol_version);
    free(m->agent_version);
    free(m->public_key);
    for (size_t i = 0; i < m->n_listen_addrs; i++)
        free(m->listen_addrs[i]);
    free(m->listen_addrs);
    free(m->listen_addr_lens);
    free(m->observed_addr);
    for (size_t i = 0; i < m->n_protocols; i++)
        free(m->protocols[i]);
    free(m->protocols);
    free(m->signed_peer_record);
    memset(m, 0, sizeof *m);
}

int cp2p_identify_encode(const cp2p_identify_msg_t *m, cp2p_buf_t *out)
{
    Identify__Pb__Identify pb = IDENTIFY__PB__IDENTIFY__INIT;
    ProtobufCBinaryData *addrs = NULL;
    if (m->n_listen_addrs) {
        addrs = calloc(m->n_listen_addrs, sizeof *addrs);
        if (!addrs)
            return CP2P_ENOMEM;
        for (size_t i = 0; i < m->n_listen_addrs; i++)
            addrs[i] = (ProtobufCBinaryData){m->listen_addr_lens[i], m->listen_addrs[i]};
    }
    pb.protocolversion = m->protocol_version;
    pb.agentversion = m->agent_version;
    pb.has_publickey = m->public_key != NULL;
    pb.publickey = (ProtobufCBinaryData){m->public_key_len, m->public_key};
    pb.n_listenaddrs = m->n_listen_addrs;
    pb.listenaddrs = addrs;
    pb.has_observedaddr = m->observed_addr != NULL;
    pb.observedaddr = (ProtobufCBinaryData){m->observed_addr_len, m->observed_addr};
    pb.n_protocols = m->n_protocols;
    pb.protocols = m->protocols;
    pb.has_signedpeerrecord = m->signed_peer_record != NULL;
    pb.signedpeerrecord = (ProtobufCBinaryData){m->signed_peer_record_len, m->signed_peer_record};

    size_t len = identify__pb__identify__get_packed_size(&pb);
    size_t before = out->len;
    int rc = cp2p_buf_append_uvarint(out, len);
    if (!rc)
        rc = cp2p_buf_reserve(out, len);
    if (!rc)
        out->len += identify__pb__identify__pack(&pb, out->data + out->len);
    else
        out->len = before;
    free(addrs);
    return rc;
}

/* --- the protocol on a host --- */

/* One remote message being read until EOF: the answer to our identify
 * request, or a push. */
typedef struct exchange {
    cp2p_identify_t *id; /* NULL once the identify state is gone */
    cp2p_stream_t *s;
    cp2p_buf_t buf;
    int push;
    struct exchange *prev, *next;
} exchange_t;

struct cp2p_identify {
    cp2p_host_t *h;
    char *agent_version;
    exchange_t *exchanges;
    uint64_t record_seq;
    /* The last record sealed and the addresses it holds (each as its length
     * and its bytes): a signature per connection was a fifth of the cost
     * of a connection, so a record is sealed again only when they change. */
    cp2p_buf_t record, record_addrs;
};

static const char *const ID_PROTO[] = {CP2P_IDENTIFY_PROTOCOL_ID};
static const char *const PUSH_PROTO[] = {CP2P_IDENTIFY_PUSH_PROTOCOL_ID};

static exchange_t *exchange_new(cp2p_identify_t *id, int push)
{
    exchange_t *ex = calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->id = id;
    ex->push = push;
    ex->next = id->exchanges;
    if (ex->next)
        ex->next->prev = ex;
    id->exchanges = ex;
    return ex;
}

static void exchange_unlink(exchange_t *ex)
{
    if (!ex->id)
        return;
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        ex->id->exchanges = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    ex->id = NULL;
    ex->prev = ex->next = NULL;
}

static void exchange_end(exchange_t *ex, int reset)
{
    exchange_unlink(ex);
    if (ex->s) {
        if (ex->buf.len)
            cp2p_stream_charge(ex->s, -(long)ex->buf.len);
        cp2p_stream_read_stop(ex->s);
        if (reset)
            cp2p_stream_reset(ex->s);
        cp2p_stream_unref(ex->s);
    }
    cp2p_buf_free(&ex->buf);
    free(ex);
}

/* Our addresses, signed. The seq is wall-clock time in milliseconds, as js and
 * go do, so that it grows across restarts too. The record is borrowed from id. */
static int seal_record(cp2p_identify_t *id, const cp2p_multiaddr_t *addrs, size_t n,
                       const cp2p_buf_t **out)
{
    if (n > CP2P_PEER_RECORD_MAX_ADDRS)
        n = CP2P_PEER_RECORD_MAX_ADDRS;
    cp2p_buf_t key = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = cp2p_buf_append(&key, &addrs[i].len, sizeof addrs[i].len);
        if (!rc)
            rc = cp2p_buf_append(&key, addrs[i].bytes, addrs[i].len);
    }
    if (!rc && id->record.len && key.len == id->record_addrs.len &&
        (!key.len || !memcmp(key.data, id->record_addrs.data, key.len))) {
        cp2p_buf_free(&key);
        *out = &id->record;
        return 0;
    }
    cp2p_peer_record_t r = {.peer_id = *cp2p_host_peer_id(id->h)};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r.seq = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (r.seq <= id->record_seq) /* two records in one millisecond, or the clock went back */
        r.seq = id->record_seq + 1;
    for (size_t i = 0; i < n && !rc; i++)
        rc = cp2p_peer_record_add_addr(&r, addrs[i].bytes, addrs[i].len);
    id->record.len = 0;
    if (!rc)
        rc = cp2p_peer_record_seal(cp2p_host_identity(id->h), &r, &id->record);
    uint64_t seq = r.seq;
    cp2p_peer_record_clear(&r);
    if (rc) {
        id->record.len = 0;
        cp2p_buf_free(&key);
        return rc;
    }
    id->record_seq = seq;
    cp2p_buf_free(&id->record_addrs);
    id->record_addrs = key;
    *out = &id->record;
    return 0;
}

/* Our message for the peer at the other end of conn (observedAddr is its
 * address as we see it). */
static int build_message(cp2p_identify_t *id, cp2p_conn_t *conn, cp2p_buf_t *out)
{
    cp2p_identify_msg_t m = {0};
    cp2p_buf_t key = {0};
    const cp2p_buf_t *record;
    cp2p_multiaddr_t *addrs = NULL;
    size_t n_addrs = 0;
    const char *protos[CP2P_IDENTIFY_MAX_PROTOCOLS];
    uint8_t *addr_ptrs[CP2P_IDENTIFY_MAX_ADDRS];
    size_t addr_lens[CP2P_IDENTIFY_MAX_ADDRS];

    int rc = cp2p_pubkey_marshal(cp2p_privkey_public(cp2p_host_identity(id->h)), &key);
    if (!rc)
        rc = cp2p_host_addrs(id->h, &addrs, &n_addrs);
    if (rc)
        goto done;
    m.protocol_version = CP2P_IDENTIFY_PROTOCOL_VERSION;
    m.agent_version = id->agent_version;
    m.public_key = key.data;
    m.public_key_len = key.len;
    for (size_t i = 0; i < n_addrs && m.n_listen_addrs < CP2P_IDENTIFY_MAX_ADDRS; i++) {
        addr_ptrs[m.n_listen_addrs] = addrs[i].bytes;
        addr_lens[m.n_listen_addrs++] = addrs[i].len;
    }
    m.listen_addrs = addr_ptrs;
    m.listen_addr_lens = addr_lens;
    const cp2p_multiaddr_t *observed = conn ? cp2p_conn_remote_addr(conn) : NULL;
    if (observed && observed->len) {
        m.observed_addr = observed->bytes;
        m.observed_addr_len = observed->len;
    }
    size_t np = cp2p_host_protocols(id->h, protos, CP2P_IDENTIFY_MAX_PROTOCOLS);
    m.protocols = (char **)protos;
    m.n_protocols = np < CP2P_IDENTIFY_MAX_PROTOCOLS ? np : CP2P_IDENTIFY_MAX_PROTOCOLS;
    /* No address, no record (as go-libp2p): js-libp2p takes a record's
     * addresses over what it knew, and an empty one would make it forget how
     * it reached us (a listener behind a relay, dialled at its circuit). */
    rc = n_addrs ? seal_record(id, addrs, n_addrs, &record) : 0;
    if (!rc) {
        if (n_addrs) {
            m.signed_peer_record = record->data;
            m.signed_peer_record_len = record->len;
        }
        rc = cp2p_identify_encode(&m, out);
    }
done:
    cp2p_multiaddr_array_free(addrs, n_addrs);
    cp2p_buf_free(&key);
    return rc;
}

/* After sending, wait for the remote to finish before letting the stream go;
 * whatever it sends is ignored. */
static void drain(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    if (status < 0)
        cp2p_stream_unref(s);
}

static void send_and_drain(cp2p_identify_t *id, cp2p_stream_t *s)
{
    cp2p_buf_t msg = {0};
    int rc = build_message(id, cp2p_stream_conn(s), &msg);
    if (!rc)
        rc = cp2p_stream_write(s, msg.data, msg.len, NULL, NULL);
    if (!rc)
        rc = cp2p_stream_close_write(s);
    if (!rc)
        rc = cp2p_stream_read_start(s, drain, NULL);
    cp2p_buf_free(&msg);
    if (rc < 0) {
        cp2p_log_info("identify", "resetting stream: cannot send our message: %s",
                      cp2p_strerror(rc));
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
    }
}

/* What the peer says of itself, as far as it fits the connection it came
 * over (cp2p_host_plausible_addrs). */
static void apply_addrs(cp2p_identify_t *id, const cp2p_peer_id_t *peer, const cp2p_conn_t *via,
                        uint8_t *const *bytes, const size_t *lens, size_t count, uint64_t now)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(id->h);
    cp2p_multiaddr_t addrs[CP2P_IDENTIFY_MAX_ADDRS], kept[CP2P_IDENTIFY_MAX_ADDRS];
    size_t n = 0;
    for (size_t i = 0; i < count && n < CP2P_IDENTIFY_MAX_ADDRS; i++)
        if (cp2p_multiaddr_from_bytes(bytes[i], lens[i], &addrs[n]) == 0)
            n++;
    if (n < count)
        cp2p_log_debug("identify", "ignored %zu invalid listen addresses", count - n);
    size_t k = cp2p_host_plausible_addrs(id->h, via, addrs, n, kept);
    /* The new list replaces what an earlier identify said; what a
     * connection confirmed stays. */
    cp2p_peerstore_update_addrs_ttl_from(ps, peer, CP2P_ADDR_CLAIMED, CP2P_TTL_CONNECTED, 0, now);
    cp2p_peerstore_add_addrs_from(ps, peer, kept, k, CP2P_TTL_CONNECTED, now, CP2P_ADDR_CLAIMED);
    for (size_t i = 0; i < n; i++)
        cp2p_multiaddr_free(&addrs[i]);
}

/* A valid signed peer record newer than the one we have is the better source
 * of addresses (it cannot be forged by whoever relays identify); an invalid
 * one is ignored. Returns 1 if the record's addresses were taken. */
static int apply_record(cp2p_identify_t *id, const cp2p_peer_id_t *peer, const cp2p_conn_t *via,
                        const cp2p_identify_msg_t *m, uint64_t now)
{
    /* The very record we hold (a reconnection) was verified when it came and
     * its seq is not newer: it would be refused below anyway, after the
     * signature check, which is what a connection costs most. */
    size_t held_len = 0;
    const uint8_t *held = cp2p_peerstore_record(cp2p_host_peerstore(id->h), peer, &held_len, NULL);
    if (held && held_len == m->signed_peer_record_len &&
        !memcmp(held, m->signed_peer_record, held_len))
        return 0;
    cp2p_peer_record_t r = {0};
    int rc = cp2p_peer_record_open(m->signed_peer_record, m->signed_peer_record_len, &r, NULL);
    if (!rc && !cp2p_peer_id_equal(&r.peer_id, peer))
        rc = CP2P_EPEERID;
    if (!rc)
        rc = cp2p_peerstore_set_record(cp2p_host_peerstore(id->h), peer, m->signed_peer_record,
                                       m->signed_peer_record_len, r.seq);
    if (!rc)
        apply_addrs(id, peer, via, r.addrs, r.addr_lens, r.n_addrs, now);
    else if (rc != CP2P_EEXIST)
        cp2p_log_info("identify", "ignoring an invalid signed peer record: %s", cp2p_strerror(rc));
    cp2p_peer_record_clear(&r);
    return rc == 0;
}

static void apply_protocols(cp2p_peerstore_t *ps, const cp2p_peer_id_t *peer,
                            const cp2p_identify_msg_t *m)
{
    const char *ok[CP2P_IDENTIFY_MAX_PROTOCOLS];
    size_t n = 0;
    for (size_t i = 0; i < m->n_protocols && n < CP2P_IDENTIFY_MAX_PROTOCOLS; i++) {
        size_t len = strnlen(m->protocols[i], CP2P_PEERSTORE_MAX_STRING);
        if (len > 0 && len < CP2P_PEERSTORE_MAX_STRING)
            ok[n++] = m->protocols[i];
    }
    cp2p_peerstore_set_protocols(ps, peer, ok, n);
}

/* A push carries what changed, so its absent fields are no news; an identify
 * answer is the whole truth. */
static int apply(cp2p_identify_t *id, const cp2p_peer_id_t *peer, const cp2p_conn_t *via,
                 const cp2p_identify_msg_t *m, int push)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(id->h);
    if (m->public_key) {
        cp2p_pubkey_t *k;
        int rc = cp2p_pubkey_unmarshal(m->public_key, m->public_key_len, &k);
        if (rc)
            return rc;
        rc = cp2p_peerstore_set_pubkey(ps, peer, k);
        cp2p_pubkey_free(k);
        if (rc)
            return rc; /* a key that is not the peer's own is a lie */
    }
    if (m->protocol_version)
        cp2p_peerstore_set_protocol_version(ps, peer, m->protocol_version);
    if (m->agent_version)
        cp2p_peerstore_set_agent_version(ps, peer, m->agent_version);
    if (!push || m->n_protocols)
        apply_protocols(ps, peer, m);
    uint64_t now = uv_now(cp2p_host_loop(id->h));
    if (m->signed_peer_record && apply_record(id, peer, via, m, now))
        return 0;
    if (!push || m->n_listen_addrs)
        apply_addrs(id, peer, via, m->listen_addrs, m->listen_addr_lens, m->n_listen_addrs, now);
    return 0;
}

static void exchange_read(cp2p_stream_t *s, int status, const uint8_t *p, size_t n, void *arg)
{
    exchange_t *ex = arg;
    if (status == 0) {
        if (n > CP2P_IDENTIFY_MAX_TOTAL - ex->buf.len) {
            cp2p_log_info("identify", "resetting stream: message over %d bytes",
                          CP2P_IDENTIFY_MAX_TOTAL);
            exchange_end(ex, 1);
        } else if (cp2p_buf_append(&ex->buf, p, n) < 0) {
            exchange_end(ex, 1);
        } else if (cp2p_stream_charge(s, (long)n) < 0) {
            /* Counted in the stream's scopes (given back at the end); over the
             * protocol's memory limit, the stream goes. */
            exchange_end(ex, 1);
        }
        return;
    }
    if (status != CP2P_ECLOSED) {
        cp2p_log_debug("identify", "stream ended before the message: %s", cp2p_strerror(status));
        exchange_end(ex, 0);
        return;
    }
    cp2p_identify_msg_t m;
    int rc = cp2p_identify_decode(ex->buf.data, ex->buf.len, &m);
    if (!rc)
        rc = apply(ex->id, cp2p_stream_peer(s), cp2p_stream_conn(s), &m, ex->push);
    if (rc) {
        cp2p_log_info("identify", "resetting stream: bad %s message: %s",
                      ex->push ? "push" : "identify", cp2p_strerror(rc));
    } else {
        cp2p_log_debug("identify", "peer identified: agent=%s, %zu protocols, %zu addresses",
                       m.agent_version ? m.agent_version : "-", m.n_protocols, m.n_listen_addrs);
        cp2p_event_t ev = {.type = CP2P_EVENT_PEER_IDENTIFIED,
                           .peer = cp2p_stream_peer(s),
                           .conn = cp2p_stream_conn(s)};
        cp2p_host_emit(ex->id->h, &ev);
        /* Where the peer saw us: a candidate for AutoNAT to confirm. */
        cp2p_multiaddr_t obs;
        if (m.observed_addr &&
            cp2p_multiaddr_from_bytes(m.observed_addr, m.observed_addr_len, &obs) == 0) {
            cp2p_event_t oev = {.type = CP2P_EVENT_OBSERVED_ADDR, .peer = cp2p_stream_peer(s),
                                .conn = cp2p_stream_conn(s), .addr = &obs};
            cp2p_host_emit(ex->id->h, &oev);
            cp2p_multiaddr_free(&obs);
        }
    }
    if (!rc)
        cp2p_identify_msg_free(&m);
    exchange_end(ex, rc != 0);
}

static void exchange_start(exchange_t *ex, cp2p_stream_t *s)
{
    ex->s = s;
    /* The reading side sends nothing: closing ours at once is what js and go expect. */
    cp2p_stream_close_write(s);
    if (cp2p_stream_read_start(s, exchange_read, ex) < 0)
        exchange_end(ex, 1);
}

static void identify_opened(int status, cp2p_stream_t *s, void *arg)
{
    exchange_t *ex = arg;
    if (status < 0) {
        cp2p_log_debug("identify", "cannot open an identify stream: %s", cp2p_strerror(status));
        exchange_end(ex, 0);
        return;
    }
    if (!ex->id) { /* identify was freed meanwhile */
        ex->s = s;
        exchange_end(ex, 1);
        return;
    }
    exchange_start(ex, s);
}

static void on_identify(cp2p_stream_t *s, void *arg)
{
    send_and_drain(arg, s);
}

static void on_push(cp2p_stream_t *s, void *arg)
{
    exchange_t *ex = exchange_new(arg, 1);
    if (!ex) {
        cp2p_stream_reset(s);
        cp2p_stream_unref(s);
        return;
    }
    exchange_start(ex, s);
}

static void push_opened(int status, cp2p_stream_t *s, void *arg)
{
    exchange_t *ex = arg;
    if (status < 0) {
        cp2p_log_debug("identify", "cannot push: %s", cp2p_strerror(status));
    } else if (!ex->id) {
        ex->s = s;
    } else {
        send_and_drain(ex->id, s);
    }
    exchange_end(ex, 1);
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    cp2p_identify_t *id = arg;
    switch (ev->type) {
    case CP2P_EVENT_CONNECTED: {
        exchange_t *ex = exchange_new(id, 0);
        int rc = ex ? cp2p_host_new_stream(id->h, ev->peer, ID_PROTO, 1, identify_opened, ex)
                    : CP2P_ENOMEM;
        if (rc < 0) {
            cp2p_log_info("identify", "cannot identify a new peer: %s", cp2p_strerror(rc));
            if (ex)
                exchange_end(ex, 0);
        }
        break;
    }
    case CP2P_EVENT_DISCONNECTED:
        /* What identify said stays useful for a while, should we dial again. */
        if (!cp2p_host_conn_to(id->h, ev->peer))
            cp2p_peerstore_update_addrs_ttl(cp2p_host_peerstore(id->h), ev->peer,
                                            CP2P_TTL_CONNECTED, CP2P_TTL_RECENTLY_CONNECTED,
                                            uv_now(cp2p_host_loop(id->h)));
        break;
    case CP2P_EVENT_LISTEN_ADDR:
        cp2p_identify_push(id);
        break;
    case CP2P_EVENT_PEER_IDENTIFIED:
    case CP2P_EVENT_PEER_DISCOVERED:
    case CP2P_EVENT_REACHABILITY:
    case CP2P_EVENT_OBSERVED_ADDR:
        break;
    }
}

int cp2p_identify_push(cp2p_identify_t *id)
{
    cp2p_peerstore_t *ps = cp2p_host_peerstore(id->h);
    size_t n = cp2p_peerstore_count(ps);
    cp2p_peer_id_t *peers = calloc(n ? n : 1, sizeof *peers);
    if (!peers)
        return CP2P_ENOMEM;
    n = cp2p_peerstore_peers(ps, peers, n);
    for (size_t i = 0; i < n; i++) {
        if (!cp2p_host_conn_to(id->h, &peers[i]) ||
            !cp2p_peerstore_supports(ps, &peers[i], CP2P_IDENTIFY_PUSH_PROTOCOL_ID))
            continue;
        exchange_t *ex = exchange_new(id, 1);
        int rc = ex ? cp2p_host_new_stream(id->h, &peers[i], PUSH_PROTO, 1, push_opened, ex)
                    : CP2P_ENOMEM;
        if (rc < 0) {
            cp2p_log_debug("identify", "cannot push: %s", cp2p_strerror(rc));
            if (ex)
                exchange_end(ex, 0);
        }
    }
    free(peers);
    return 0;
}

int cp2p_identify_enable(cp2p_host_t *h, const char *agent_version, cp2p_identify_t **out)
{
    cp2p_identify_t *id = calloc(1, sizeof *id);
    if (!id)
        return CP2P_ENOMEM;
    id->h = h;
    id->agent_version = strdup(agent_version ? agent_version : cp2p_host_agent_version(h));
    int rc = id->agent_version ? 0 : CP2P_ENOMEM;
    if (!rc)
        rc = cp2p_host_set_handler(h, CP2P_IDENTIFY_PROTOCOL_ID, on_identify, id);
    if (!rc)
        rc = cp2p_host_set_handler(h, CP2P_IDENTIFY_PUSH_PROTOCOL_ID, on_push, id);
    if (!rc)
        rc = cp2p_host_subscribe(h, on_event, id);
    if (rc) {
        cp2p_host_remove_handler(h, CP2P_IDENTIFY_PROTOCOL_ID);
        cp2p_host_remove_handler(h, CP2P_IDENTIFY_PUSH_PROTOCOL_ID);
        free(id->agent_version);
        free(id);
        return rc;
    }
    if (out)
        *out = id;
    return 0;
}

void cp2p_identify_free(cp2p_identify_t *id)
{
    if (!id)
        return;
    cp2p_host_unsubscribe(id->h, on_event, id);
    cp2p_host_remove_handler(id->h, CP2P_IDENTIFY_PROTOCOL_ID);
    cp2p_host_remove_handler(id->h, CP2P_IDENTIFY_PUSH_PROTOCOL_ID);
    while (id->exchanges) {
        exchange_t *ex = id->exchanges;
        if (ex->s)
            exchange_end(ex, 1);
        else
            exchange_unlink(ex); /* its open callback frees it */
    }
    free(id->agent_version);
    cp2p_buf_free(&id->record);
    cp2p_buf_free(&id->record_addrs);
    free(id);
}
