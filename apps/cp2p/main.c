/* cp2p: the command-line program (id, keygen, ping, mdns, dht, perf); dispatches
 * to the commands listed in cli.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cp2p/error.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
#define X(name, help) {#name, cmd_##name, help},
    CP2P_COMMANDS
#undef X
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cp2p <command> [options]\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "run 'cp2p <command> --help' for a command's options\n"
               "set CP2P_LOG=error|warn|info|debug|trace for logs on stderr\n");
}

__attribute__((format(printf, 2, 0))) static void vreport(const char *what, const char *fmt,
                                                         va_list ap)
{
    fprintf(stderr, "cp2p: %s: ", what);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(what, fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "cp2p: %s: %s (try 'cp2p %s --help')\n", cmd, msg, cmd);
    return CLI_USAGE;
}

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

char *cli_next_word(char **p)
{
    while (blank(**p))
        (*p)++;
    if (!**p)
        return NULL;
    char *w = *p;
    while (**p && !blank(**p))
        (*p)++;
    if (**p)
        *(*p)++ = 0;
    return w;
}

char *cli_rest(char *p)
{
    while (blank(*p))
        p++;
    size_t n = strlen(p);
    while (n && blank(p[n - 1]))
        p[--n] = 0;
    return p;
}

const char *cli_key_error(int rc)
{
    switch (rc) {
    case CP2P_ENOTFOUND: return "no such file";
    case CP2P_EPARSE: return "not a libp2p private key (malformed protobuf or key data)";
    case CP2P_EUNSUPPORTED: return "unsupported key type";
    case CP2P_EOVERFLOW: return "file too large for a key";
    default: return cp2p_strerror(rc);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cp2p: %s: unknown command (try 'cp2p --help')\n", argv[1]);
    return CLI_USAGE;
}
