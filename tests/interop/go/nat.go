// peer nat: go-libp2p in the NAT test network (tests/nat): a relay (circuit
// relay v2 hop + AutoNAT v1 server), a host behind NAT that reserves a slot
// on it, and a host that dials that one through the relay and reports
// whether DCUtR turned the relayed connection into a direct one. Lines:
// "peer-id <id>", "listening <ma>", "reachability public|private|unknown",
// "address <ma>" (each new address of ours, e.g. one a port mapping made),
// "reserved <relay ma>/p2p-circuit/p2p/<id>", "connected <id> addr=<ma>
// relayed=<bool>", "direct <ma>" or "relayed <ma>", "ping rtt=<ms> ms
// via=<ma>", "error ...".
//
// Usage:
//
//	peer nat relay  --listen MA
//	peer nat listen --listen MA [--relay MA] [--hole-punching] [--port-map]
//	peer nat dial   --listen MA --relay MA --target MA [--hole-punching]
//	                [--wait-direct SECONDS] [--ping N]
//
// The test network's "internet" is 10.0.0.0/8 (private, so that every address
// stays inside the test's namespaces). go-libp2p's AutoNAT, DCUtR and relay
// reservations only consider public addresses (manet.IsPublicAddr), so this
// mode counts 10.0.0.0/8 as public; the LANs behind the routers are
// 192.168.0.0/16 and stay private.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

type natNotifee struct{ network.NoopNotifiee }

