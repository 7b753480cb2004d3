#!/usr/bin/env bash
# ctest: run-serial
# cp2p against rust-libp2p (the peer in tests/interop/rust, built and cached
# by its build.sh): {cp2p dials rust, rust dials cp2p} x {noise, tls}, over
# yamux (rust-libp2p has no mplex). Each cell: the security and muxer the
# rust peer connected with, 5 pings, identify checked field by field on both
# sides, one 1 MiB echo stream and 100 concurrent 1 MiB echo streams on the
# same peers, and a clean exit of the listener. A rust peer that cannot be
# built fails the test. What rust-libp2p 0.57 cannot show or do (see
# tests/interop/rust/src/main.rs): it negotiates the muxer after the
# handshake only (early-muxer=false), knows no local address of a dialed
# connection, and its identify neither sends a signed peer record go, js or
# cp2p accept nor keeps one it receives, so both sides check record=none.
INTEROP_PEERS=rust
. "$(dirname "$0")/../interop/lib.sh"
. "$(dirname "$0")/../interop/native_matrix.sh"

NATIVE_NO_RECORD=1 NATIVE_DIALER_OBSERVED=1 NATIVE_LOCAL_UNKNOWN=1
native_matrix rust "$RUST_PEER"

echo "== misuse"
rc=0; "$RUST_PEER" --dial "$NATIVE_ADDR" --muxer mplex >"$TMP/mplex.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q '^error .*no mplex' "$TMP/mplex.out" || fail "the rust peer took --muxer mplex: rc $rc"
rc=0; "$RUST_PEER" --bogus >"$TMP/usage.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q '^error usage' "$TMP/usage.out" || fail "the rust peer took --bogus: rc $rc"

echo "== the rust peer's features for later issues, ready (peer ready)"
# tcp, quic-v1 and ws at once, with a relay server and client, DCUtR and an
# AutoNAT server (#18, #19 test against them); cp2p reaches it over tcp.
"$RUST_PEER" ready --listen /ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0/ws \
    >"$TMP/ready.out" 2>&1 &
PIDS+=($!)
for kind in '/tcp/[0-9]+/p2p/' '/udp/[0-9]+/quic-v1/p2p/' '/tcp/[0-9]+/ws/p2p/'; do
    wait_line "$TMP/ready.out" "^listening /ip4/127.0.0.1$kind" 15 >/dev/null ||
        { cat "$TMP/ready.out"; fail "the rust peer does not listen on $kind"; }
done
TCP=$(grep -m1 -E '^listening /ip4/127.0.0.1/tcp/[0-9]+/p2p/' "$TMP/ready.out" | cut -d' ' -f2)
"$CP2P" ping --dial "$TCP" --count 2 --interval 0.1 >"$TMP/ready-ping.out" 2>&1 ||
    { cat "$TMP/ready-ping.out"; fail "cp2p could not ping the rust peer with every feature on"; }
wait_line "$TMP/ready.out" '^connected ' 5 >/dev/null || fail "the rust peer did not see cp2p connect"

echo PASS
