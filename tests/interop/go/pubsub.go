// `peer pubsub`: go-libp2p-pubsub in the cp2p interop tests, printing the
// lines `cp2p pubsub` prints: "Got message: '<text>' with id: <hex> from
// peer: <author>", "subscribed <peer> <topic>", "unsubscribed <peer>
// <topic>", beside "peer-id <id>" and "listening <ma>". Each stdin line is
// published to the first topic ("PUBLISH <topic> <text>" to another).
//
//	peer pubsub --topic T [--topic T2] [--listen MA] [--dial MA]
//	     [--router gossipsub|floodsub]
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func pubsubMain(args []string) int {
	var topics, dials listFlag
	fs := flag.NewFlagSet("pubsub", flag.ContinueOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "listen on this multiaddr")
	router := fs.String("router", "gossipsub", "gossipsub or floodsub")
	fs.Var(&topics, "topic", "join this topic (repeatable)")
	fs.Var(&dials, "dial", "connect to this multiaddr (repeatable)")
	if err := fs.Parse(args); err != nil || len(topics) == 0 {
		say("error usage: --topic is needed")
		return 2
	}
	h, err := libp2p.New(
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ListenAddrStrings(*listen),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		say("error %v", err)
		return 1
	}
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ps *pubsub.PubSub
	if *router == "floodsub" {
		ps, err = pubsub.NewFloodSub(ctx, h)
	} else {
		ps, err = pubsub.NewGossipSub(ctx, h)
	}
	if err != nil {
		say("error %v", err)
		return 1
	}
	joined := map[string]*pubsub.Topic{}
	for _, name := range topics {
		t, err := ps.Join(name)
		if err != nil {
			say("error join %s: %v", name, err)
			return 1
		}
		joined[name] = t
		sub, err := t.Subscribe()
		if err != nil {
			say("error subscribe %s: %v", name, err)
			return 1
		}
		go func() {
			for {
				m, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if m.ReceivedFrom == h.ID() {
					continue // our own, as rust's and cp2p's chats leave them out
				}
				say("Got message: '%s' with id: %s from peer: %s", m.Data, hex.EncodeToString([]byte(m.ID)), m.GetFrom())
			}
		}()
		ev, err := t.EventHandler()
		if err != nil {
			say("error events %s: %v", name, err)
			return 1
		}
		go func(name string) {
			for {
				e, err := ev.NextPeerEvent(ctx)
				if err != nil {
					return
				}
				if e.Type == pubsub.PeerJoin {
					say("subscribed %s %s", e.Peer, name)
				} else {
					say("unsubscribed %s %s", e.Peer, name)
				}
			}
		}(name)
	}
	say("peer-id %s", h.ID())
	for _, a := range h.Addrs() {
		say("listening %s/p2p/%s", a, h.ID())
	}
	for _, d := range dials {
		ai, err := peer.AddrInfoFromString(d)
		if err == nil {
			err = h.Connect(ctx, *ai)
		}
		if err != nil {
			say("error dial %s: %v", d, err)
			return 1
		}
	}
	go func() {
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			line, topic := in.Text(), topics[0]
			if rest, ok := strings.CutPrefix(line, "PUBLISH "); ok {
				topic, line, _ = strings.Cut(rest, " ")
			}
			t := joined[topic]
			if t == nil {
				if t, err = ps.Join(topic); err != nil {
					say("Publish error: %v", err)
					continue
				}
				joined[topic] = t
			}
			if line == "" {
				continue
			}
			if err := t.Publish(ctx, []byte(line)); err != nil {
				say("Publish error: %v", err)
			}
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return 0
}
