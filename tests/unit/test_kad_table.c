/* Kademlia routing table: XOR metric, k-buckets, replacements, closest peers, refresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/dht.h"
#include "cp2p/error.h"
#include "kad/kad_table.h"

#define KAD_RNG_SEED 0x9e3779b97f4a7c15ULL
#include "kad_rng.h"

/* A random peer whose key falls in bucket cpl of self. */
static cp2p_peer_id_t id_in_bucket(const cp2p_kad_key_t *self, unsigned cpl)
{
    for (;;) {
        cp2p_peer_id_t id = random_id();
        cp2p_kad_key_t k;
        assert_int_equal(cp2p_kad_key_of_peer(&id, &k), 0);
        if (cp2p_kad_key_cpl(self, &k) == cpl)
            return id;
    }
}

static void test_metric(void **state)
{
    cp2p_kad_key_t a = {{0}}, b = {{0}}, t = {{0}};
    assert_int_equal(cp2p_kad_key_cpl(&a, &b), 256);
    b.b[0] = 0x80;
    assert_int_equal(cp2p_kad_key_cpl(&a, &b), 0);
    b.b[0] = 0x01;
    assert_int_equal(cp2p_kad_key_cpl(&a, &b), 7);
    b.b[0] = 0;
    b.b[3] = 0x10;
    assert_int_equal(cp2p_kad_key_cpl(&a, &b), 27);
    /* with target 0, the key 0 is the closest there is */
    assert_true(cp2p_kad_key_cmp(&t, &a, &b) < 0);
    assert_true(cp2p_kad_key_cmp(&t, &b, &a) > 0);
    assert_int_equal(cp2p_kad_key_cmp(&t, &b, &b), 0);
    /* XOR, not numeric distance: with target 0x80.., 0xff.. is closer than 0x00.. */
    t.b[0] = 0x80;
    a.b[0] = 0xff;
    memset(&b, 0, sizeof b);
    assert_true(cp2p_kad_key_cmp(&t, &a, &b) < 0);

    /* sha256("") */
    cp2p_kad_key_t h;
    assert_int_equal(cp2p_kad_key_of((const uint8_t *)"", 0, &h), 0);
    assert_int_equal(h.b[0], 0xe3);
    assert_int_equal(h.b[31], 0x55);
}

static void test_bucket_full_and_replacement(void **state)
{
    cp2p_peer_id_t self = random_id();
    cp2p_kad_key_t sk;
    cp2p_kad_key_of_peer(&self, &sk);
    cp2p_kad_table_t *t;
    assert_int_equal(cp2p_kad_table_new(&self, 4, &t), 0);
    assert_int_equal(cp2p_kad_table_add(t, &self, 1, NULL), CP2P_EINVAL);

    cp2p_peer_id_t in[4], extra[2], stale;
    for (int i = 0; i < 4; i++) {
        in[i] = id_in_bucket(&sk, 2);
        assert_int_equal(cp2p_kad_table_add(t, &in[i], 10 + i, NULL), 0);
    }
    /* Seeing in[0] again makes it the most recently seen: in[1] is now the oldest. */
    assert_int_equal(cp2p_kad_table_add(t, &in[0], 20, NULL), 0);
    assert_int_equal(cp2p_kad_table_size(t), 4);
    for (int i = 0; i < 2; i++) {
        extra[i] = id_in_bucket(&sk, 2);
        assert_int_equal(cp2p_kad_table_add(t, &extra[i], 30 + i, &stale), CP2P_ELIMIT);
        assert_true(cp2p_peer_id_equal(&stale, &in[1]));
        assert_false(cp2p_kad_table_contains(t, &extra[i]));
    }
    /* Another bucket is unaffected. */
    cp2p_peer_id_t other = id_in_bucket(&sk, 0);
    assert_int_equal(cp2p_kad_table_add(t, &other, 40, NULL), 0);

    /* The stale peer died: the freshest replacement takes its place. */
    assert_int_equal(cp2p_kad_table_remove(t, &in[1]), 0);
    assert_false(cp2p_kad_table_contains(t, &in[1]));
    assert_true(cp2p_kad_table_contains(t, &extra[1]));
    assert_false(cp2p_kad_table_contains(t, &extra[0]));
    assert_int_equal(cp2p_kad_table_size(t), 5);
    assert_int_equal(cp2p_kad_table_remove(t, &in[1]), CP2P_ENOTFOUND);
    /* extra[0] still waits; removing it from the replacements works too. */
    assert_int_equal(cp2p_kad_table_remove(t, &extra[0]), 0);
    assert_int_equal(cp2p_kad_table_remove(t, &in[2]), 0);
    assert_int_equal(cp2p_kad_table_size(t), 4);

    cp2p_peer_id_t all[8];
    assert_int_equal(cp2p_kad_table_peers(t, all, 8), 4);
    cp2p_kad_table_free(t);
}

