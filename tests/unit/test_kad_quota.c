/* Per-peer store quotas: a peer's records and providers past its limits are
 * refused, a rewrite of one key is charged once, bytes count, expiry gives
 * room back, other peers keep theirs, and the whole table is bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cp2p/error.h"
#include "kad/kad_quota.h"

static cp2p_peer_id_t pid(uint32_t n)
{
    cp2p_peer_id_t id = {.len = 6};
    id.bytes[1] = 4;
    memcpy(&id.bytes[2], &n, 4);
    return id;
}

static int put(kad_quota_t *q, uint32_t peer, kad_quota_kind_t kind, unsigned key, uint64_t bytes,
               uint64_t now, uint64_t expires)
{
    char k[32];
    int n = snprintf(k, sizeof k, "/test/%u", key);
    cp2p_peer_id_t p = pid(peer);
    return kad_quota_charge(q, &p, kind, (const uint8_t *)k, (size_t)n, bytes, now, expires);
}

static void test_counts(void **state)
{
    kad_quota_t *q;
    kad_quota_limits_t l = {.records = 10, .providers = 5, .bytes = 1000, .max_entries = 100};
    assert_int_equal(kad_quota_new(&l, &q), 0);
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, i, 10, 0, 100), 0);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 10, 10, 0, 100), CP2P_ELIMIT);
    /* the same keys again: renewed, not counted twice */
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, i, 10, 0, 200), 0);
    /* providers are counted apart */
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(put(q, 1, KAD_QUOTA_PROVIDER, i, 10, 0, 100), 0);
    assert_int_equal(put(q, 1, KAD_QUOTA_PROVIDER, 5, 10, 0, 100), CP2P_ELIMIT);
    uint32_t r, pr;
    uint64_t b;
    cp2p_peer_id_t one = pid(1);
    kad_quota_of(q, &one, &r, &pr, &b);
    assert_int_equal(r, 10);
    assert_int_equal(pr, 5);
    assert_int_equal(b, 150);
    /* another peer has its own quota */
    assert_int_equal(put(q, 2, KAD_QUOTA_RECORD, 10, 10, 0, 100), 0);
    /* once the first ten expire, room comes back (the providers went at 100) */
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 11, 10, 150, 300), CP2P_ELIMIT);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 11, 10, 200, 300), 0);
    kad_quota_of(q, &one, &r, &pr, &b);
    assert_int_equal(r, 1);
    assert_int_equal(pr, 0);
    kad_quota_free(q);
}

static void test_bytes(void **state)
{
    kad_quota_t *q;
    kad_quota_limits_t l = {.records = 100, .providers = 100, .bytes = 1000, .max_entries = 1000};
    assert_int_equal(kad_quota_new(&l, &q), 0);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 1, 1001, 0, 100), CP2P_ELIMIT);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 1, 600, 0, 100), 0);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 2, 500, 0, 100), CP2P_ELIMIT);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 2, 400, 0, 100), 0);
    /* a bigger rewrite needs room; a smaller one gives some back */
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 1, 700, 0, 100), CP2P_ELIMIT);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 1, 100, 0, 100), 0);
    assert_int_equal(put(q, 1, KAD_QUOTA_RECORD, 3, 500, 0, 100), 0);
    kad_quota_free(q);
}

static void test_table_bounded(void **state)
{
    kad_quota_t *q;
    kad_quota_limits_t l = {.records = 4, .providers = 4, .bytes = 1000, .max_entries = 64};
    assert_int_equal(kad_quota_new(&l, &q), 0);
    /* many peers (a Sybil crowd) fill the table, then nobody new gets in */
    int refused = 0;
    for (uint32_t p = 0; p < 40; p++)
        for (unsigned k = 0; k < 4; k++)
            refused += put(q, 100 + p, KAD_QUOTA_RECORD, k, 1, 0, 50) == CP2P_ELIMIT;
    assert_int_equal(refused, 40 * 4 - 64);
    /* until their charges expire */
    assert_int_equal(put(q, 999, KAD_QUOTA_RECORD, 0, 1, 10, 100), CP2P_ELIMIT);
    assert_int_equal(put(q, 999, KAD_QUOTA_RECORD, 0, 1, 50, 100), 0);
    kad_quota_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_table_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
