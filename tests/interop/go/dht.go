// The go-libp2p-kad-dht side of the mixed DHT scenario (tests/cli/dht_mixed.sh):
// "peer dht [--listen MA] [--bootstrap MA]... [--serve] [--timeout S]" runs a
// DHT server on /ipfs/kad/1.0.0 (tcp + noise + yamux), driven by the same stdin
// lines as `cp2p dht` and ../dht.mjs and printing the same result lines:
//
//	PUT <key> <value>     Successfully put record "k" | Failed to put record "k": ...
//	GET <key>             Got record "k" "v" | Failed to get record "k": ...
//	PUT_PROVIDER <cid>    Successfully put provider record "k" | Failed to put provider record "k": ...
//	GET_PROVIDERS <cid>   Peer <id> provides key "k"... | No providers found for key "k"
//	FIND_PEER <peer id>   Peer <id> has address <ma>... | Failed to find peer <id>: ...
//
// First "Local peer id: <id>" and one "Listening on <ma>/p2p/<id>" a
// listen address. Lines run one after the other; at the end of stdin the
// program exits 0, or with --serve keeps serving until SIGINT/SIGTERM. Exit 1
// with an "error ..." line when the node cannot start, 2 on a usage error.
//
// go-libp2p-kad-dht takes only keys under a namespace it has a validator for
// (/pk/ and /ipns/ by default): keys without one ("k1") are refused, locally
// and from the network. The /test/ namespace here takes any value and keeps
// the first of several, as dht.mjs and `cp2p dht --namespace test` do.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

const dhtUsage = "Expected: PUT <key> <value> | GET <key> | PUT_PROVIDER <key> | GET_PROVIDERS <key> | FIND_PEER <peer id>"

// anyValue is the /test/ namespace's validator: every value is valid, and of
// several the first is kept.
type anyValue struct{}

func (anyValue) Validate(string, []byte) error        { return nil }
func (anyValue) Select(string, [][]byte) (int, error) { return 0, nil }

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type dhtNode struct {
	d       *dht.IpfsDHT
	timeout time.Duration
}

// dhtMain is "peer dht ARGS": the exit code.
func dhtMain(args []string) int {
	var listen string
	var boot multiFlag
	var serve bool
	var timeout int
	fs := flag.NewFlagSet("peer dht", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&listen, "listen", "/ip4/127.0.0.1/tcp/0", "listen on this multiaddr")
	fs.Var(&boot, "bootstrap", "a DHT peer, MA ending in /p2p/<id>; repeatable")
	fs.BoolVar(&serve, "serve", false, "keep serving after stdin ends, until SIGINT/SIGTERM")
	fs.IntVar(&timeout, "timeout", 30, "one operation's timeout in seconds")
	if err := fs.Parse(args); err != nil {
		say("error usage %v", err)
		return 2
	}
	if fs.NArg() > 0 {
		say("error usage unexpected argument %s", fs.Arg(0))
		return 2
	}
	var seeds []peer.AddrInfo
	for _, b := range boot {
		ai, err := peer.AddrInfoFromString(b)
		if err != nil {
			say("error usage bootstrap %s: %v", b, err)
			return 2
		}
		seeds = append(seeds, *ai)
	}

	h, err := libp2p.New(
		libp2p.ListenAddrStrings(listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent("go-interop"),
		libp2p.Ping(true),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		say("error %v", err)
		return 1
	}
	defer h.Close()
	// The IpfsDHT alone, not the dual one: the dual DHT's LAN half keeps
	// loopback addresses out and its WAN half takes public addresses only; a
	// bare IpfsDHT has no address, query or routing-table filter. For the
	// /ipfs prefix go-libp2p-kad-dht insists on exactly the /pk and /ipns
	// validators (the Amino network's rules), so the /test/ namespace needs
	// another prefix, with the protocol id set back to /ipfs/kad/1.0.0.
	d, err := dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix("/cp2p-interop"),
		dht.V1ProtocolOverride("/ipfs/kad/1.0.0"),
		dht.NamespacedValidator("test", anyValue{}),
	)
	if err != nil {
		say("error dht: %v", err)
		return 1
	}
	defer d.Close()

	say("Local peer id: %s", h.ID())
	for _, a := range h.Addrs() {
		say("Listening on %s/p2p/%s", a, h.ID())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		cancel()
	}()

	for _, s := range seeds {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.Connect(cctx, s); err != nil {
			fmt.Fprintf(os.Stderr, "peer dht: bootstrap %s: %v\n", s.ID, err)
		}
		ccancel()
	}
	if len(seeds) > 0 {
		// A connected peer enters the routing table once identify says it
		// serves kad and it answered a FIND_NODE: wait for one (10 s at most).
		for i := 0; i < 100 && d.RoutingTable().Size() == 0 && ctx.Err() == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if err := d.Bootstrap(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "peer dht: bootstrap: %v\n", err)
		}
		fmt.Fprintf(os.Stderr, "peer dht: %d peers in the routing table\n", d.RoutingTable().Size())
	}

	n := &dhtNode{d: d, timeout: time.Duration(timeout) * time.Second}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 0, 70000), 70000)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if serve {
					<-ctx.Done()
				}
				return 0
			}
			n.run(ctx, line)
		case <-ctx.Done():
			return 0
		}
	}
}

