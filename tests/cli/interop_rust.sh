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

PINGS=5
MIB=$((1024 * 1024))
STREAMS=100

# check_observed WHO LINE EXPECTED: the rust peer's "observed" line: the
# address the remote reported in identify's observedAddr is on loopback, is
# the connection's own local address when rust knows it (it does for a
# connection it accepted), and EXPECTED if given.
check_observed() {
    local who=$1 line=$2 want=$3 obs local
    [ -n "$line" ] || fail "$who: no observed address line"
    obs=$(field "$line" addr)
    local=$(field "$line" local)
    [[ $obs == /ip4/127.0.0.1/tcp/* ]] || fail "$who: observed address '$obs'"
    [ "$local" = none ] || [ "$obs" = "$local" ] || fail "$who: observed $obs, but the connection is from $local"
    [ -z "$want" ] || [ "$obs" = "$want" ] || fail "$who: observed $obs, expected $want"
}

# check_conn WHO LINE SECURITY: the rust peer's "connected" line: tcp,
# SECURITY and yamux (the only ones it offers). Prints early-muxer's value.
check_conn() {
    local who=$1 line=$2 sec=$3
    [ -n "$line" ] || fail "$who: rust printed no connection"
    [ "$(field "$line" transport)" = tcp ] || fail "$who: transport $(field "$line" transport)"
    [ "$(field "$line" security)" = "$sec" ] || fail "$who: security $(field "$line" security), not $sec"
    [ "$(field "$line" muxer)" = /yamux/1.0.0 ] || fail "$who: muxer $(field "$line" muxer)"
    field "$line" early-muxer
}
SEC_ID_noise=/noise
SEC_ID_tls=/tls/1.0.0

SHOW_ON_FAIL=(all) # every peer's output when a check fails
CELLS=()
for sec in noise tls; do
    sec_id=SEC_ID_$sec; sec_id=${!sec_id}
    cell="$sec, cp2p dials rust"
    echo "== $cell"
    start_rust r-$sec --security "$sec" --agent "rust-listener/$sec"
    rust_ma=${RUST_ADDR%/p2p/*}
    timeout 60 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --dial "$RUST_ADDR" --security "$sec" --muxer yamux \
        --verbose --count $PINGS --interval 0.1 --echo-streams 1 --echo-size $MIB \
        >"$TMP/d-$sec.out" 2>"$TMP/d-$sec.err" || fail "$cell: cp2p ping exited non-zero"
    cp2p_id=$(sed -n 's/^Local peer id: //p' "$TMP/d-$sec.out")
    cp2p_ma=$(sed -n 's#^Listening on \(.*\)/p2p/.*#\1#p' "$TMP/d-$sec.out" | head -1)
    rtt=$(rtts "$TMP/d-$sec.out" "^ping $RUST_ID rtt=[0-9]+\.[0-9]+ ms$")
    grep -qE "^echo ok streams=1 bytes=$MIB$" "$TMP/d-$sec.out" || fail "$cell: cp2p's 1 MiB echo incomplete"
    line=$(grep -m1 "^identified $RUST_ID " "$TMP/d-$sec.out" || true)
    echo "cp2p saw: $line"
    NO_RECORD=1 check_identified "$cell: cp2p's view of rust" "$line" "rust-listener/$sec" "$rust_ma" \
        /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    line=$(wait_line "$TMP/r-$sec.out" "^identified $cp2p_id ")
    echo "rust saw: $line"
    NO_RECORD=1 check_identified "$cell: rust's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0
    line=$(wait_line "$TMP/r-$sec.out" "^observed $cp2p_id ")
    echo "rust saw: $line"
    check_observed "$cell: the address cp2p saw rust at" "$line" "$rust_ma"
    early=$(check_conn "$cell" "$(grep -m1 "^connected $cp2p_id " "$TMP/r-$sec.out" || true)" "$sec_id")
    timeout 60 "$CP2P" ping --dial "$RUST_ADDR" --security "$sec" --muxer yamux --echo-streams $STREAMS --echo-size $MIB \
        >"$TMP/d100-$sec.out" 2>"$TMP/d100-$sec.err" || fail "$cell: cp2p's $STREAMS echo streams failed"
    grep -qE "^echo ok streams=$STREAMS bytes=$MIB$" "$TMP/d100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
    kill "$RUST_PID"
    wait "$RUST_PID" || fail "$cell: the rust peer did not exit cleanly on SIGTERM"
    CELLS+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")

    cell="$sec, rust dials cp2p"
    echo "== $cell"
    start_cp2p c-$sec --security "$sec" --muxer yamux --verbose --echo
    cp2p_ma=${CP2P_ADDR%/p2p/*}
    timeout 60 "$RUST_PEER" --listen /ip4/127.0.0.1/tcp/0 --dial "$CP2P_ADDR" --security "$sec" --agent "rust-dialer/$sec" \
        --ping $PINGS --echo-streams 1 --echo-size $MIB --wait-identify \
        >"$TMP/j-$sec.out" 2>"$TMP/j-$sec.err" || fail "$cell: the rust peer exited non-zero"
    rust_id=$(sed -n 's/^peer-id //p' "$TMP/j-$sec.out")
    rust_ma=$(sed -n 's#^listening \(.*\)/p2p/.*#\1#p' "$TMP/j-$sec.out" | head -1)
    rtt=$(rtts "$TMP/j-$sec.out" '^ping rtt=[0-9]+\.[0-9]+ ms$')
    grep -qE "^echo ok streams=1 bytes=$MIB " "$TMP/j-$sec.out" || fail "$cell: rust's 1 MiB echo incomplete"
    line=$(grep -m1 "^identified $CP2P_ID " "$TMP/j-$sec.out" || true)
    echo "rust saw: $line"
    NO_RECORD=1 check_identified "$cell: rust's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    line=$(grep -m1 "^observed $CP2P_ID " "$TMP/j-$sec.out" || true)
    echo "rust saw: $line"
    # rust-libp2p dials from its listening port (port reuse): cp2p saw it at rust_ma.
    check_observed "$cell: the address cp2p saw rust at" "$line" "$rust_ma"
    early=$(check_conn "$cell" "$(grep -m1 "^connected $CP2P_ID " "$TMP/j-$sec.out" || true)" "$sec_id")
    line=$(wait_line "$TMP/c-$sec.out" "^identified $rust_id ")
    echo "cp2p saw: $line"
    NO_RECORD=1 check_identified "$cell: cp2p's view of rust" "$line" "rust-dialer/$sec" "$rust_ma" \
        /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    timeout 60 "$RUST_PEER" --dial "$CP2P_ADDR" --security "$sec" --echo-streams $STREAMS --echo-size $MIB \
        >"$TMP/j100-$sec.out" 2>"$TMP/j100-$sec.err" || fail "$cell: rust's $STREAMS echo streams failed"
    grep -qE "^echo ok streams=$STREAMS bytes=$MIB " "$TMP/j100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
    kill -0 "$CP2P_PID" 2>/dev/null || fail "$cell: cp2p died"
    kill -INT "$CP2P_PID"
    wait "$CP2P_PID" || fail "$cell: cp2p did not exit cleanly on SIGINT"
    CELLS+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")
done

echo "== security mismatch: cp2p offers noise only, rust tls only"
start_rust r-mismatch --security tls
rc=0; timeout 30 "$CP2P" ping --dial "$RUST_ADDR" --security noise --count 1 --timeout 5 \
    >"$TMP/mm.out" 2>"$TMP/mm.err" || rc=$?
[ $rc = 1 ] && grep -q 'cannot reach' "$TMP/mm.err" || fail "a noise-only dial of a tls-only peer: rc $rc"
kill "$RUST_PID"
echo "== misuse"
rc=0; rustpeer --dial "$RUST_ADDR" --muxer mplex >"$TMP/mplex.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q '^error .*no mplex' "$TMP/mplex.out" || fail "the rust peer took --muxer mplex: rc $rc"
rc=0; rustpeer --bogus >"$TMP/usage.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q '^error usage' "$TMP/usage.out" || fail "the rust peer took --bogus: rc $rc"

echo "== matrix (yamux)"
printf '%s\n' "${CELLS[@]}"
echo PASS
