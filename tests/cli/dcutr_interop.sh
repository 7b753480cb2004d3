#!/usr/bin/env bash
# ctest: run-serial
# DCUtR hole punching (libp2p specs relay/DCUtR.md) on loopback, through a
# cp2p circuit relay. With no NAT a punch always gets through, which still
# runs the whole exchange (CONNECT, RTT, SYNC, the simultaneous dials from
# the listen ports, the spec's client and server roles): cp2p with cp2p,
# and with rust-libp2p (`peer ready`) as B and as A. Each case asserts the
# final connection is direct (the peer's listen address, no /p2p-circuit) on
# both sides, and that pings go on over it. Then the failure: an A that
# takes only public addresses finds none in B's CONNECT, B tries three times,
# and the connection stays relayed and says so, pings still going through
# the relay. go-libp2p and js-libp2p run DCUtR only with public addresses (go:
# HolePunchAddrs, js: isPublicAndDialable), so their cases belong in the
# tests/nat network.
INTEROP_PEERS="rust"
. "$(dirname "$0")/../interop/lib.sh"
SHOW_ON_FAIL=(all)
n=0

"$CP2P" relay --listen /ip4/127.0.0.1/tcp/0 >"$TMP/relay.out" 2>"$TMP/relay.err" &
PIDS+=($!)
RELAY=$(wait_line "$TMP/relay.out" '^Listening on /ip4/127.0.0.1/' | cut -d' ' -f3)

# B: cp2p listening on TCP and through the relay; sets CIRCUIT, B_TCP.
b_cp2p() {
    "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --relay "$RELAY" "$@" >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/b$n.out" '^Listening on .*/p2p-circuit/p2p/' 15 | cut -d' ' -f3)
    B_TCP=$(grep -m1 '^Listening on /ip4/127.0.0.1/tcp/' "$TMP/b$n.out" | cut -d' ' -f3)
}
b_rust() {
    "$RUST_PEER" ready --listen "/ip4/127.0.0.1/tcp/0,$RELAY/p2p-circuit" >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/b$n.out" '^listening .*/p2p-circuit/' 15 | cut -d' ' -f2)
    CIRCUIT=${CIRCUIT%/p2p/*} # rust appends its id twice
    B_TCP=$(grep -m1 '^listening /ip4/127.0.0.1/tcp/[0-9]*/p2p/[^/]*$' "$TMP/b$n.out" | cut -d' ' -f2)
}

# A: cp2p dialling CIRCUIT: the punch, then pings on the direct connection.
a_cp2p() {
    timeout 40 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --punch-private --count 8 --interval 0.3 "$CIRCUIT" \
        >"$TMP/a$n.out" 2>"$TMP/a$n.err" || fail "cp2p A: the pings did not all come back"
    grep -q '^relayed connection .*/p2p-circuit$' "$TMP/a$n.out" || fail "cp2p A: the first connection is not relayed"
    grep -qx "direct connection $B_TCP" "$TMP/a$n.out" || fail "cp2p A: no direct connection to $B_TCP"
    after=$(sed -n '/^direct connection/,$p' "$TMP/a$n.out" | grep -c '^ping ' || true)
    [ "$after" -ge 5 ] || fail "cp2p A: $after pings after the punch, 5 or more expected"
}
a_rust() {
    "$RUST_PEER" ready --listen /ip4/127.0.0.1/tcp/0 --dial "$CIRCUIT" --ping 1000000 >"$TMP/a$n.out" 2>"$TMP/a$n.err" &
    PIDS+=($!)
    A_TCP=$(wait_line "$TMP/a$n.out" '^listening /ip4/127.0.0.1/tcp/' 15 | cut -d' ' -f2)
}

case_() {
    n=$((n + 1))
    echo "== B $1, A $2"
    if [ "$1" = cp2p ]; then b_cp2p --punch-private; else b_rust; fi
    B_ID=${B_TCP##*/p2p/}
    if [ "$2" = cp2p ]; then
        a_cp2p
        A_ID=$(grep -m1 '^Local peer id: ' "$TMP/a$n.out" | cut -d' ' -f4)
    else
        a_rust
        A_ID=${A_TCP##*/p2p/}
    fi
    if [ "$1" = cp2p ]; then
        # B tells the punch and where it leads: A's listen port.
        line=$(wait_line "$TMP/b$n.out" "^direct connection .*/p2p/$A_ID$" 20)
        [[ $line != */p2p-circuit* ]] || fail "cp2p B: the direct connection is relayed: $line"
        # (rust's A dials from any port on loopback, not its listen port)
    else
        # rust's B reports its punch only when its own dial won; when A's
        # reached its listener first, the connection from A's listen port
        # is what tells.
        A_PORT=$(grep -m1 '^Listening on /ip4/127.0.0.1/tcp/' "$TMP/a$n.out" | cut -d/ -f5)
        wait_line "$TMP/b$n.out" "^connection $A_ID /ip4/127.0.0.1/tcp/$A_PORT(/p2p/$A_ID)?$" 5 >/dev/null ||
            fail "rust B: no direct connection from A's listen port"
    fi
    if [ "$2" = rust ]; then
        wait_line "$TMP/a$n.out" "^dcutr $B_ID ok" 20 >/dev/null || fail "rust A: no hole punch"
        wait_line "$TMP/a$n.out" "^connection $B_ID ${B_TCP%/p2p/*}(/p2p/$B_ID)?$" 5 >/dev/null ||
            fail "rust A: no direct connection to $B_TCP"
        # rust pings every connection: cp2p answers on the direct one.
    fi
}

case_ cp2p cp2p
case_ rust cp2p
case_ cp2p rust

echo "== no public address: three attempts, the connection stays relayed"
n=$((n + 1))
b_cp2p --punch-private
a_cp2p_fail() {
    timeout 40 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --count 6 --interval 0.3 "$CIRCUIT" \
        >"$TMP/a$n.out" 2>"$TMP/a$n.err" || fail "cp2p A: the pings through the relay did not all come back"
}
a_cp2p_fail
wait_line "$TMP/b$n.out" "^hole punch with .* failed after 3 attempts, staying relayed" 10 >/dev/null
! grep -q '^direct connection' "$TMP/a$n.out" "$TMP/b$n.out" || fail "a direct connection without usable addresses"
[ "$(grep -c '^ping ' "$TMP/a$n.out")" = 6 ] || fail "the pings did not go on over the relay"

echo PASS