static cp2p_kad_key_t sort_target;
static int cmp_ids(const void *a, const void *b)
{
    cp2p_kad_key_t ka, kb;
    cp2p_kad_key_of_peer(a, &ka);
    cp2p_kad_key_of_peer(b, &kb);
    return cp2p_kad_key_cmp(&sort_target, &ka, &kb);
}

static void test_closest_matches_brute_force(void **state)
{
    cp2p_peer_id_t self = random_id();
    cp2p_kad_table_t *t;
    assert_int_equal(cp2p_kad_table_new(&self, 0, &t), 0);
    assert_int_equal(cp2p_kad_table_k(t), CP2P_DHT_DEFAULT_K);
    for (int i = 0; i < 1000; i++) {
        cp2p_peer_id_t p = random_id();
        int rc = cp2p_kad_table_add(t, &p, (uint64_t)i, NULL);
        assert_true(rc == 0 || rc == CP2P_ELIMIT);
    }
    size_t total = cp2p_kad_table_peers(t, NULL, 0);
    assert_int_equal(total, cp2p_kad_table_size(t));
    /* Buckets 0..4 are full (k each) with 1000 random peers. */
    assert_true(total >= 5 * CP2P_DHT_DEFAULT_K);
    cp2p_peer_id_t *members = calloc(total, sizeof *members);
    cp2p_kad_table_peers(t, members, total);

    for (int round = 0; round < 20; round++) {
        cp2p_peer_id_t target_id = random_id();
        cp2p_kad_key_of_peer(&target_id, &sort_target);
        qsort(members, total, sizeof *members, cmp_ids);
        cp2p_peer_id_t got[CP2P_DHT_DEFAULT_K];
        assert_int_equal(cp2p_kad_table_closest(t, &sort_target, got, CP2P_DHT_DEFAULT_K),
                         CP2P_DHT_DEFAULT_K);
        for (int i = 0; i < CP2P_DHT_DEFAULT_K; i++)
            assert_true(cp2p_peer_id_equal(&got[i], &members[i]));
    }
    free(members);
    cp2p_kad_table_free(t);
}

static void test_refresh(void **state)
{
    cp2p_peer_id_t self = random_id();
    cp2p_kad_key_t sk;
    cp2p_kad_key_of_peer(&self, &sk);
    cp2p_kad_table_t *t;
    assert_int_equal(cp2p_kad_table_new(&self, 0, &t), 0);
    for (unsigned cpl = 0; cpl <= 10; cpl++) {
        cp2p_peer_id_t target;
        cp2p_kad_key_t tk;
        assert_int_equal(cp2p_kad_table_refresh_target(t, cpl, &target), 0);
        cp2p_kad_key_of_peer(&target, &tk);
        assert_int_equal(cp2p_kad_key_cpl(&sk, &tk), cpl);
    }
    cp2p_peer_id_t target;
    assert_int_equal(cp2p_kad_table_refresh_target(t, CP2P_KAD_MAX_REFRESH_CPL + 1, &target),
                     CP2P_EINVAL);

    unsigned cpls[32];
    /* Empty table: only bucket 0 is worth refreshing. */
    assert_int_equal(cp2p_kad_table_stale_buckets(t, 1000, 100, cpls, 32), 1);
    cp2p_peer_id_t p = id_in_bucket(&sk, 3);
    assert_int_equal(cp2p_kad_table_add(t, &p, 1, NULL), 0);
    assert_int_equal(cp2p_kad_table_stale_buckets(t, 1000, 100, cpls, 32), 5);
    cp2p_kad_key_t pk;
    cp2p_kad_key_of_peer(&p, &pk);
    cp2p_kad_table_mark_refreshed(t, &pk, 950);
    assert_int_equal(cp2p_kad_table_stale_buckets(t, 1000, 100, cpls, 32), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_not_equal(cpls[i], 3);
    /* Once the bucket's age passes max_age it is stale again. */
    assert_int_equal(cp2p_kad_table_stale_buckets(t, 1050, 100, cpls, 32), 5);
    cp2p_kad_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric),
        cmocka_unit_test(test_bucket_full_and_replacement),
        cmocka_unit_test(test_closest_matches_brute_force),
        cmocka_unit_test(test_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
