#!/usr/bin/env bash
# ctest: run-serial
# AutoNAT v1 (/libp2p/autonat/1.0.0) between cp2p and rust-libp2p, go-libp2p
# and js-libp2p, each way, with the reachability each side reports: public
# when the client listens where the server can dial it, private when the
# address it gives is a port nobody listens on.
#  - On loopback, against the rust peer (`peer autonat`, only_global_ips off,
#    v1 and v2): cp2p client / rust server (v2, and v1 alone) and rust
#    client / cp2p server (v1 public and private, v2 public); go and js servers refuse loopback dial-backs whatever one
#    asks (their rule), and cp2p must read that answer and stay unknown.
#  - In two network namespaces on a bridge (made here, 11.77.0.1 and
#    11.77.0.2: addresses go and js take for public, which nothing outside
#    the namespaces sees), against go and js: cp2p client / go and js
#    servers, go client / cp2p server, public and private (js's server
#    cannot answer a connected client: see below).
INTEROP_PEERS="rust go js"
. "$(dirname "$0")/../interop/lib.sh"
P=cp2pan$$
source "$(dirname "$0")/lib/netns.sh"
SHOW_ON_FAIL=(all)
FAST="--autonat-interval 0.5"

# cp2p_client NAME DIAL [ARGS...]: a cp2p AutoNAT client that dials DIAL.
cp2p_client() {
    local name=$1 dial=$2; shift 2
    CP2P_LOG=debug "$CP2P" ping $FAST --dial "$dial" --interval 0.5 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
}

echo "== loopback: cp2p client, rust server"
"$RUST_PEER" autonat --listen /ip4/127.0.0.1/tcp/0 --interval 0.5 >"$TMP/rs.out" 2>&1 &
PIDS+=($!)
RS=$(wait_line "$TMP/rs.out" '^listening /ip4/127.0.0.1/tcp/' 30 | cut -d' ' -f2)
# v2 (rust has both, cp2p asks v2 first), then v1 alone.
cp2p_client c-pub "$RS" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback
cp2p_client c-priv "$RS" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback --announce /ip4/127.0.0.1/tcp/1
cp2p_client c1-pub "$RS" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback --no-autonat-v2
cp2p_client c1-priv "$RS" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback --no-autonat-v2 \
    --announce /ip4/127.0.0.1/tcp/1
for c in c-pub c1-pub; do wait_line "$TMP/$c.out" '^reachability: public$' 20 >/dev/null; done
for c in c-priv c1-priv; do wait_line "$TMP/$c.out" '^reachability: private$' 20 >/dev/null; done
C_PUB_ID=$(wait_line "$TMP/c-pub.out" '^Local peer id: ' | cut -d' ' -f4)
C1_PUB_ID=$(wait_line "$TMP/c1-pub.out" '^Local peer id: ' | cut -d' ' -f4)
wait_line "$TMP/rs.out" "^v2-server $C_PUB_ID /ip4/127.0.0.1/tcp/[0-9]+ ok" 10 >/dev/null
wait_line "$TMP/rs.out" "^inbound-probe response $C1_PUB_ID /ip4/127.0.0.1/tcp/" 10 >/dev/null
grep -q 'probing (v1)' "$TMP/c1-pub.err" && ! grep -q 'probing (v2)' "$TMP/c1-pub.err" ||
    fail "--no-autonat-v2 did not keep cp2p to v1"
# Confidence: more answers that agree change nothing.
sleep 2
[ "$(grep -c '^reachability: ' "$TMP/c-pub.out")" = 1 ] || fail "cp2p's verdict flapped against rust"
[ "$(grep -c '^reachability: ' "$TMP/c-priv.out")" = 1 ] || fail "cp2p's private verdict flapped against rust"

echo "== loopback: rust client, cp2p server"
start_cp2p srv --autonat-service --allow-private-dialback --no-autonat
"$RUST_PEER" autonat --listen /ip4/127.0.0.1/tcp/0 --dial "$CP2P_ADDR" --interval 0.5 >"$TMP/rc-pub.out" 2>&1 &
PIDS+=($!)
# No listener: the only addresses it asks for are a closed port, a third
# party's (never dialled: another IP than the one it comes from) and what
# identify saw (an ephemeral port).
"$RUST_PEER" autonat --dial "$CP2P_ADDR" --probe /ip4/127.0.0.1/tcp/1 --interval 0.5 >"$TMP/rc-priv.out" 2>&1 &
PIDS+=($!)
wait_line "$TMP/rc-pub.out" '^nat-status public$' 20 >/dev/null
wait_line "$TMP/rc-priv.out" '^nat-status private$' 20 >/dev/null
grep -q '^outbound-probe response ' "$TMP/rc-pub.out" || fail "rust did not see cp2p's OK"
# rust's v2 client (every 5 s) tests its listen address with the cp2p server.
wait_line "$TMP/rc-pub.out" "^v2-client $CP2P_ID /ip4/127.0.0.1/tcp/[0-9]+ ok" 15 >/dev/null

