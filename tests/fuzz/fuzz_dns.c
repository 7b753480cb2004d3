/* Fuzz target: the DNS codec and the mDNS engine on one hostile datagram. A
 * decoded message must hold together, and whatever the engine answers must be
 * a DNS message of mDNS size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/multiaddr.h"
#include "discovery/dns.h"
#include "discovery/mdns_engine.h"

static cp2p_mdns_engine_t *engine(void)
{
    static cp2p_mdns_engine_t *e;
    if (e)
        return e;
    cp2p_peer_id_t self;
    cp2p_multiaddr_t ma;
    cp2p_mdns_engine_config_t cfg = {.peer_name = "fuzz"};
    if (cp2p_peer_id_parse("12D3KooWGvyDAm4UXtvYFF1jizv73YyVaqLFKMFZhhvBwD4p3Jj3", &self) ||
        cp2p_mdns_engine_new(&cfg, &self, NULL, NULL, &e) ||
        cp2p_multiaddr_parse("/ip4/10.77.0.1/tcp/4001", &ma) || cp2p_mdns_engine_set_addrs(e, &ma, 1))
        abort();
    cp2p_multiaddr_free(&ma);
    return e;
}

static void check(const cp2p_dns_msg_t *m)
{
    char text[4 * CP2P_DNS_NAME_MAX + 1];
    if (m->nq + m->nan + m->nns + m->nar > CP2P_DNS_MAX_ENTRIES)
        abort();
    for (size_t i = 0; i < m->nq; i++)
        if (cp2p_dns_name_to_text(&m->q[i].name, text, sizeof text) ||
            !cp2p_dns_name_equal(&m->q[i].name, &m->q[i].name))
            abort();
    for (size_t i = 0; i < m->nan + m->nns + m->nar; i++) {
        const cp2p_dns_rr_t *rr = &m->rr[i];
        if (cp2p_dns_name_to_text(&rr->name, text, sizeof text) || rr->ttl > 0x7fffffff)
            abort();
        if (rr->type == CP2P_DNS_TYPE_TXT) {
            size_t off = 0, len, total = 0;
            const uint8_t *s;
            while (cp2p_dns_txt_next(rr, &off, &s, &len))
                total += 1 + len;
            if (total != rr->rdlen)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t now;
    cp2p_dns_msg_t m;
    if (cp2p_dns_decode(data, size, &m) == 0) {
        check(&m);
        cp2p_dns_msg_free(&m);
    }
    cp2p_mdns_engine_t *e = engine();
    cp2p_buf_t reply = {0};
    now += 1500;
    /* The first bytes double as the source, so the querier table is fed too. */
    cp2p_mdns_engine_input(e, 0, data, size < 6 ? size : 6, data, size, now, &reply);
    cp2p_mdns_engine_take_new_querier(e);
    if (reply.len) {
        if (reply.len > CP2P_MDNS_MAX_PACKET || cp2p_dns_decode(reply.data, reply.len, &m))
            abort();
        cp2p_dns_msg_free(&m);
    }
    cp2p_buf_free(&reply);
    cp2p_mdns_engine_expire(e, now);
    return 0;
}
