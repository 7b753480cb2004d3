/* cp2p: the command-line program (id, keygen, ping, mdns, dht, perf). */
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: cp2p <command> [options]\n"
               "commands:\n"
               "  keygen   write a new private key\n"
               "  id       print the peer ID of a key\n"
               "run 'cp2p <command> --help' for a command's options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "cp2p: unknown command '%s' (try 'cp2p --help')\n", argv[1]);
    return 2;
}