func (*natNotifee) Connected(_ network.Network, c network.Conn) {
	say("connected %s addr=%s relayed=%t", c.RemotePeer(), c.RemoteMultiaddr(), isCircuit(c.RemoteMultiaddr()))
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// tenIsPublic drops 10.0.0.0/8 from go-multiaddr's private ranges (see above).
func tenIsPublic() {
	_, ten, _ := net.ParseCIDR("10.0.0.0/8")
	manet.Private4 = slices.DeleteFunc(manet.Private4, func(n *net.IPNet) bool { return n.String() == ten.String() })
}

func natMain(args []string) int {
	if len(args) < 1 {
		say("error usage: peer nat relay|listen|dial ...")
		return 2
	}
	role := args[0]
	fs := flag.NewFlagSet("peer nat", flag.ContinueOnError)
	listen := fs.String("listen", "/ip4/0.0.0.0/tcp/0", "listen on this multiaddr")
	relayMA := fs.String("relay", "", "the relay's multiaddr with /p2p/ID")
	target := fs.String("target", "", "dial: the /p2p-circuit address to dial")
	holePunch := fs.Bool("hole-punching", false, "DCUtR")
	portMap := fs.Bool("port-map", false, "map the listen port on the gateway (UPnP IGD, NAT-PMP)")
	waitDirect := fs.Int("wait-direct", 20, "dial: seconds to wait for a direct connection")
	pings := fs.Int("ping", 3, "dial: pings on the final connection")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	tenIsPublic()
	if err := natRun(role, *listen, *relayMA, *target, *holePunch, *portMap, *waitDirect, *pings); err != nil {
		say("error %v", err)
		return 1
	}
	return 0
}

func natRun(role, listen, relayMA, target string, holePunch, portMap bool, waitDirect, pings int) error {
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings(listen),
		libp2p.UserAgent("go-interop-nat"),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
		libp2p.EnableRelay(),
	}
	switch role {
	case "relay":
		opts = append(opts, libp2p.EnableRelayService(), libp2p.EnableNATService(),
			libp2p.ForceReachabilityPublic())
	case "listen", "dial":
		if relayMA == "" && (role == "dial" || holePunch) {
			return errors.New("usage: --relay is required")
		}
		if holePunch {
			opts = append(opts, libp2p.EnableHolePunching())
		}
		if portMap {
			opts = append(opts, libp2p.NATPortMap())
		}
	default:
		return fmt.Errorf("usage: unknown role %s (relay, listen or dial)", role)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()
	h.Network().Notify(&natNotifee{})
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated)})
	if err != nil {
		return err
	}
	defer sub.Close()
	go func() {
		for e := range sub.Out() {
			switch ev := e.(type) {
			case event.EvtLocalReachabilityChanged:
				say("reachability %s", strings.ToLower(ev.Reachability.String()))
			case event.EvtLocalAddressesUpdated:
				for _, a := range ev.Current {
					if a.Action == event.Added {
						say("address %s", a.Address)
					}
				}
			}
		}
	}()
	say("peer-id %s", h.ID())
	for _, a := range h.Addrs() {
		say("listening %s/p2p/%s", a, h.ID())
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	if role == "relay" {
		<-ctx.Done()
		return nil
	}

	if relayMA == "" { // listen with no relay: a port mapping, or nothing
		<-ctx.Done()
		return nil
	}
	if portMap {
		// AutoNAT's first probe (once the relay is met) should carry the
		// mapped address: wait for it (10 s at most) before going there.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if slices.ContainsFunc(h.Addrs(), manet.IsPublicAddr) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	relay, err := peer.AddrInfoFromString(relayMA)
	if err != nil {
		return fmt.Errorf("relay %s: %w", relayMA, err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	err = h.Connect(cctx, *relay)
	ccancel()
	if err != nil {
		return fmt.Errorf("connect to the relay: %w", err)
	}
	if holePunch {
		// DCUtR answers only once identify gave us an address to offer
		// (holepunch.Service waits for one): wait for that before going on.
		if err := waitProtocol(ctx, h, holepunch.Protocol, 15*time.Second); err != nil {
			return err
		}
	}
	if role == "listen" {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := client.Reserve(rctx, h, *relay)
		rcancel()
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		say("reserved %s/p2p/%s/p2p-circuit/p2p/%s (expires in %ds)", relay.Addrs[0], relay.ID, h.ID(),
			int(time.Until(res.Expiration).Seconds()))
		<-ctx.Done()
		return nil
	}

	ai, err := peer.AddrInfoFromString(target)
	if err != nil {
		return fmt.Errorf("target %s: %w", target, err)
	}
	cctx, ccancel = context.WithTimeout(ctx, 10*time.Second)
	err = h.Connect(network.WithAllowLimitedConn(cctx, "nat test"), *ai)
	ccancel()
	if err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}
	var final ma.Multiaddr
	deadline := time.Now().Add(time.Duration(waitDirect) * time.Second)
	for final == nil && time.Now().Before(deadline) {
		for _, c := range h.Network().ConnsToPeer(ai.ID) {
			if !isCircuit(c.RemoteMultiaddr()) {
				final = c.RemoteMultiaddr()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if final != nil {
		say("direct %s", final)
	} else if cs := h.Network().ConnsToPeer(ai.ID); len(cs) > 0 {
		say("relayed %s", cs[0].RemoteMultiaddr())
	} else {
		return errors.New("no connection to the target left")
	}
	for i := 0; i < pings; i++ {
		if err := pingOnce(ctx, h, ai.ID); err != nil {
			return err
		}
	}
	return nil
}

func waitProtocol(ctx context.Context, h host.Host, p protocol.ID, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !slices.Contains(h.Mux().Protocols(), p) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s handler within %v (no address to offer)", p, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// pingOnce runs one ping (32 bytes out and back) and says which connection
// carried it: the best one go-libp2p picks, direct before relayed.
func pingOnce(ctx context.Context, h host.Host, p peer.ID) error {
	sctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "ping"), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(sctx, p, ping.ID)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, ping.PingSize)
	rand.Read(b)
	t0 := time.Now()
	if _, err := s.Write(b); err != nil {
		return fmt.Errorf("ping: write: %w", err)
	}
	back := make([]byte, len(b))
	if _, err := io.ReadFull(s, back); err != nil {
		return fmt.Errorf("ping: read: %w", err)
	}
	if !bytes.Equal(b, back) {
		return errors.New("ping: wrong bytes came back")
	}
	say("ping rtt=%.3f ms via=%s", float64(time.Since(t0).Microseconds())/1000, s.Conn().RemoteMultiaddr())
	return nil
}
