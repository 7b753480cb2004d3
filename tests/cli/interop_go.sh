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

echo PASS
