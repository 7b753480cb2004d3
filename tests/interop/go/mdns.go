// peer mdns: go-libp2p's own mDNS discovery (p2p/discovery/mdns, which
// answers and browses with zeroconf) on a tcp + noise + yamux host serving
// ping, for tests/cli/mdns_mixed.sh. Lines on stdout, as cp2p mdns prints
// them: "peer-id <id>", "listening <ma>/p2p/<id>", then
// "discovered <peer id> <multiaddr>" once per address a peer announces, and
// with --dial "dialed <peer id> <multiaddr>" once an outbound connection to a
// discovered peer is up (or "dial-failed <peer id> <reason>"). It exits 0 on
// SIGINT or SIGTERM, after go-libp2p's goodbye (records with TTL 0).
//
// Usage:
//
//	peer mdns [--listen MA] [--dial]
//
// What go-libp2p's mDNS cannot do, and so this peer does not print:
//   - expiry: its Notifee has HandlePeerFound only, no event when a peer's
//     records run out or it says goodbye, so there is no "expired" line;
//   - a query interval or a record TTL of our choosing: zeroconf queries at
//     once, then after 4 s, growing to 60 s, and announces TTL 3200 s
//     (120 s for the A records); no option of go-libp2p sets either;
//   - peers whose response has no SRV record and address record (rust-libp2p
//     sends PTR and TXT only): zeroconf drops an entry without a host address
//     before go-libp2p ever sees its TXT records.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

type mdnsNotifee struct {
	h      host.Host
	ctx    context.Context
	dial   bool
	mu     sync.Mutex
	seen   map[string]bool  // "<id> <addr>" printed
	dialed map[peer.ID]bool // dial started
}

// HandlePeerFound runs on a goroutine of its own for every entry zeroconf
// passes on: the same peer comes again once its entry expired there.
func (n *mdnsNotifee) HandlePeerFound(info peer.AddrInfo) {
	n.mu.Lock()
	for _, a := range info.Addrs {
		k := info.ID.String() + " " + a.String()
		if !n.seen[k] {
			n.seen[k] = true
			say("discovered %s %s", info.ID, a)
		}
	}
	start := n.dial && !n.dialed[info.ID]
	n.dialed[info.ID] = true
	n.mu.Unlock()
	if start {
		n.connect(info)
	}
}

// connect dials a discovered peer over the addresses mDNS gave; an inbound
// connection from it does not count (a direct dial is forced past it).
func (n *mdnsNotifee) connect(info peer.AddrInfo) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	n.h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Minute)
	ctx = network.WithForceDirectDial(ctx, "mdns")
	if _, err := n.h.Network().DialPeer(ctx, info.ID); err != nil {
		say("dial-failed %s %v", info.ID, err)
		return
	}
	for _, c := range n.h.Network().ConnsToPeer(info.ID) {
		if c.Stat().Direction == network.DirOutbound {
			say("dialed %s %s", info.ID, c.RemoteMultiaddr())
			return
		}
	}
	say("dial-failed %s no outbound connection", info.ID)
}

func mdnsMain(args []string) int {
	fs := flag.NewFlagSet("peer mdns", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	listen := fs.String("listen", "/ip4/0.0.0.0/tcp/0", "listen on this multiaddr")
	dial := fs.Bool("dial", false, "connect to every peer discovered")
	if err := fs.Parse(args); err != nil {
		say("error usage %v", err)
		return 2
	}
	if fs.NArg() > 0 {
		say("error usage unexpected argument %s", fs.Arg(0))
		return 2
	}
	if err := runMdns(*listen, *dial); err != nil {
		say("error %v", err)
		return 1
	}
	return 0
}

func runMdns(listen string, dial bool) error {
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent("go-interop"),
		libp2p.Ping(true),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return err
	}
	defer h.Close()
	say("peer-id %s", h.ID())
	for _, a := range h.Addrs() {
		say("listening %s/p2p/%s", a, h.ID())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	n := &mdnsNotifee{h: h, ctx: ctx, dial: dial, seen: map[string]bool{}, dialed: map[peer.ID]bool{}}
	svc := mdns.NewMdnsService(h, "", n)
	if err := svc.Start(); err != nil {
		return fmt.Errorf("mdns: %w", err)
	}
	<-stop
	cancel()
	return svc.Close() // the goodbye
}
