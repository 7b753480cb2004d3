/* cp2p id: print the peer ID of a private key file (peer-ids spec, "String representation"). */
#include <stdio.h>

#include "cli.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/log.h"
#include "cp2p/peer.h"

static void help(FILE *f)
{
    fprintf(f, "usage: cp2p id --key FILE [--cid]\n"
               "Print the peer ID of a private key file (libp2p protobuf format).\n"
               "  --key FILE   the private key\n"
               "  --cid        print the CIDv1 form (bafz...) instead of base58btc\n"
               "The second line names the key type.\n");
}

int cmd_id(int argc, char **argv)
{
    const char *path = NULL;
    int cid = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--key", CLI_STR, &path),
        CLI_OPTION("--cid", CLI_FLAG, &cid),
        CLI_END,
    };
    int prc = cli_parse("id", argc, argv, opts, help, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (!path)
        return cli_usage("id", "--key FILE is required");

    cp2p_privkey_t *k = NULL;
    int rc = cp2p_privkey_load_file(path, &k);
    if (rc)
        return cli_fail(path, "%s", cli_key_error(rc));
    cp2p_peer_id_t id;
    char s[CP2P_PEER_ID_STRMAX];
    rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id);
    if (!rc)
        rc = cid ? cp2p_peer_id_to_cid_string(&id, s, sizeof s)
                 : cp2p_peer_id_to_string(&id, s, sizeof s);
    if (!rc) {
        cp2p_log_debug("cli", "loaded %s key from %s", cp2p_key_type_name(cp2p_privkey_type(k)), path);
        printf("%s\nPublic key type: %s\n", s, cp2p_key_type_name(cp2p_privkey_type(k)));
    }
    cp2p_privkey_free(k);
    return rc ? cli_fail(path, "%s", cp2p_strerror(rc)) : CLI_OK;
}
