#!/usr/bin/env bash
# ctest: run-serial
# cp2p against go-libp2p (the peer in tests/interop/go, built and cached by
# its build.sh): {cp2p dials go, go dials cp2p} x {noise, tls}, over yamux
# (go-libp2p has no mplex). Each cell: the security and muxer go saw
# negotiated (over TLS the muxer agreed by ALPN), 5 pings, identify checked
# field by field on both sides, one 1 MiB echo stream and 100 concurrent
# 1 MiB echo streams on the same peers, and a clean exit of the listener. A
# go peer that cannot be built fails the test.
INTEROP_PEERS=go
. "$(dirname "$0")/../interop/lib.sh"
. "$(dirname "$0")/../interop/native_matrix.sh"

NATIVE_EARLY_TLS=1
native_matrix go "$GO_PEER"

echo "== misuse"
rc=0; "$CP2P" ping --dial "$NATIVE_ADDR" --security quic 2>"$TMP/u.err" || rc=$?
[ $rc = 2 ] && grep -q 'bad option --security quic' "$TMP/u.err" || fail "--security quic: rc $rc"
rc=0; "$GO_PEER" --dial "$NATIVE_ADDR" --muxer mplex >"$TMP/mplex.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q '^error .*no mplex' "$TMP/mplex.out" || fail "the go peer took --muxer mplex: rc $rc"

echo "== the go peer's features for later issues, ready"
# tcp, quic-v1 and ws at once, with the relay service, hole punching and the
# AutoNAT service on (#18, #19 test against them); cp2p reaches it over tcp.
"$GO_PEER" --listen /ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0/ws \
    --relay-service --hole-punching --autonat-service --autonat-v2 >"$TMP/ready.out" 2>&1 &
PIDS+=($!)
for kind in '/tcp/[0-9]+/p2p/' '/udp/[0-9]+/quic-v1/p2p/' '/tcp/[0-9]+/ws/p2p/'; do
    wait_line "$TMP/ready.out" "^listening /ip4/127.0.0.1$kind" 15 >/dev/null ||
        { cat "$TMP/ready.out"; fail "the go peer does not listen on $kind"; }
done
TCP=$(grep -m1 -E '^listening /ip4/127.0.0.1/tcp/[0-9]+/p2p/' "$TMP/ready.out" | cut -d' ' -f2)
"$CP2P" ping --dial "$TCP" --count 2 --interval 0.1 >"$TMP/ready-ping.out" 2>&1 ||
    { cat "$TMP/ready-ping.out"; fail "cp2p could not ping the go peer with every feature on"; }
rc=0; "$GO_PEER" --force-reachability sideways >"$TMP/fr.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q 'public or private expected' "$TMP/fr.out" || fail "--force-reachability sideways: rc $rc"

echo PASS
