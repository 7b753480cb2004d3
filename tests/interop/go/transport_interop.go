// "peer transport-interop": the go-libp2p side of the libp2p transport-interop
// contract, as cp2p's app (tests/interop/transport/cp2p_transport_interop.c,
// whose opening comment sets the contract out) implements it: configured by
// the environment, old names (transport, security, muxer, is_dialer, ip,
// redis_addr, test_timeout_seconds) or unified-testing ones (TRANSPORT,
// SECURE_CHANNEL, MUXER, IS_DIALER, LISTENER_IP, REDIS_ADDR,
// TEST_TIMEOUT_SECS, TEST_KEY, DEBUG), the unified name first. TEST_KEY set:
// Redis key <TEST_KEY>_listener_multiaddr and a YAML result; unset:
// listenerAddr and the JSON line. The listener RPUSHes its address and serves
// ping until SIGTERM/SIGINT (exit 0) or the timeout (exit 1); the dialer
// BLPOPs it, dials, pings once and prints the result on stdout, the only
// thing there. Exit 2 for an environment it cannot run (tcp only, and yamux
// only: go-libp2p v0.52.0 has no mplex), 1 for a failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/redis/go-redis/v9"
)

type tiConfig struct {
	transport, security, muxer, ip, redisAddr, testKey, key string
	isDialer                                                bool
	timeout                                                 time.Duration
}

// errConfig marks what exits 2: the environment asks for what we cannot do.
type errConfig struct{ error }

func envFirst(names ...string) (string, string) {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v, n
		}
	}
	return "", names[0]
}

func tiReadConfig() (tiConfig, error) {
	var c tiConfig
	bad := func(f string, a ...any) (tiConfig, error) { return c, errConfig{fmt.Errorf(f, a...)} }
	var name string
	if c.transport, name = envFirst("TRANSPORT", "transport"); c.transport == "" {
		return bad("TRANSPORT (or transport) is not set")
	}
	if c.transport != "tcp" {
		return bad("%s=%s: this peer runs tcp only", name, c.transport)
	}
	if c.security, name = envFirst("SECURE_CHANNEL", "security"); c.security != "noise" && c.security != "tls" {
		return bad("%s=%q: noise or tls expected", name, c.security)
	}
	if c.muxer, name = envFirst("MUXER", "muxer"); c.muxer != "yamux" {
		return bad("%s=%q: yamux expected (go-libp2p has no mplex any more)", name, c.muxer)
	}
	v, name := envFirst("IS_DIALER", "is_dialer")
	d, err := strconv.ParseBool(v)
	if err != nil {
		return bad("%s=%q: true or false expected", name, v)
	}
	c.isDialer = d
	if c.ip, _ = envFirst("LISTENER_IP", "ip"); c.ip == "" {
		c.ip = "0.0.0.0"
	}
	if c.redisAddr, _ = envFirst("REDIS_ADDR", "redis_addr"); c.redisAddr == "" {
		c.redisAddr = "redis:6379"
	}
	c.timeout = 180 * time.Second
	if v, name = envFirst("TEST_TIMEOUT_SECS", "test_timeout_seconds", "test_timeout_secs"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s < 1 {
			return bad("%s=%q: a number of seconds expected", name, v)
		}
		c.timeout = time.Duration(s) * time.Second
	}
	c.testKey, _ = envFirst("TEST_KEY", "test_key")
	c.key = "listenerAddr"
	if c.testKey != "" {
		c.key = c.testKey + "_listener_multiaddr"
	}
	return c, nil
}

// publishAddr: the first non-loopback listen address (a container's own, not
// one its peer cannot reach), else the first, with /p2p/<id>.
func publishAddr(addrs []ma.Multiaddr, id peer.ID) (string, error) {
	if len(addrs) == 0 {
		return "", errors.New("no listen address")
	}
	best := addrs[0]
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			best = a
			break
		}
	}
	return fmt.Sprintf("%s/p2p/%s", best, id), nil
}

func tiRun(c tiConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	security := libp2p.Security(noise.ID, noise.New)
	if c.security == "tls" {
		security = libp2p.Security(tls.ID, tls.New)
	}
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		security,
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.Ping(true),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if c.isDialer {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(fmt.Sprintf("/%s/%s/tcp/0", ipProto(c.ip), c.ip)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()

	rdb := redis.NewClient(&redis.Options{Addr: c.redisAddr, DisableIdentity: true})
	defer rdb.Close()
	// The Redis container may come up after ours.
	for rdb.Ping(ctx).Err() != nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("Redis at %s unreachable for %s", c.redisAddr, c.timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}

	if !c.isDialer {
		addr, err := publishAddr(h.Addrs(), h.ID())
		if err != nil {
			return err
		}
		log.Printf("listening on %s; RPUSH %s", addr, c.key)
		if err := rdb.RPush(ctx, c.key, addr).Err(); err != nil {
			return fmt.Errorf("RPUSH %s: %w", c.key, err)
		}
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		select {
		case <-stop: // the runner is done with us
			return nil
		case <-ctx.Done():
			return fmt.Errorf("listener: timed out after %s", c.timeout)
		}
	}

	// BLPOP waits what is left of the test's time (go-redis reads that long too).
	deadline, _ := ctx.Deadline()
	wait := time.Until(deadline).Truncate(time.Second)
	if wait < time.Second {
		wait = time.Second
	}
	got, err := rdb.BLPop(ctx, wait, c.key).Result()
	if err != nil {
		return fmt.Errorf("BLPOP %s: %w", c.key, err)
	}
	target, err := peer.AddrInfoFromString(got[1])
	if err != nil {
		return fmt.Errorf("the listener's address %q: %w", got[1], err)
	}
	log.Printf("dialing %s (%s, %s)", got[1], c.security, c.muxer)
	t0 := time.Now()
	if err := h.Connect(ctx, *target); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	res := <-ping.Ping(ctx, h, target.ID)
	if res.Error != nil {
		return fmt.Errorf("ping: %w", res.Error)
	}
	total := float64(time.Since(t0).Microseconds()) / 1000
	rtt := float64(res.RTT.Microseconds()) / 1000
	if c.testKey != "" {
		fmt.Printf("latency:\n  handshake_plus_one_rtt: %.3f\n  ping_rtt: %.3f\n  unit: ms\n", total, rtt)
	} else {
		fmt.Printf("{\"handshakePlusOneRTTMillis\": %.3f, \"pingRTTMilllis\": %.3f}\n", total, rtt)
	}
	return nil
}

func ipProto(ip string) string {
	if strings.Contains(ip, ":") {
		return "ip6"
	}
	return "ip4"
}

func transportInterop() int {
	log.SetOutput(os.Stderr)
	log.SetPrefix("go transport-interop: ")
	log.SetFlags(0)
	c, err := tiReadConfig()
	if err == nil {
		err = tiRun(c)
	}
	if err != nil {
		log.Print(err)
		var ce errConfig
		if errors.As(err, &ce) {
			return 2
		}
		return 1
	}
	return 0
}
