/* What the cp2p commands that run a host print about it at start. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"
#include "cp2p/pnet.h"

void cli_print_peer_id(cp2p_host_t *h)
{
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_host_peer_id(h), id, sizeof id);
    printf("Local peer id: %s\n", id);
    fflush(stdout);
}

int cli_print_listen_addrs(cp2p_host_t *h, const char *prefix)
{
    char id[CP2P_PEER_ID_STRMAX];
    cp2p_peer_id_to_string(cp2p_host_peer_id(h), id, sizeof id);
    cp2p_multiaddr_t *addrs;
    size_t n;
    int rc = cp2p_host_listen_addrs(h, &addrs, &n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        cp2p_buf_t s = {0};
        if (cp2p_multiaddr_to_string(&addrs[i], &s) == 0)
            printf("%s%s/p2p/%s\n", prefix, (char *)s.data, id);
        cp2p_buf_free(&s);
        cp2p_multiaddr_free(&addrs[i]);
    }
    free(addrs);
    fflush(stdout);
    return 0;
}

int cli_load_psk(const char *cmd, const char *path, uint8_t key[32])
{
    int rc = cp2p_pnet_key_load(path, key);
    if (rc == 0)
        return 0;
    return cli_fail(cmd, "cannot read private network key %s: %s", path,
                    rc == CP2P_EPARSE ? "not a /key/swarm/psk/1.0.0/ key file"
                    : rc == CP2P_EIO  ? "cannot read the file"
                                      : cp2p_strerror(rc));
}
