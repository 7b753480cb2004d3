/* cp2p keygen: write a new private key in the protobuf format of the peer-ids
 * spec ("Keys"), as go-libp2p and js-libp2p store them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cp2p/error.h"
#include "cp2p/keys.h"
#include "cp2p/log.h"
#include "cp2p/peer.h"
#include "cp2p/pnet.h"

static void help(FILE *f)
{
    fprintf(f, "usage: cp2p keygen [--type ed25519|secp256k1|ecdsa|rsa] [--bits N] --out FILE [--force]\n"
               "       cp2p keygen --psk --out FILE [--force]\n"
               "Write a new private key (mode 0600) and print its peer ID; with --psk, a new\n"
               "private network key (the /key/swarm/psk/1.0.0/ swarm.key format of go-libp2p\n"
               "and js-libp2p) for --psk FILE of ping, dht, mdns and pubsub.\n"
               "  --type T     key type (default ed25519); ecdsa is P-256\n"
               "  --bits N     RSA modulus size, %d to %d (default %d)\n"
               "  --out FILE   where to write the key\n"
               "  --force      overwrite FILE if it exists\n"
               "  --psk        a private network key instead of an identity\n",
            CP2P_RSA_MIN_BITS, CP2P_RSA_MAX_BITS, CP2P_RSA_MIN_BITS);
}

/* The file was claimed (created empty) already unless force. */
static int write_psk(const char *out, int force)
{
    cp2p_buf_t b = {0};
    int rc = cp2p_pnet_key_generate(&b);
    int fd = rc ? -1 : open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len;
    if (fd >= 0 && close(fd))
        ok = 0;
    explicit_bzero(b.data, b.len);
    cp2p_buf_free(&b);
    if (!ok) {
        int e = errno;
        if (!force)
            unlink(out);
        return cli_fail(out, "%s", rc ? cp2p_strerror(rc) : strerror(e));
    }
    cp2p_log_info("cli", "wrote a private network key to %s", out);
    return CLI_OK;
}

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL, *type_name = "ed25519", *bits_s = NULL;
    int bits = 0, force = 0, psk = 0;
    const cli_opt_t opts[] = {
        CLI_OPTION("--type", CLI_STR, &type_name),
        CLI_OPTION("--bits", CLI_STR, &bits_s),
        CLI_OPTION("--out", CLI_STR, &out),
        CLI_OPTION("--force", CLI_FLAG, &force),
        CLI_OPTION("--psk", CLI_FLAG, &psk),
        CLI_END,
    };
    int prc = cli_parse("keygen", argc, argv, opts, help, NULL);
    if (prc)
        return prc == CLI_HELP ? CLI_OK : prc;
    if (bits_s) {
        char *end;
        errno = 0;
        long v = strtol(bits_s, &end, 10);
        if (errno || *end || end == bits_s || v < CP2P_RSA_MIN_BITS || v > CP2P_RSA_MAX_BITS)
            return cli_usage("keygen", "--bits must be a number from %d to %d",
                             CP2P_RSA_MIN_BITS, CP2P_RSA_MAX_BITS);
        bits = (int)v;
    }
    if (!out)
        return cli_usage("keygen", "--out FILE is required");
    if (psk && (bits_s || strcmp(type_name, "ed25519")))
        return cli_usage("keygen", "--psk takes no --type or --bits");
    int type = cp2p_key_type_parse(type_name);
    if (type < 0)
        return cli_fail("keygen", "unknown key type '%s' (ed25519, secp256k1, ecdsa, rsa)", type_name);
    if (bits && type != CP2P_KEY_RSA)
        return cli_usage("keygen", "--bits applies to rsa keys only");

    /* Claim the name first, so that an existing key is never clobbered by a race. */
    if (!force) {
        int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return cli_fail(out, "%s", errno == EEXIST ? "exists (use --force to overwrite)"
                                                       : strerror(errno));
        close(fd);
    }
    if (psk)
        return write_psk(out, force);
    cp2p_privkey_t *k = NULL;
    cp2p_peer_id_t id;
    char s[CP2P_PEER_ID_STRMAX];
    int rc = cp2p_privkey_generate((cp2p_key_type_t)type, bits, &k);
    if (!rc)
        rc = cp2p_privkey_save_file(k, out);
    if (!rc)
        rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id);
    if (!rc)
        rc = cp2p_peer_id_to_string(&id, s, sizeof s);
    cp2p_privkey_free(k);
    if (rc) {
        if (!force)
            unlink(out);
        return cli_fail(out, "%s", cp2p_strerror(rc));
    }
    cp2p_log_info("cli", "wrote %s key to %s", cp2p_key_type_name((cp2p_key_type_t)type), out);
    printf("%s\n", s);
    return CLI_OK;
}
