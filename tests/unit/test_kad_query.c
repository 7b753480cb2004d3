/* Iterative lookup engine: alpha, timeouts, bounds, and convergence on the
 * true k closest in a simulated network of 200 peers with silent ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "kad/kad_query.h"

#define KAD_RNG_SEED 0x2545f4914f6cdd1dULL
#include "kad_rng.h"

static void test_alpha_and_timeout(void **state)
{
    cp2p_kad_key_t target = {{0}};
    cp2p_kad_query_config_t cfg = {.k = 4, .alpha = 2, .request_timeout_ms = 100};
    cp2p_kad_query_t *q;
    assert_int_equal(cp2p_kad_query_new(&target, &cfg, &q), 0);
    cp2p_peer_id_t seeds[6], ask[8];
    for (int i = 0; i < 6; i++)
        seeds[i] = random_id();
    assert_int_equal(cp2p_kad_query_add_peers(q, seeds, 6), 0);
    assert_int_equal(cp2p_kad_query_add_peers(q, seeds, 6), 0); /* duplicates are ignored */
    assert_false(cp2p_kad_query_done(q));

    assert_int_equal(cp2p_kad_query_next(q, 0, ask, 8), 2);
    assert_int_equal(cp2p_kad_query_in_flight(q), 2);
    assert_int_equal(cp2p_kad_query_next(q, 50, ask + 2, 6), 0); /* alpha in flight */
    assert_int_equal(cp2p_kad_query_next_deadline(q), 100);

    /* ask[0] answers; ask[1] stays silent and times out at 100. */
    assert_int_equal(cp2p_kad_query_on_response(q, &ask[0], NULL, 0), 0);
    assert_int_equal(cp2p_kad_query_on_response(q, &ask[0], NULL, 0), CP2P_ESTATE);
    cp2p_peer_id_t stranger = random_id();
    assert_int_equal(cp2p_kad_query_on_response(q, &stranger, NULL, 0), CP2P_ESTATE);
    assert_int_equal(cp2p_kad_query_next(q, 60, ask + 2, 6), 1);
    assert_int_equal(cp2p_kad_query_next(q, 100, ask + 3, 5), 1);
    assert_int_equal(cp2p_kad_query_peer_state(q, &ask[1]), CP2P_KAD_PEER_FAILED);
    assert_int_equal(cp2p_kad_query_stats(q)->timeouts, 1);
    /* A late answer from the timed-out peer changes nothing. */
    assert_int_equal(cp2p_kad_query_on_response(q, &ask[1], seeds, 6), CP2P_ESTATE);

    assert_int_equal(cp2p_kad_query_on_failure(q, &ask[2]), 0);
    assert_int_equal(cp2p_kad_query_on_response(q, &ask[3], NULL, 0), 0);
    /* 6 seeds, 2 failed: the 4 live ones must all answer. */
    size_t n;
    uint64_t now = 100;
    while (!cp2p_kad_query_done(q) && (n = cp2p_kad_query_next(q, now, ask, 8)) > 0)
        for (size_t i = 0; i < n; i++)
            assert_int_equal(cp2p_kad_query_on_response(q, &ask[i], NULL, 0), 0);
    assert_true(cp2p_kad_query_done(q));
    cp2p_peer_id_t best[8];
    assert_int_equal(cp2p_kad_query_closest(q, best, 8), 4);
    assert_int_equal(cp2p_kad_query_stats(q)->requests, 6);
    cp2p_kad_query_free(q);
}

static void test_empty_and_stop(void **state)
{
    cp2p_kad_key_t target = {{1}};
    cp2p_kad_query_t *q;
    assert_int_equal(cp2p_kad_query_new(&target, NULL, &q), 0);
    assert_true(cp2p_kad_query_done(q)); /* nothing to ask */
    cp2p_peer_id_t p = random_id(), out[4];
    assert_int_equal(cp2p_kad_query_add_peers(q, &p, 1), 0);
    assert_false(cp2p_kad_query_done(q));
    cp2p_kad_query_stop(q);
    assert_true(cp2p_kad_query_done(q));
    assert_int_equal(cp2p_kad_query_next(q, 0, out, 4), 0);
    cp2p_kad_query_free(q);

    cp2p_kad_query_config_t bad = {.alpha = CP2P_KAD_MAX_ALPHA + 1};
    assert_int_equal(cp2p_kad_query_new(&target, &bad, &q), CP2P_EINVAL);
}

