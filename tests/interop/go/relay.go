// peer relay-listen: a go-libp2p peer that reserves a slot on a circuit relay
// v2 (client.Reserve) and listens through it, serving ping and /echo/1.0.0 on
// the relayed connections, for tests/cli/relay_interop.sh.
//
//	peer relay-listen --relay MA [--listen MA] [--hole-punching]
//
// --listen also listens there (TCP); --hole-punching runs DCUtR on the
// relayed connections peers make to us (go-libp2p's EnableHolePunching).
//
// Prints "peer-id <id>" and "listening <relay>/p2p-circuit/p2p/<id>" once
// the reservation is held, "connected <id> transport=..." per connection,
// until SIGINT or SIGTERM (exit 0); "error ..." and exit 1 if the relay
// refuses.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

func relayListenMain(args []string) int {
	fs := flag.NewFlagSet("relay-listen", flag.ContinueOnError)
	relayAddr := fs.String("relay", "", "the relay (/ip4/../tcp/../p2p/ID)")
	listen := fs.String("listen", "", "also listen on this multiaddr")
	holePunch := fs.Bool("hole-punching", false, "DCUtR: upgrade relayed connections to direct ones")
	if err := fs.Parse(args); err != nil || *relayAddr == "" {
		say("error usage: peer relay-listen --relay MA [--listen MA] [--hole-punching]")
		return 2
	}
	relay, err := peer.AddrInfoFromString(*relayAddr)
	if err != nil {
		say("error relay %s: %v", *relayAddr, err)
		return 1
	}
	opts := []libp2p.Option{libp2p.EnableRelay(), libp2p.Ping(true),
		libp2p.ResourceManager(&network.NullResourceManager{}), libp2p.DisableMetrics(),
		libp2p.UserAgent("go-interop")}
	if *listen != "" {
		opts = append(opts, libp2p.ListenAddrStrings(*listen))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	if *holePunch {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		say("error %v", err)
		return 1
	}
	defer h.Close()
	h.SetStreamHandler(echoProtocol, echoHandler)
	h.Network().Notify(&notifee{})
	say("peer-id %s", h.ID())
	for _, a := range h.Addrs() {
		say("listening %s/p2p/%s", a, h.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *relay); err != nil {
		say("error connect to the relay: %v", err)
		return 1
	}
	rsvp, err := client.Reserve(ctx, h, *relay)
	if err != nil {
		say("error reserve: %v", err)
		return 1
	}
	limit := "none"
	if rsvp.LimitDuration > 0 || rsvp.LimitData > 0 {
		limit = fmt.Sprintf("%s/%d", rsvp.LimitDuration, rsvp.LimitData)
	}
	say("reserved expire=%d limit=%s voucher=%t", rsvp.Expiration.Unix(), limit, rsvp.Voucher != nil)
	say("listening %s/p2p-circuit/p2p/%s", *relayAddr, h.ID())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return 0
}
