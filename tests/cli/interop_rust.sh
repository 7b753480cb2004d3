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

echo PASS
