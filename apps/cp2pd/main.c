/* cp2pd: the daemon, a drop-in for go-libp2p-daemon (p2pd). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "-help"))) {
        printf("usage: cp2pd [flags]\n");
        return 0;
    }
    fprintf(stderr, "cp2pd: not available yet\n");
    return 1;
}