/* Self is never a candidate; past max_candidates the farthest are forgotten. */
static void test_self_and_bound(void **state)
{
    cp2p_peer_id_t self = random_id();
    cp2p_kad_key_t target;
    cp2p_kad_key_of_peer(&self, &target);
    cp2p_kad_query_config_t cfg = {.k = 3, .max_candidates = 10, .self = &self};
    cp2p_kad_query_t *q;
    assert_int_equal(cp2p_kad_query_new(&target, &cfg, &q), 0);
    assert_int_equal(cp2p_kad_query_add_peers(q, &self, 1), 0);
    assert_true(cp2p_kad_query_done(q));
    cp2p_peer_id_t many[100];
    for (int i = 0; i < 100; i++)
        many[i] = random_id();
    assert_int_equal(cp2p_kad_query_add_peers(q, many, 100), 0);
    assert_int_equal(cp2p_kad_query_stats(q)->dropped, 90);
    /* The 10 kept are the 10 closest of the 100. */
    size_t kept = 0;
    for (int i = 0; i < 100; i++) {
        if (cp2p_kad_query_peer_state(q, &many[i]) != CP2P_KAD_PEER_HEARD)
            continue;
        kept++;
        cp2p_kad_key_t ki;
        cp2p_kad_key_of_peer(&many[i], &ki);
        size_t closer = 0;
        for (int j = 0; j < 100; j++) {
            cp2p_kad_key_t kj;
            cp2p_kad_key_of_peer(&many[j], &kj);
            closer += cp2p_kad_key_cmp(&target, &kj, &ki) < 0;
        }
        assert_true(closer < 10);
    }
    assert_int_equal(kept, 10);
    cp2p_kad_query_free(q);
}

/* ---- a simulated network ---- */

#define NPEERS 200
#define K 20

typedef struct node {
    cp2p_peer_id_t id;
    cp2p_kad_key_t key;
    cp2p_kad_table_t *table;
    int silent;
} node_t;

static node_t net[NPEERS];

static node_t *node_of(const cp2p_peer_id_t *id)
{
    for (int i = 0; i < NPEERS; i++)
        if (cp2p_peer_id_equal(&net[i].id, id))
            return &net[i];
    return NULL;
}

static cp2p_kad_key_t cmp_target;
static int cmp_nodes(const void *a, const void *b)
{
    const node_t *x = *(node_t *const *)a, *y = *(node_t *const *)b;
    return cp2p_kad_key_cmp(&cmp_target, &x->key, &y->key);
}

static void build_net(unsigned silent_percent)
{
    for (int i = 0; i < NPEERS; i++) {
        net[i].id = random_id();
        cp2p_kad_key_of_peer(&net[i].id, &net[i].key);
        net[i].silent = next_rand() % 100 < silent_percent;
        assert_int_equal(cp2p_kad_table_new(&net[i].id, K, &net[i].table), 0);
    }
    /* Everyone met everyone once, each in its own order: each table keeps
     * the first k it met per bucket. */
    int order[NPEERS];
    for (int i = 0; i < NPEERS; i++)
        order[i] = i;
    for (int i = 0; i < NPEERS; i++) {
        for (int j = NPEERS - 1; j > 0; j--) {
            int r = (int)(next_rand() % (uint64_t)(j + 1)), tmp = order[j];
            order[j] = order[r];
            order[r] = tmp;
        }
        for (int j = 0; j < NPEERS; j++)
            if (order[j] != i)
                cp2p_kad_table_add(net[i].table, &net[order[j]].id, (uint64_t)j, NULL);
    }
}

/* Requests in flight: answered after a per-peer latency, silent ones never. */
typedef struct pending {
    node_t *to;
    uint64_t at_ms;
} pending_t;

