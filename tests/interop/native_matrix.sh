# The connection matrix against a native peer of ours (tests/interop/go or
# tests/interop/rust: the same command line and output lines), sourced by
# tests/cli/interop_go.sh and interop_rust.sh after lib.sh:
#   native_matrix KIND BIN
# runs {cp2p dials KIND, KIND dials cp2p} x {noise, tls} over yamux, each cell
# with the security and muxer the peer saw negotiated, 5 pings, identify
# checked field by field on both sides, one 1 MiB echo and 100 concurrent
# 1 MiB echo streams, and a clean exit of the listener; then a security
# mismatch that must fail. What a peer cannot show is said by the caller:
#   NATIVE_NO_RECORD=1       it sends and keeps no signed peer record we take
#   NATIVE_EARLY_TLS=1       over TLS it must agree the muxer in the handshake
#   NATIVE_DIALER_OBSERVED=1 dialling, it reuses its listening port, so cp2p
#                            must have seen it at its listen address
#   NATIVE_LOCAL_UNKNOWN=1   it may not know a connection's local address
#                            (its observed line then says local=none)
# Prints the cells; sets NATIVE_ADDR to the address of a peer still listening
# (the mismatch one, stopped) for the caller's misuse checks.
PINGS=5
MIB=$((1024 * 1024))
STREAMS=100

