/* Fuzz target: the private network key file (/key/swarm/psk/1.0.0/), as
 * cp2p_pnet_key_parse reads it. A key it accepts, written back as /base16/,
 * parses to the same key. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp2p/pnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[CP2P_PNET_KEY_SIZE], again[CP2P_PNET_KEY_SIZE];
    if (cp2p_pnet_key_parse(data, size, key))
        return 0;
    char text[31 + 2 * CP2P_PNET_KEY_SIZE + 2] = "/key/swarm/psk/1.0.0/\n/base16/\n";
    for (size_t i = 0; i < CP2P_PNET_KEY_SIZE; i++)
        snprintf(text + 31 + 2 * i, 3, "%02x", key[i]);
    if (cp2p_pnet_key_parse((const uint8_t *)text, strlen(text), again) ||
        memcmp(key, again, sizeof key))
        abort();
    return 0;
}