echo "== loopback: cp2p relay runs the AutoNAT service by default"
"$CP2P" relay --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback --no-autonat >"$TMP/relay.out" 2>"$TMP/relay.err" &
PIDS+=($!)
RELAY=$(wait_line "$TMP/relay.out" '^Listening on ' | cut -d' ' -f3)
cp2p_client c-relay "$RELAY" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback
wait_line "$TMP/c-relay.out" '^reachability: public$' 20 >/dev/null
grep -q 'probing (v2)' "$TMP/c-relay.err" || fail "cp2p did not use AutoNAT v2 with a cp2p relay"
# cp2p dht prints its reachability too.
(sleep 30) | "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$RELAY" --allow-private-dialback $FAST --serve \
    >"$TMP/dht.out" 2>"$TMP/dht.err" &
PIDS+=($!)
wait_line "$TMP/dht.out" '^reachability: public$' 20 >/dev/null

echo "== loopback: cp2pd -autonat serves dial-backs (-keepPrivateAddrs: loopback too)"
start_cp2pd d -autonat -keepPrivateAddrs
DADDR=$(sed -n '/^Peer Addrs:/{n;p}' "$TMP/d.out")/p2p/$ID
cp2p_client c-d "$DADDR" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback
wait_line "$TMP/c-d.out" '^reachability: public$' 20 >/dev/null

echo "== loopback: go and js servers refuse loopback; cp2p reads their answer"
"$GO_PEER" --listen /ip4/127.0.0.1/tcp/0 --autonat-service >"$TMP/gs.out" 2>&1 &
PIDS+=($!)
GS=$(wait_line "$TMP/gs.out" '^listening /ip4/127.0.0.1/tcp/' 20 | cut -d' ' -f2)
start_js js-srv --autonat
cp2p_client c-go "$GS" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback
cp2p_client c-js "$JS_ADDR" --listen /ip4/127.0.0.1/tcp/0 --allow-private-dialback
wait_line "$TMP/c-go.err" 'refusing to dial peer with blocked observed address' 20 >/dev/null
wait_line "$TMP/c-js.err" 'no dialable addresses' 20 >/dev/null
grep -q '^reachability: ' "$TMP/c-go.out" "$TMP/c-js.out" && fail "a refusal changed cp2p's verdict"

for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

echo "== namespaces: cp2p client, go and js servers"
netns_link "$P" 11.77.0 2
S="ip netns exec ${P}h0" C="ip netns exec ${P}h1"
$S "$GO_PEER" --listen /ip4/11.77.0.1/tcp/0 --autonat-service >"$TMP/ngs.out" 2>&1 &
PIDS+=($!)
# js-libp2p does not list a public listen address before AutoNAT confirms it: a fixed port.
(cd "$INTEROP" && exec $S node --import ./polyfill.mjs peer.mjs --listen /ip4/11.77.0.1/tcp/4011 --autonat) \
    >"$TMP/njs.out" 2>"$TMP/njs.err" &
