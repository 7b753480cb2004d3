/* AutoNAT for the cp2p commands that run a host: the options, the service,
 * the client, and the "reachability: public|private|unknown" line printed
 * when AutoNAT knows (or at start when forced). */
#ifndef CP2P_CLI_AUTONAT_H
#define CP2P_CLI_AUTONAT_H

#include <stdio.h>

#include "cli.h"
#include "cp2p/autonat.h"
#include "cp2p/host.h"

typedef struct cli_autonat {
    int service, no_client, allow_private, no_v2;
    const char *reachability; /* --reachability public|private */
    cli_list_t announce;
    const char *announce_v[8];
    double interval;          /* seconds: first probe, and retries while unsure */
    cp2p_autonat_t *an;
    cp2p_host_t *h;
    const cp2p_host_config_t *host_cfg; /* the host's, for the service's dialer */
} cli_autonat_t;

#define CLI_AUTONAT_INIT(x) {.announce = {(x).announce_v, 0, 8}}
#define CLI_AUTONAT_OPTIONS(x)                                             \
    CLI_OPTION("--autonat-service", CLI_FLAG, &(x)->service),              \
    CLI_OPTION("--no-autonat", CLI_FLAG, &(x)->no_client),                 \
    CLI_OPTION("--no-autonat-v2", CLI_FLAG, &(x)->no_v2),                  \
    CLI_OPTION("--allow-private-dialback", CLI_FLAG, &(x)->allow_private), \
    CLI_OPTION("--reachability", CLI_STR, &(x)->reachability),             \
    CLI_OPTION("--announce", CLI_LIST, &(x)->announce),                    \
    CLI_NUMBER("--autonat-interval", &(x)->interval, 0.1, 86400)
/* Help lines for the options above. */
void cli_autonat_usage(FILE *f);
/* Check the options, set what the host config needs. CLI_OK or CLI_USAGE. */
int cli_autonat_config(cli_autonat_t *x, const char *cmd, cp2p_host_config_t *cfg);
/* After identify is enabled (cfg, given to cli_autonat_config, must still be there): announce, service, client, the printed line. */
int cli_autonat_start(cli_autonat_t *x, cp2p_host_t *h);
/* Before the host closes. */
void cli_autonat_stop(cli_autonat_t *x);

#endif
