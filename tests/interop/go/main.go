// A go-libp2p peer for the cp2p interop scenarios: tcp + noise|tls + yamux,
// ping, identify and an /echo/1.0.0 protocol. It speaks the same lines as
// ../peer.mjs (the js-libp2p peer), one machine-readable line per fact on
// stdout: "peer-id <id>", "listening <ma>", "connected <id> ...",
// "ping rtt=<ms> ms", "identified <id> agent=... protocols=... addrs=...
// record=<seq>|none", "echo ok streams=N bytes=B ms=T", "error ...". Beside
// them, what js does not show: "observed <id> addr=<ma> local=<ma>
// protocol-version=<v>", the address the remote says it saw us at (identify's
// observedAddr) beside the connection's own local address. Exit 0 when the
// requested work succeeded, 1 with an "error ..." line otherwise.
//
// Usage:
//
//	peer [--listen MA] [--dial MA] [--security noise|tls] [--muxer yamux]
//	     [--ping N] [--echo-streams N --echo-size BYTES] [--wait-identify]
//	     [--agent NAME]
//	peer mdns ...   (go-libp2p's mDNS discovery: mdns.go)
//	peer nat ...    (relay, DCUtR, AutoNAT in the NAT test network: nat.go)
//
// go-libp2p dropped mplex (v0.52.0 has no mplex transport): yamux is the
// only muxer, and --muxer mplex is refused.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	echoProtocol = "/echo/1.0.0"
	chunk        = 64 * 1024
)

type options struct {
	listen, dial, security, muxer, agent string
	reachability, announce               string
	relayService, relayClient, holePunch bool
	autonatService, autonatV2            bool
	ping, echoStreams, echoSize          int
	waitIdentify                         bool
	stay                                 time.Duration
	psk                                  string
}

var out sync.Mutex

// say prints one line whole, even from several goroutines.
func say(format string, args ...any) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func parseArgs() options {
	var o options
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.StringVar(&o.listen, "listen", "", "listen on this multiaddr")
	fs.StringVar(&o.dial, "dial", "", "dial this multiaddr (/ip4/../tcp/../p2p/ID) and do the work on that connection")
	fs.StringVar(&o.security, "security", "noise", "noise or tls")
	fs.StringVar(&o.muxer, "muxer", "yamux", "yamux (go-libp2p has no mplex)")
	fs.StringVar(&o.agent, "agent", "go-interop", "identify agent version")
	fs.IntVar(&o.ping, "ping", 0, "ping the dialed peer N times")
	fs.IntVar(&o.echoStreams, "echo-streams", 0, "open N concurrent echo streams to the dialed peer")
	fs.IntVar(&o.echoSize, "echo-size", 1024*1024, "bytes sent and checked on each echo stream")
	fs.BoolVar(&o.waitIdentify, "wait-identify", false, "wait (10 s at most) until identify of the dialed peer completed")
	fs.StringVar(&o.psk, "psk", "", "private network key file (swarm.key); go-libp2p then runs tcp and ws only: it refuses quic with a pnet")
	// Ready for the issues that bring them to cp2p (#18 NAT traversal, #19 transports):
	// --listen takes several addresses, comma-separated, on tcp, quic-v1 and ws.
	fs.BoolVar(&o.relayService, "relay-service", false, "serve circuit relay v2 (hop) to others")
	fs.BoolVar(&o.relayClient, "relay-client", false, "dial and listen through relays (/p2p-circuit)")
	fs.BoolVar(&o.holePunch, "hole-punching", false, "DCUtR: upgrade relayed connections to direct ones")
	fs.BoolVar(&o.autonatService, "autonat-service", false, "answer AutoNAT v1 dial-back requests")
	fs.BoolVar(&o.autonatV2, "autonat-v2", false, "AutoNAT v2, client and server")
	fs.StringVar(&o.reachability, "force-reachability", "", "public or private (AutoNAT's verdict, forced)")
	fs.DurationVar(&o.stay, "stay", 0, "after the work, stay connected this long (AutoNAT probes: autonat.go)")
	fs.StringVar(&o.announce, "announce", "", "advertise these addresses (comma-separated) instead of the listen ones (autonat.go)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		say("error usage %v", err)
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		say("error usage unexpected argument %s", fs.Arg(0))
		os.Exit(2)
	}
	return o
}