# start_native NAME ARGS...: the peer listening on loopback; sets
# NATIVE_ADDR, NATIVE_ID, NATIVE_PID.
start_native() {
    local name=$1; shift
    "$NATIVE_BIN" --listen /ip4/127.0.0.1/tcp/0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    NATIVE_PID=$!
    NATIVE_ADDR=$(wait_line "$TMP/$name.out" '^listening ' | cut -d' ' -f2)
    NATIVE_ID=${NATIVE_ADDR##*/p2p/}
}

# check_observed WHO LINE EXPECTED: the peer's "observed" line: the address the
# remote reported in identify's observedAddr is on loopback, is the
# connection's own local address (unless NATIVE_LOCAL_UNKNOWN and the peer
# says local=none), and EXPECTED if given.
check_observed() {
    local who=$1 line=$2 want=$3 obs local
    [ -n "$line" ] || fail "$who: no observed address line"
    obs=$(field "$line" addr)
    local=$(field "$line" local)
    [[ $obs == /ip4/127.0.0.1/tcp/* ]] || fail "$who: observed address '$obs'"
    { [ -n "${NATIVE_LOCAL_UNKNOWN:-}" ] && [ "$local" = none ]; } || [ "$obs" = "$local" ] || fail "$who: observed $obs, but the connection is from $local"
    [ -z "$want" ] || [ "$obs" = "$want" ] || fail "$who: observed $obs, expected $want"
}

# check_conn WHO LINE SECURITY: the peer's "connected" line: tcp, SECURITY and
# yamux; with NATIVE_EARLY_TLS, over TLS the muxer agreed in the handshake
# (ALPN, which cp2p offers). Prints early-muxer's value.
check_conn() {
    local who=$1 line=$2 sec=$3
    [ -n "$line" ] || fail "$who: $KIND printed no connection"
    [ "$(field "$line" transport)" = tcp ] || fail "$who: transport $(field "$line" transport)"
    [ "$(field "$line" security)" = "$sec" ] || fail "$who: security $(field "$line" security), not $sec"
    [ "$(field "$line" muxer)" = /yamux/1.0.0 ] || fail "$who: muxer $(field "$line" muxer)"
    [ -z "${NATIVE_EARLY_TLS:-}" ] || [ "$sec" != /tls/1.0.0 ] || [ "$(field "$line" early-muxer)" = true ] ||
        fail "$who: the muxer was not agreed in the TLS handshake (ALPN)"
    field "$line" early-muxer
}

# check_ident ARGS...: check_identified, expecting no record where the peer keeps none.
check_ident() {
    if [ -n "${NATIVE_NO_RECORD:-}" ]; then NO_RECORD=1 check_identified "$@"; else check_identified "$@"; fi
}

native_matrix() {
    KIND=$1 NATIVE_BIN=$2
    local sec sec_id cell peer_ma cp2p_id cp2p_ma peer_id rtt line early dialer_seen
    local -A sec_ids=([noise]=/noise [tls]=/tls/1.0.0)
    SHOW_ON_FAIL=(all) # every peer's output when a check fails
    local cells=()
    for sec in noise tls; do
        sec_id=${sec_ids[$sec]}
        cell="$sec, cp2p dials $KIND"
        echo "== $cell"
        start_native l-$sec --security "$sec" --agent "$KIND-listener/$sec"
        peer_ma=${NATIVE_ADDR%/p2p/*}
        timeout 60 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --dial "$NATIVE_ADDR" --security "$sec" --muxer yamux \
            --verbose --count $PINGS --interval 0.1 --echo-streams 1 --echo-size $MIB \
            >"$TMP/d-$sec.out" 2>"$TMP/d-$sec.err" || fail "$cell: cp2p ping exited non-zero"
        cp2p_id=$(sed -n 's/^Local peer id: //p' "$TMP/d-$sec.out")
        cp2p_ma=$(sed -n 's#^Listening on \(.*\)/p2p/.*#\1#p' "$TMP/d-$sec.out" | head -1)
        rtt=$(rtts "$TMP/d-$sec.out" "^ping $NATIVE_ID rtt=[0-9]+\.[0-9]+ ms$")
        grep -qE "^echo ok streams=1 bytes=$MIB$" "$TMP/d-$sec.out" || fail "$cell: cp2p's 1 MiB echo incomplete"
        line=$(grep -m1 "^identified $NATIVE_ID " "$TMP/d-$sec.out" || true)
        echo "cp2p saw: $line"
        check_ident "$cell: cp2p's view of $KIND" "$line" "$KIND-listener/$sec" "$peer_ma" \
            /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
        line=$(wait_line "$TMP/l-$sec.out" "^identified $cp2p_id ")
        echo "$KIND saw: $line"
        check_ident "$cell: $KIND's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0
        line=$(wait_line "$TMP/l-$sec.out" "^observed $cp2p_id ")
        echo "$KIND saw: $line"
        check_observed "$cell: the address cp2p saw $KIND at" "$line" "$peer_ma"
        early=$(check_conn "$cell" "$(grep -m1 "^connected $cp2p_id " "$TMP/l-$sec.out" || true)" "$sec_id")
        timeout 60 "$CP2P" ping --dial "$NATIVE_ADDR" --security "$sec" --muxer yamux --echo-streams $STREAMS --echo-size $MIB \
            >"$TMP/d100-$sec.out" 2>"$TMP/d100-$sec.err" || fail "$cell: cp2p's $STREAMS echo streams failed"
        grep -qE "^echo ok streams=$STREAMS bytes=$MIB$" "$TMP/d100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
        kill "$NATIVE_PID"
        wait "$NATIVE_PID" || fail "$cell: the $KIND peer did not exit cleanly on SIGTERM"
        cells+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")

        cell="$sec, $KIND dials cp2p"
        echo "== $cell"
        start_cp2p c-$sec --security "$sec" --muxer yamux --verbose --echo
        cp2p_ma=${CP2P_ADDR%/p2p/*}
        timeout 60 "$NATIVE_BIN" --listen /ip4/127.0.0.1/tcp/0 --dial "$CP2P_ADDR" --security "$sec" --agent "$KIND-dialer/$sec" \
            --ping $PINGS --echo-streams 1 --echo-size $MIB --wait-identify \
            >"$TMP/j-$sec.out" 2>"$TMP/j-$sec.err" || fail "$cell: the $KIND peer exited non-zero"
        peer_id=$(sed -n 's/^peer-id //p' "$TMP/j-$sec.out")
        peer_ma=$(sed -n 's#^listening \(.*\)/p2p/.*#\1#p' "$TMP/j-$sec.out" | head -1)
        rtt=$(rtts "$TMP/j-$sec.out" '^ping rtt=[0-9]+\.[0-9]+ ms$')
        grep -qE "^echo ok streams=1 bytes=$MIB " "$TMP/j-$sec.out" || fail "$cell: $KIND's 1 MiB echo incomplete"
        line=$(grep -m1 "^identified $CP2P_ID " "$TMP/j-$sec.out" || true)
        echo "$KIND saw: $line"
        check_ident "$cell: $KIND's view of cp2p" "$line" cp2p/ "$cp2p_ma" /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
        line=$(grep -m1 "^observed $CP2P_ID " "$TMP/j-$sec.out" || true)
        echo "$KIND saw: $line"
        dialer_seen=
        [ -z "${NATIVE_DIALER_OBSERVED:-}" ] || dialer_seen=$peer_ma
        check_observed "$cell: the address cp2p saw $KIND at" "$line" "$dialer_seen"
        early=$(check_conn "$cell" "$(grep -m1 "^connected $CP2P_ID " "$TMP/j-$sec.out" || true)" "$sec_id")
        line=$(wait_line "$TMP/c-$sec.out" "^identified $peer_id ")
        echo "cp2p saw: $line"
        check_ident "$cell: cp2p's view of $KIND" "$line" "$KIND-dialer/$sec" "$peer_ma" \
            /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /echo/1.0.0
        timeout 60 "$NATIVE_BIN" --dial "$CP2P_ADDR" --security "$sec" --echo-streams $STREAMS --echo-size $MIB \
            >"$TMP/j100-$sec.out" 2>"$TMP/j100-$sec.err" || fail "$cell: $KIND's $STREAMS echo streams failed"
        grep -qE "^echo ok streams=$STREAMS bytes=$MIB " "$TMP/j100-$sec.out" || fail "$cell: $STREAMS echo streams incomplete"
        kill -0 "$CP2P_PID" 2>/dev/null || fail "$cell: cp2p died"
        kill -INT "$CP2P_PID"
        wait "$CP2P_PID" || fail "$cell: cp2p did not exit cleanly on SIGINT"
        cells+=("$cell: ok: $sec_id + /yamux/1.0.0 (muxer in the handshake: $early); ping x$PINGS rtt=$rtt ms; identify both ways; echo 1 MiB; $STREAMS x 1 MiB concurrent echo")
    done

    echo "== security mismatch: cp2p offers noise only, $KIND tls only"
    start_native mismatch --security tls
    local rc=0
    timeout 30 "$CP2P" ping --dial "$NATIVE_ADDR" --security noise --count 1 --timeout 5 \
        >"$TMP/mm.out" 2>"$TMP/mm.err" || rc=$?
    [ $rc = 1 ] && grep -q 'cannot reach' "$TMP/mm.err" || fail "a noise-only dial of a tls-only peer: rc $rc"
    kill "$NATIVE_PID"
    echo "== matrix (yamux)"
    printf '%s\n' "${cells[@]}"
}
