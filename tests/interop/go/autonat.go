// What cp2p's AutoNAT tests (#18) need of the go peer: a "reachability
// public|private|unknown" line each time go-libp2p's AutoNAT (v1) changes its
// verdict, a "reachable-addrs <ma,...> unreachable=<ma,...>" line each time
// AutoNAT v2's per-address verdicts change, and --announce (advertise these addresses instead of the listen
// addresses, e.g. a port nobody listens on, which makes a client private).
package main

import (
	"strings"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// announceOption advertises the comma-separated addresses in list.
func announceOption(list string) (libp2p.Option, error) {
	var addrs []ma.Multiaddr
	for _, s := range strings.Split(list, ",") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return addrs }), nil
}

// sayReachability prints AutoNAT's verdicts until the returned stop is called.
func sayReachability(h host.Host) (func(), error) {
	sub, err := h.EventBus().Subscribe([]interface{}{new(event.EvtLocalReachabilityChanged),
		new(event.EvtHostReachableAddrsChanged)})
	if err != nil {
		return nil, err
	}
	go func() {
		for e := range sub.Out() {
			if r, ok := e.(event.EvtHostReachableAddrsChanged); ok {
				say("reachable-addrs %s unreachable=%s", joinAddrs(r.Reachable), joinAddrs(r.Unreachable))
				continue
			}
			switch e.(event.EvtLocalReachabilityChanged).Reachability {
			case network.ReachabilityPublic:
				say("reachability public")
			case network.ReachabilityPrivate:
				say("reachability private")
			default:
				say("reachability unknown")
			}
		}
	}()
	return func() { sub.Close() }, nil
}