// echoHandler sends back every byte until EOF, then closes the stream.
func echoHandler(s network.Stream) {
	if _, err := io.Copy(s, s); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

func pattern(index, offset, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(index*31 + offset + i)
	}
	return b
}

// echoOnce sends size bytes on one echo stream while reading them back, and
// checks that all of them came back intact.
func echoOnce(ctx context.Context, h host.Host, p peer.ID, index, size int) error {
	// A relayed (limited) connection carries the echo too: the tests check its limits.
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "echo"), p, echoProtocol)
	if err != nil {
		return fmt.Errorf("echo stream %d: %w", index, err)
	}
	defer s.Close()
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < size; off += chunk {
			b := pattern(index, off, min(chunk, size-off))
			sent.Write(b)
			if _, err := s.Write(b); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.CloseWrite()
	}()
	got := sha256.New()
	received, rerr := io.Copy(got, s)
	if err := <-werr; err != nil {
		s.Reset()
		return fmt.Errorf("echo stream %d: write: %w", index, err)
	}
	if rerr != nil {
		s.Reset()
		return fmt.Errorf("echo stream %d: read: %w", index, rerr)
	}
	if received != int64(size) || string(sent.Sum(nil)) != string(got.Sum(nil)) {
		return fmt.Errorf("echo stream %d: %d of %d bytes came back intact", index, received, size)
	}
	return nil
}