PIDS+=($!)
NGS=$(wait_line "$TMP/ngs.out" '^listening /ip4/11.77.0.1/tcp/' 20 | cut -d' ' -f2)
NJS=/ip4/11.77.0.1/tcp/4011/p2p/$(wait_line "$TMP/njs.out" '^peer-id ' 20 | cut -d' ' -f2)
for srv in go:$NGS; do
    n=${srv%%:*} a=${srv#*:}
    CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$a" --listen /ip4/11.77.0.2/tcp/0 >"$TMP/n-$n-pub.out" 2>"$TMP/n-$n-pub.err" &
    PIDS+=($!)
    CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$a" --listen /ip4/11.77.0.2/tcp/0 --announce /ip4/11.77.0.2/tcp/1 \
        >"$TMP/n-$n-priv.out" 2>"$TMP/n-$n-priv.err" &
    PIDS+=($!)
done
wait_line "$TMP/n-go-pub.out" '^reachability: public$' 30 >/dev/null
wait_line "$TMP/n-go-priv.out" '^reachability: private$' 30 >/dev/null
# js-libp2p 3.x's server dials back through its connection manager, which
# hands it the connection the request came on; the remote address differs
# from the one asked for, so it fails the dial-back and closes that
# connection, request and all. cp2p must see no answer, and claim nothing.
CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$NJS" --listen /ip4/11.77.0.2/tcp/0 >"$TMP/n-js.out" 2>"$TMP/n-js.err" &
PIDS+=($!)
wait_line "$TMP/n-js.err" 'probe answered by .*: no answer' 30 >/dev/null
sleep 2
grep -q '^reachability: ' "$TMP/n-js.out" && fail "cp2p took a verdict from js's broken dial-back"

echo "== namespaces: AutoNAT v2, cp2p client, go server"
$S "$GO_PEER" --listen /ip4/11.77.0.1/tcp/0 --autonat-v2 >"$TMP/ngs2.out" 2>&1 &
PIDS+=($!)
NGS2=$(wait_line "$TMP/ngs2.out" '^listening /ip4/11.77.0.1/tcp/' 20 | cut -d' ' -f2)
CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$NGS2" --listen /ip4/11.77.0.2/tcp/0 >"$TMP/n2-pub.out" 2>"$TMP/n2-pub.err" &
PIDS+=($!)
CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$NGS2" --listen /ip4/11.77.0.2/tcp/0 --announce /ip4/11.77.0.2/tcp/1 \
    >"$TMP/n2-priv.out" 2>"$TMP/n2-priv.err" &
PIDS+=($!)
wait_line "$TMP/n2-pub.out" '^reachability: public$' 30 >/dev/null
wait_line "$TMP/n2-priv.out" '^reachability: private$' 30 >/dev/null
grep -q 'probing (v2)' "$TMP/n2-pub.err" || fail "cp2p did not use AutoNAT v2 with go"
grep -q 'probing (v1)' "$TMP/n2-pub.err" "$TMP/n2-priv.err" && fail "cp2p fell back to v1 with a v2 server"

echo "== namespaces: AutoNAT v2, cp2p client, js server"
(cd "$INTEROP" && exec $S node --import ./polyfill.mjs peer.mjs --listen /ip4/11.77.0.1/tcp/4012 --autonat-v2) \
    >"$TMP/njs2.out" 2>"$TMP/njs2.err" &
PIDS+=($!)
NJS2=/ip4/11.77.0.1/tcp/4012/p2p/$(wait_line "$TMP/njs2.out" '^peer-id ' 20 | cut -d' ' -f2)
CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$NJS2" --listen /ip4/11.77.0.2/tcp/0 >"$TMP/nj2-pub.out" 2>"$TMP/nj2-pub.err" &
PIDS+=($!)
CP2P_LOG=debug $C "$CP2P" ping $FAST --dial "$NJS2" --listen /ip4/11.77.0.2/tcp/0 --announce /ip4/11.77.0.2/tcp/1 \
    >"$TMP/nj2-priv.out" 2>"$TMP/nj2-priv.err" &
PIDS+=($!)
wait_line "$TMP/nj2-pub.out" '^reachability: public$' 30 >/dev/null
wait_line "$TMP/nj2-priv.out" '^reachability: private$' 30 >/dev/null
grep -q 'probing (v2)' "$TMP/nj2-pub.err" || fail "cp2p did not use AutoNAT v2 with js"

echo "== namespaces: go client, cp2p server"
CP2P_LOG=debug $S "$CP2P" ping --listen /ip4/11.77.0.1/tcp/0 --autonat-service --no-autonat >"$TMP/nsrv.out" 2>"$TMP/nsrv.err" &
PIDS+=($!)
NSRV=$(wait_line "$TMP/nsrv.out" '^Listening on ' | cut -d' ' -f3)
# go's AutoNAT waits 15 s before its first probe (not settable from libp2p.New).
$C "$GO_PEER" --listen /ip4/11.77.0.2/tcp/0 --dial "$NSRV" --stay 60s >"$TMP/ngc-pub.out" 2>&1 &
PIDS+=($!)
# go dials from its listening port (port reuse), which the server tries
# first: only a go peer that listens nowhere can be private.
$C "$GO_PEER" --announce /ip4/11.77.0.2/tcp/1 --dial "$NSRV" --stay 60s \
    >"$TMP/ngc-priv.out" 2>&1 &
PIDS+=($!)
wait_line "$TMP/ngc-pub.out" '^reachability public$' 60 >/dev/null
wait_line "$TMP/ngc-priv.out" '^reachability private$' 60 >/dev/null

echo "== namespaces: AutoNAT v2, go client, cp2p server"
# go-libp2p's v2 client takes an address as reachable only once several
# servers agree: with one, what can be checked is that it asked ours, which
# dialled back and answered OK.
$C "$GO_PEER" --listen /ip4/11.77.0.2/tcp/0 --autonat-v2 --dial "$NSRV" --stay 60s >"$TMP/ngc2.out" 2>&1 &
PIDS+=($!)
NGC2=$(wait_line "$TMP/ngc2.out" '^peer-id ' 10 | cut -d' ' -f2)
wait_line "$TMP/nsrv.err" "v2 answer to $NGC2: OK" 60 >/dev/null

echo PASS
