/* AutoNAT for the cp2p commands (cli_autonat.h). */
#include <string.h>

#include "cli_autonat.h"
#include "cp2p/error.h"
#include "cp2p/multiaddr.h"

void cli_autonat_usage(FILE *f)
{
    fprintf(f,
            "  --autonat-service        answer AutoNAT (v1 and v2) dial-back requests\n"
            "  --no-autonat             do not ask peers whether we are reachable\n"
            "  --no-autonat-v2          AutoNAT v1 only (service and client)\n"
            "  --allow-private-dialback dial back, and ask to be dialled on, loopback and\n"
            "                           private addresses (tests, private networks)\n"
            "  --reachability R         public or private: forced, AutoNAT does not probe\n"
            "  --announce MA            advertise MA instead of the listen addresses; repeatable\n"
            "  --autonat-interval S     first AutoNAT probe after S seconds, then every S while\n"
            "                           unsure (default 15, then 90: go-libp2p's)\n");
}

int cli_autonat_config(cli_autonat_t *x, const char *cmd, cp2p_host_config_t *cfg)
{
    if (x->reachability) {
        if (!strcmp(x->reachability, "public"))
            cfg->force_reachability = CP2P_REACHABILITY_PUBLIC;
        else if (!strcmp(x->reachability, "private"))
            cfg->force_reachability = CP2P_REACHABILITY_PRIVATE;
        else
            return cli_usage(cmd, "bad option --reachability %s (public or private)", x->reachability);
    }
    if (x->allow_private)
        cfg->keep_private_addrs = 1;
    x->host_cfg = cfg;
    for (size_t i = 0; i < x->announce.n; i++) {
        cp2p_multiaddr_t ma;
        if (cp2p_multiaddr_parse(x->announce.v[i], &ma) < 0)
            return cli_usage(cmd, "bad option --announce %s", x->announce.v[i]);
        cp2p_multiaddr_free(&ma);
    }
    return CLI_OK;
}

static void print_reachability(cp2p_reachability_t r)
{
    printf("reachability: %s\n", cp2p_reachability_name(r));
    fflush(stdout);
}

static void on_event(const cp2p_event_t *ev, void *arg)
{
    if (ev->type == CP2P_EVENT_REACHABILITY)
        print_reachability(ev->reachability);
}

int cli_autonat_start(cli_autonat_t *x, cp2p_host_t *h)
{
    x->h = h;
    int rc = 0;
    if (x->announce.n) {
        cp2p_multiaddr_t an[8];
        size_t n = 0;
        for (size_t i = 0; !rc && i < x->announce.n; i++)
            if (!(rc = cp2p_multiaddr_parse(x->announce.v[i], &an[n])))
                n++;
        if (!rc)
            rc = cp2p_host_set_announce_addrs(h, an, n);
        for (size_t i = 0; i < n; i++)
            cp2p_multiaddr_free(&an[i]);
        if (rc)
            return rc;
    }
    cp2p_autonat_config_t cfg = {
        .service = x->service,
        .client = !x->no_client,
        .allow_private = x->allow_private,
        .disable_v2 = x->no_v2,
        .dialer_config = x->host_cfg,
    };
    if (x->interval > 0) {
        cfg.boot_delay_ms = (uint32_t)(x->interval * 1000);
        cfg.retry_ms = cfg.boot_delay_ms;
        /* The same server may be asked again at that pace. */
        cfg.peer_period_ms = cfg.boot_delay_ms;
    }
    if (cfg.service || cfg.client)
        rc = cp2p_autonat_enable(h, &cfg, &x->an);
    if (!rc)
        rc = cp2p_host_subscribe(h, on_event, x);
    if (!rc && cp2p_host_reachability_forced(h))
        print_reachability(cp2p_host_reachability(h));
    return rc;
}

void cli_autonat_stop(cli_autonat_t *x)
{
    if (x->h)
        cp2p_host_unsubscribe(x->h, on_event, x);
    cp2p_autonat_free(x->an);
    x->an = NULL;
    x->h = NULL;
}
