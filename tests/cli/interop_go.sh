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

PINGS=5
MIB=$((1024 * 1024))
STREAMS=100

# check_observed WHO LINE EXPECTED: go's "observed" line: the address the
# remote reported in identify's observedAddr is the connection's own local
# address, and EXPECTED if given.
check_observed() {
    local who=$1 line=$2 want=$3 obs
    [ -n "$line" ] || fail "$who: no observed address line"
    obs=$(field "$line" addr)
    [[ $obs == /ip4/127.0.0.1/tcp/* ]] || fail "$who: observed address '$obs'"
    [ "$obs" = "$(field "$line" local)" ] || fail "$who: observed $obs, but the connection is from $(field "$line" local)"
    [ -z "$want" ] || [ "$obs" = "$want" ] || fail "$who: observed $obs, expected $want"
}

# check_conn WHO LINE SECURITY: go's "connected" line: tcp, SECURITY and
# yamux were negotiated; over TLS the muxer was agreed in the handshake (ALPN,
# which cp2p offers). Prints early-muxer's value.
check_conn() {
    local who=$1 line=$2 sec=$3
    [ -n "$line" ] || fail "$who: go printed no connection"
    [ "$(field "$line" transport)" = tcp ] || fail "$who: transport $(field "$line" transport)"
    [ "$(field "$line" security)" = "$sec" ] || fail "$who: security $(field "$line" security), not $sec"
    [ "$(field "$line" muxer)" = /yamux/1.0.0 ] || fail "$who: muxer $(field "$line" muxer)"
    [ "$sec" != /tls/1.0.0 ] || [ "$(field "$line" early-muxer)" = true ] ||
        fail "$who: the muxer was not agreed in the TLS handshake (ALPN)"
    field "$line" early-muxer
}
SEC_ID_noise=/noise
SEC_ID_tls=/tls/1.0.0

SHOW_ON_FAIL=(all) # every peer's output when a check fails
CELLS=()
for sec in noise tls; do
    sec_id=SEC_ID_$sec; sec_id=${!sec_id}
    cell="$sec, cp2p dials go"
    echo "== $cell"
    start_go g-$sec --security "$sec" --agent "go-listener/$sec"
    go_ma=${GO_ADDR%/p2p/*}
    timeout 60 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --dial "$GO_ADDR" --security "$sec" --muxer yamux \
        --verbose --count $PINGS --interval 0.1 --echo-streams 1 --echo-size $MIB \
        >"$TMP/d-$sec.out" 2>"$TMP/d-$sec.err" || fail "$cell: cp2p ping exited non-zero"
    cp2p_id=$(sed -n 's/^Local peer id: //p' "$TMP/d-$sec.out")
    cp2p_ma=$(sed -n 's#^Listening on \(.*\)/p2p/.*#\1#p' "$TMP/d-$sec.out" | head -1)
    rtt=$(rtts "$TMP/d-$sec.out" "^ping $GO_ID rtt=[0-9]+\.[0-9]+ ms$")
    grep -qE "^echo ok streams=1 bytes=$MIB$" "$TMP/d-$sec.out" || fail "$cell: cp2p's 1 MiB echo incomplete"
    line=$(grep -m1 "^identified $GO_ID " "$TMP/d-$sec.out" || true)
    echo "cp2p saw: $line"
    check_identified "$cell: cp2p's view of go" "$line" "go-listener/$sec" "$go_ma" \
        /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    line=$(wait_line "$TMP/g-$sec.out" "^identified $cp2p_id ")
    echo "go saw: $line"
    check_identified "$cell: go's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0
    line=$(wait_line "$TMP/g-$sec.out" "^observed $cp2p_id ")
    echo "go saw: $line"
    check_observed "$cell: the address cp2p saw go at" "$line" "$go_ma"
    early=$(check_conn "$cell" "$(grep -m1 "^connected $cp2p_id " "$TMP/g-$sec.out" || true)" "$sec_id")
    timeout 60 "$CP2P" ping --dial "$GO_ADDR" --security "$sec" --muxer yamux --echo-streams $STREAMS --echo-size $MIB \
        >"$TMP/d100-$sec.out" 2>"$TMP/d100-$sec.err" || fail "$cell: cp2p's $STREAMS echo streams failed"
    grep -qE "^echo ok streams=$STREAMS bytes=$MIB$" "$TMP/d100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
    kill "$GO_PID"
    wait "$GO_PID" || fail "$cell: the go peer did not exit cleanly on SIGTERM"
    CELLS+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")

    cell="$sec, go dials cp2p"
    echo "== $cell"
    start_cp2p c-$sec --security "$sec" --muxer yamux --verbose --echo
    cp2p_ma=${CP2P_ADDR%/p2p/*}
    timeout 60 "$GO_PEER" --listen /ip4/127.0.0.1/tcp/0 --dial "$CP2P_ADDR" --security "$sec" --agent "go-dialer/$sec" \
        --ping $PINGS --echo-streams 1 --echo-size $MIB --wait-identify \
        >"$TMP/j-$sec.out" 2>"$TMP/j-$sec.err" || fail "$cell: the go peer exited non-zero"
    go_id=$(sed -n 's/^peer-id //p' "$TMP/j-$sec.out")
    go_ma=$(sed -n 's#^listening \(.*\)/p2p/.*#\1#p' "$TMP/j-$sec.out" | head -1)
    rtt=$(rtts "$TMP/j-$sec.out" '^ping rtt=[0-9]+\.[0-9]+ ms$')
    grep -qE "^echo ok streams=1 bytes=$MIB " "$TMP/j-$sec.out" || fail "$cell: go's 1 MiB echo incomplete"
    line=$(grep -m1 "^identified $CP2P_ID " "$TMP/j-$sec.out" || true)
    echo "go saw: $line"
    check_identified "$cell: go's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    line=$(grep -m1 "^observed $CP2P_ID " "$TMP/j-$sec.out" || true)
    echo "go saw: $line"
    check_observed "$cell: the address cp2p saw go at" "$line" ""
    early=$(check_conn "$cell" "$(grep -m1 "^connected $CP2P_ID " "$TMP/j-$sec.out" || true)" "$sec_id")
    line=$(wait_line "$TMP/c-$sec.out" "^identified $go_id ")
    echo "cp2p saw: $line"
    check_identified "$cell: cp2p's view of go" "$line" "go-dialer/$sec" "$go_ma" \
        /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
    timeout 60 "$GO_PEER" --dial "$CP2P_ADDR" --security "$sec" --echo-streams $STREAMS --echo-size $MIB \
        >"$TMP/j100-$sec.out" 2>"$TMP/j100-$sec.err" || fail "$cell: go's $STREAMS echo streams failed"
    grep -qE "^echo ok streams=$STREAMS bytes=$MIB " "$TMP/j100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
    kill -0 "$CP2P_PID" 2>/dev/null || fail "$cell: cp2p died"
    kill -INT "$CP2P_PID"
    wait "$CP2P_PID" || fail "$cell: cp2p did not exit cleanly on SIGINT"
    CELLS+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")
done

echo "== security mismatch: cp2p offers noise only, go tls only"
start_go g-mismatch --security tls
rc=0; timeout 30 "$CP2P" ping --dial "$GO_ADDR" --security noise --count 1 --timeout 5 \
    >"$TMP/mm.out" 2>"$TMP/mm.err" || rc=$?
[ $rc = 1 ] && grep -q 'cannot reach' "$TMP/mm.err" || fail "a noise-only dial of a tls-only peer: rc $rc"
kill "$GO_PID"
echo "== misuse"
rc=0; "$CP2P" ping --dial "$GO_ADDR" --security quic 2>"$TMP/u.err" || rc=$?
[ $rc = 2 ] && grep -q 'bad option --security quic' "$TMP/u.err" || fail "--security quic: rc $rc"
rc=0; gopeer --dial "$GO_ADDR" --muxer mplex >"$TMP/mplex.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q '^error .*no mplex' "$TMP/mplex.out" || fail "the go peer took --muxer mplex: rc $rc"

echo "== matrix (yamux)"
printf '%s\n' "${CELLS[@]}"
echo PASS
