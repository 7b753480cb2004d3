/* The commands' option tables (cli.h): one parser for every command's
 * flags, values, numbers, repeated options and positional arguments, with
 * the same one-line errors. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* 1 if arg is one of name's spellings ("--verbose|-v"). */
static int named(const char *name, const char *arg)
{
    size_t n = strlen(arg);
    for (const char *p = name; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !memcmp(p, arg, n))
            return 1;
        p += len + (bar != NULL);
    }
    return 0;
}

static int add(cli_list_t *l, const char *v)
{
    if (!l || l->n >= l->cap)
        return 0;
    l->v[l->n++] = v;
    return 1;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt_t *opts,
              void (*usage)(FILE *), cli_list_t *positional)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return CLI_HELP;
        }
        const cli_opt_t *opt = NULL;
        for (const cli_opt_t *t = opts; t->name && !opt; t++)
            if (named(t->name, o))
                opt = t;
        if (!opt) {
            if (o[0] == '-' && o[1])
                return cli_usage(cmd, "unknown option %s", o);
            if (!add(positional, o))
                return cli_usage(cmd, "unexpected argument %s", o);
            continue;
        }
        if (opt->kind == CLI_FLAG) {
            *(int *)opt->dst = 1;
            continue;
        }
        if (i + 1 >= argc)
            return cli_usage(cmd, "%s needs a value", o);
        const char *v = argv[++i];
        char *end;
        double num;
        switch (opt->kind) {
        case CLI_STR:
            *(const char **)opt->dst = v;
            break;
        case CLI_LIST:
            if (!add(opt->dst, v))
                return cli_usage(cmd, "too many %s (at most %zu)", o,
                                 ((cli_list_t *)opt->dst)->cap);
            break;
        case CLI_NUM:
            num = strtod(v, &end);
            if (end == v || *end || !(num >= opt->min && num <= opt->max))
                return cli_usage(cmd, "bad option %s %s", o, v);
            *(double *)opt->dst = num;
            break;
        case CLI_FLAG:
            break;
        }
    }
    return CLI_OK;
}
