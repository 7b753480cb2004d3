/* The DHT's samples for the host's /metrics endpoint (cp2p_metrics_collect_fn). */
#include <string.h>

#include "cp2p/dht.h"

static size_t collect(const void *dht, cp2p_metric_t *out, size_t cap)
{
    const cp2p_dht_t *d = dht;
    const cp2p_dht_stats_t *s = cp2p_dht_stats(d);
    cp2p_dht_holdings_t ho;
    cp2p_dht_holdings(d, &ho);
    const cp2p_metric_t all[] = {
        {"cp2p_dht_routing_table_peers", "gauge", "Peers in the routing table.", cp2p_dht_routing_table_size(d)},
        {"cp2p_dht_records", "gauge", "Records in the DHT store.", ho.records},
        {"cp2p_dht_provider_records", "gauge", "Provider records in the DHT store.", ho.providers},
        {"cp2p_dht_requests_in_total", "counter", "DHT requests answered.", s->requests_in},
        {"cp2p_dht_requests_out_total", "counter", "DHT requests sent.", s->requests_out},
        {"cp2p_dht_request_timeouts_total", "counter", "DHT requests that timed out.", s->timeouts},
        {"cp2p_dht_bad_messages_total", "counter", "Malformed or oversized DHT messages received.", s->bad_messages},
        {"cp2p_dht_invalid_records_total", "counter", "Records refused by validation.", s->invalid_records},
        {"cp2p_dht_stale_records_total", "counter", "Records refused as worse than the one held (IPNS rollbacks).", s->stale_records},
        {"cp2p_dht_quota_refused_total", "counter", "Stores refused because the peer held its quota.", s->quota_refused},
        {"cp2p_dht_not_stored_total", "counter", "Valid records and providers from peers that were not stored (store or write queue full, write failed).", s->not_stored},
    };
    size_t n = sizeof all / sizeof *all < cap ? sizeof all / sizeof *all : cap;
    memcpy(out, all, n * sizeof *out);
    return n;
}

cp2p_metrics_source_t cp2p_dht_metrics_source(const cp2p_dht_t *d)
{
    return (cp2p_metrics_source_t){d ? collect : NULL, d};
}