// providerCid is a provider key as the other peers take it: a CID.
func providerCid(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("not a CID (go-libp2p-kad-dht provides CIDs only): %w", err)
	}
	return c, nil
}

// nextWord splits the first blank-separated word off s.
func nextWord(s string) (string, string) {
	s = strings.TrimLeft(s, " \t\r")
	if i := strings.IndexAny(s, " \t\r"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func (n *dhtNode) run(parent context.Context, line string) {
	cmd, rest := nextWord(line)
	key, rest := nextWord(rest)
	value := strings.TrimSpace(rest) // the rest of the line, as cp2p takes it
	if cmd == "" {
		return
	}
	ctx, cancel := context.WithTimeout(parent, n.timeout)
	defer cancel()
	switch {
	case cmd == "PUT" && key != "" && value != "":
		if err := n.d.PutValue(ctx, key, []byte(value)); err != nil {
			say("Failed to put record %q: %v", key, err)
		} else {
			say("Successfully put record %q", key)
		}
	case cmd == "GET" && key != "" && value == "":
		v, err := n.d.GetValue(ctx, key)
		if err != nil {
			say("Failed to get record %q: %v", key, err)
		} else {
			say("Got record %q %q", key, string(v))
		}
	case cmd == "PUT_PROVIDER" && key != "" && value == "":
		c, err := providerCid(key)
		if err == nil {
			err = n.d.Provide(ctx, c, true)
		}
		if err != nil {
			say("Failed to put provider record %q: %v", key, err)
		} else {
			say("Successfully put provider record %q", key)
		}
	case cmd == "GET_PROVIDERS" && key != "" && value == "":
		c, err := providerCid(key)
		if err != nil {
			say("Failed to get providers for key %q: %v", key, err)
			return
		}
		seen := map[peer.ID]bool{}
		for p := range n.d.FindProvidersAsync(ctx, c, 0) {
			if !seen[p.ID] {
				say("Peer %s provides key %q", p.ID, key)
			}
			seen[p.ID] = true
		}
		if len(seen) == 0 {
			if ctx.Err() != nil {
				say("Failed to get providers for key %q: %v", key, ctx.Err())
			} else {
				say("No providers found for key %q", key)
			}
		}
	case cmd == "FIND_PEER" && key != "" && value == "":
		id, err := peer.Decode(key)
		if err != nil {
			say("Failed to find peer %s: not a peer id", key)
			return
		}
		ai, err := n.d.FindPeer(ctx, id)
		if err == nil && ai.ID != id {
			err = errors.New("another peer answered")
		}
		switch {
		case err != nil:
			say("Failed to find peer %s: %v", key, err)
		case len(ai.Addrs) == 0:
			say("Found peer %s without addresses", key)
		default:
			for _, a := range ai.Addrs {
				say("Peer %s has address %s", key, a)
			}
		}
	default:
		say(dhtUsage)
	}
}