func joinAddrs(addrs []ma.Multiaddr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// sayIdentified prints what identify learnt of a peer, as peer.mjs does.
func sayIdentified(ev event.EvtPeerIdentificationCompleted) {
	protos := make([]string, len(ev.Protocols))
	for i, p := range ev.Protocols {
		protos[i] = string(p)
	}
	record := "none"
	if ev.SignedPeerRecord != nil {
		if r, err := ev.SignedPeerRecord.Record(); err == nil {
			if pr, ok := r.(*peer.PeerRecord); ok {
				record = fmt.Sprint(pr.Seq)
			}
		}
	}
	say("identified %s agent=%s protocols=%s addrs=%s record=%s",
		ev.Peer, ev.AgentVersion, strings.Join(protos, ","), joinAddrs(ev.ListenAddrs), record)
	observed, local := "none", "none"
	if ev.ObservedAddr != nil {
		observed = ev.ObservedAddr.String()
	}
	if ev.Conn != nil {
		local = ev.Conn.LocalMultiaddr().String()
	}
	say("observed %s addr=%s local=%s protocol-version=%s", ev.Peer, observed, local, ev.ProtocolVersion)
}

type notifee struct{ network.NoopNotifiee }

// Connected prints, beside the peer, what the connection runs on: the
// security protocol and muxer negotiated, and whether the muxer was agreed
// inside the security handshake (noise extensions, TLS ALPN).
func (*notifee) Connected(_ network.Network, c network.Conn) {
	st := c.ConnState()
	say("connected %s transport=%s security=%s muxer=%s early-muxer=%t",
		c.RemotePeer(), st.Transport, st.Security, st.StreamMultiplexer, st.UsedEarlyMuxerNegotiation)
}

func run(o options) error {
	if o.muxer != "yamux" {
		return fmt.Errorf("muxer %s: go-libp2p has no mplex any more, only yamux", o.muxer)
	}
	var security libp2p.Option
	switch o.security {
	case "noise":
		security = libp2p.Security(noise.ID, noise.New)
	case "tls":
		security = libp2p.Security(tls.ID, tls.New)
	default:
		return fmt.Errorf("security %s: noise or tls expected", o.security)
	}
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(websocket.New),
		security,
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(o.agent),
		libp2p.Ping(true),
		// A test peer: no limits of its own on the 100 concurrent streams.
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableMetrics(),
	}
	if o.psk == "" {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	} else {
		f, err := os.Open(o.psk)
		if err != nil {
			return err
		}
		psk, err := pnet.DecodeV1PSK(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("psk %s: %w", o.psk, err)
		}
		opts = append(opts, libp2p.PrivateNetwork(psk))
	}
	if o.relayClient || o.relayService {
		opts = append(opts, libp2p.EnableRelay())
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if o.relayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if o.holePunch {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	if o.autonatService {
		opts = append(opts, libp2p.EnableNATService())
	}
	if o.autonatV2 {
		opts = append(opts, libp2p.EnableAutoNATv2())
	}
	switch o.reachability {
	case "":
	case "public":
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case "private":
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	default:
		return fmt.Errorf("force-reachability %s: public or private expected", o.reachability)
	}
	if o.announce != "" {
		opt, err := announceOption(o.announce)
		if err != nil {
			return fmt.Errorf("announce %s: %w", o.announce, err)
		}
		opts = append(opts, opt)
	}
	if o.listen != "" {
		opts = append(opts, libp2p.ListenAddrStrings(strings.Split(o.listen, ",")...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(echoProtocol, echoHandler)
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return err
	}
	defer sub.Close()
	h.Network().Notify(&notifee{})
	stopReach, err := sayReachability(h)
	if err != nil {
		return err
	}
	defer stopReach()

	var target *peer.AddrInfo
	if o.dial != "" {
		if target, err = peer.AddrInfoFromString(o.dial); err != nil {
			return fmt.Errorf("dial %s: %w", o.dial, err)
		}
	}
	identified := make(chan struct{})
	go func() {
		once := sync.Once{}
		for e := range sub.Out() {
			ev := e.(event.EvtPeerIdentificationCompleted)
			sayIdentified(ev)
			if target != nil && ev.Peer == target.ID {
				once.Do(func() { close(identified) })
			}
		}
	}()

	say("peer-id %s", h.ID())
	for _, a := range h.Addrs() {
		say("listening %s/p2p/%s", a, h.ID())
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if target == nil {
		<-stop
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()

	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	err = h.Connect(dctx, *target)
	dcancel()
	if err != nil {
		return fmt.Errorf("dial %s: %w", o.dial, err)
	}
	if o.ping > 0 {
		pctx, pcancel := context.WithTimeout(ctx, time.Duration(o.ping)*5*time.Second+10*time.Second)
		results := ping.Ping(pctx, h, target.ID)
		for i := 0; i < o.ping; i++ {
			r, ok := <-results
			if !ok {
				pcancel()
				return errors.New("ping: the results stopped")
			}
			if r.Error != nil {
				pcancel()
				return fmt.Errorf("ping: %w", r.Error)
			}
			say("ping rtt=%.3f ms", float64(r.RTT.Microseconds())/1000)
		}
		pcancel()
	}
	if o.echoStreams > 0 {
		t0 := time.Now()
		errs := make(chan error, o.echoStreams)
		for i := 0; i < o.echoStreams; i++ {
			go func(i int) { errs <- echoOnce(ctx, h, target.ID, i, o.echoSize) }(i)
		}
		var first error
		for i := 0; i < o.echoStreams; i++ {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		if first != nil {
			return first
		}
		say("echo ok streams=%d bytes=%d ms=%d", o.echoStreams, o.echoSize, time.Since(t0).Milliseconds())
	}
	if o.waitIdentify {
		select {
		case <-identified:
		case <-time.After(10 * time.Second):
			return errors.New("no identify within 10 s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if o.stay > 0 {
		select {
		case <-time.After(o.stay):
		case <-ctx.Done():
		}
	}
	return nil
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] { // the modes beside the default one, each in its own file
		case "dht":
			os.Exit(dhtMain(os.Args[2:])) // dht.go
		case "transport-interop":
			os.Exit(transportInterop()) // transport_interop.go
		case "pubsub":
			os.Exit(pubsubMain(os.Args[2:])) // pubsub.go
		case "mdns":
			os.Exit(mdnsMain(os.Args[2:])) // mdns.go
		case "nat":
			os.Exit(natMain(os.Args[2:])) // nat.go
		case "relay-listen":
			os.Exit(relayListenMain(os.Args[2:])) // relay.go
		}
	}
	if err := run(parseArgs()); err != nil {
		say("error %v", err)
		os.Exit(1)
	}
}
