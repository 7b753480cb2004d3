/* Shared by test_kad_query.c and test_kad_table.c (included once by each): a
 * xorshift generator and random sha2-256 peer ids. Define KAD_RNG_SEED (a
 * nonzero uint64_t) before including. Include after cmocka.h. */
#ifndef CP2P_TEST_KAD_RNG_H
#define CP2P_TEST_KAD_RNG_H

#include <stdint.h>
#include <string.h>

#include "cp2p/peer.h"

static uint64_t rng = KAD_RNG_SEED;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static cp2p_peer_id_t random_id(void)
{
    cp2p_peer_id_t id = {.len = 34, .bytes = {0x12, 0x20}};
    for (int i = 0; i < 32; i += 8) {
        uint64_t r = next_rand();
        memcpy(id.bytes + 2 + i, &r, 8);
    }
    return id;
}

#endif