static void lookup(node_t *from, const cp2p_kad_key_t *target, size_t alpha, uint64_t *took_ms)
{
    cp2p_kad_query_config_t cfg = {.k = K, .alpha = alpha, .request_timeout_ms = 1000,
                                   .self = &from->id};
    cp2p_kad_query_t *q;
    assert_int_equal(cp2p_kad_query_new(target, &cfg, &q), 0);
    cp2p_peer_id_t seed[K];
    size_t n = cp2p_kad_table_closest(from->table, target, seed, K);
    assert_int_equal(cp2p_kad_query_add_peers(q, seed, n), 0);

    pending_t pend[64];
    size_t n_pend = 0;
    uint64_t now = 0;
    int steps = 0;
    while (!cp2p_kad_query_done(q)) {
        assert_true(++steps < 10000); /* a lookup must never hang */
        cp2p_peer_id_t ask[CP2P_KAD_MAX_ALPHA];
        size_t m = cp2p_kad_query_next(q, now, ask, CP2P_KAD_MAX_ALPHA);
        for (size_t i = 0; i < m; i++) {
            node_t *to = node_of(&ask[i]);
            assert_non_null(to);
            assert_true(to != from);
            if (!to->silent) {
                assert_true(n_pend < 64);
                pend[n_pend++] = (pending_t){to, now + 5 + next_rand() % 50};
            }
        }
        if (cp2p_kad_query_done(q))
            break;
        /* Advance to the next answer or deadline, whichever comes first. */
        uint64_t t = cp2p_kad_query_next_deadline(q);
        size_t first = n_pend;
        for (size_t i = 0; i < n_pend; i++)
            if (pend[i].at_ms < t) {
                t = pend[i].at_ms;
                first = i;
            }
        assert_true(t != UINT64_MAX);
        now = t;
        if (first < n_pend) {
            node_t *to = pend[first].to;
            pend[first] = pend[--n_pend];
            cp2p_peer_id_t closer[K];
            size_t c = cp2p_kad_table_closest(to->table, target, closer, K);
            assert_int_equal(cp2p_kad_query_on_response(q, &to->id, closer, c), 0);
        }
    }
    /* Every live peer among the true k closest (the asker excluded) must be
     * found, in order. Silent peers in that set push live ones out of every
     * answer, exactly as dead entries do in real tables. */
    node_t *sorted[NPEERS];
    size_t others = 0, live = 0;
    for (int i = 0; i < NPEERS; i++)
        if (&net[i] != from)
            sorted[others++] = &net[i];
    cmp_target = *target;
    qsort(sorted, others, sizeof *sorted, cmp_nodes);
    cp2p_peer_id_t got[K];
    size_t n_got = cp2p_kad_query_closest(q, got, K);
    for (size_t i = 0; i < K; i++) {
        if (sorted[i]->silent) {
            assert_int_equal(cp2p_kad_query_peer_state(q, &sorted[i]->id), CP2P_KAD_PEER_FAILED);
            continue;
        }
        assert_true(live < n_got);
        assert_true(cp2p_peer_id_equal(&got[live], &sorted[i]->id));
        live++;
    }
    if (live == K)
        assert_int_equal(n_got, K);
    *took_ms = now;
    cp2p_kad_query_free(q);
}

static void run_network(unsigned silent_percent, int rounds)
{
    build_net(silent_percent);
    size_t n_silent = 0;
    for (int i = 0; i < NPEERS; i++)
        n_silent += net[i].silent;
    for (int round = 0; round < rounds; round++) {
        node_t *from = &net[next_rand() % NPEERS];
        cp2p_peer_id_t t = random_id();
        cp2p_kad_key_t target;
        cp2p_kad_key_of_peer(&t, &target);
        /* Half the lookups aim at a peer of the network. */
        if (round % 2)
            target = net[next_rand() % NPEERS].key;
        uint64_t took;
        lookup(from, &target, round % 3 ? 3 : 1, &took);
        /* Each silent peer asked costs one 1 s timeout at most, some of them in parallel. */
        assert_true(took <= 2000 + (uint64_t)n_silent * 1000);
        if (!n_silent)
            assert_true(took < 2000);
    }
    for (int i = 0; i < NPEERS; i++)
        cp2p_kad_table_free(net[i].table);
}

static void test_network_all_live(void **state)
{
    run_network(0, 40);
}

static void test_network_with_silent_peers(void **state)
{
    run_network(15, 60);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_and_timeout),
        cmocka_unit_test(test_empty_and_stop),
        cmocka_unit_test(test_self_and_bound),
        cmocka_unit_test(test_network_all_live),
        cmocka_unit_test(test_network_with_silent_peers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
