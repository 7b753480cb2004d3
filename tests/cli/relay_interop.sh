#!/usr/bin/env bash
# ctest: run-serial
# Circuit relay v2 across implementations (libp2p specs relay/circuit-v2.md).
# A cp2p relay (`cp2p relay`) serves js-libp2p (@libp2p/circuit-relay-v2,
# tests/interop/relay.mjs), go-libp2p (tests/interop/go, relay-listen and
# --relay-client) and rust-libp2p (peer ready --relay / --dial) listeners and
# dialers, and cp2p ones; js, go and rust
# (`peer ready`) relays serve a cp2p listener (`cp2p ping --relay`) and a
# cp2p dialer. Each pair: the listener's /p2p-circuit address, pings and an
# echo through the circuit, the connection seen as relayed. Then the limits:
# a circuit that passes its 128 KiB is reset, and a reservation flood from
# many identities is refused past --max-reservations while the relay goes on
# serving a reserved peer. AutoRelay (`cp2p ping --auto-relay`) holds 2 of 3
# static relays and takes the third when one goes.
INTEROP_PEERS="js go rust"
. "$(dirname "$0")/../interop/lib.sh"
SHOW_ON_FAIL=(all)
JSR() { (cd "$INTEROP" && exec node --import ./polyfill.mjs relay.mjs "$@"); }
n=0

# Relays: each sets RELAY (its /ip4/127.0.0.1/tcp/../p2p/.. address).
relay_cp2p() {
    "$CP2P" relay --listen /ip4/127.0.0.1/tcp/0 --stats 0.5 "$@" >"$TMP/relay$n.out" 2>"$TMP/relay$n.err" &
    PIDS+=($!); RELAY_PID=$!
    RELAY=$(wait_line "$TMP/relay$n.out" '^Listening on /ip4/127.0.0.1/' | cut -d' ' -f3)
}
relay_js() {
    JSR server --listen /ip4/127.0.0.1/tcp/0 >"$TMP/relay$n.out" 2>"$TMP/relay$n.err" &
    PIDS+=($!); RELAY_PID=$!
    RELAY=$(wait_line "$TMP/relay$n.out" '^listening /ip4/127.0.0.1/tcp/' | cut -d' ' -f2)
}
relay_go() {
    # go-libp2p starts its relay service once it deems itself public.
    "$GO_PEER" --listen /ip4/127.0.0.1/tcp/0 --relay-service --force-reachability public \
        >"$TMP/relay$n.out" 2>"$TMP/relay$n.err" &
    PIDS+=($!); RELAY_PID=$!
    RELAY=$(wait_line "$TMP/relay$n.out" '^listening /ip4/127.0.0.1/tcp/' 15 | cut -d' ' -f2)
}
relay_rust() {
    "$RUST_PEER" ready --listen /ip4/127.0.0.1/tcp/0 --external >"$TMP/relay$n.out" 2>"$TMP/relay$n.err" &
    PIDS+=($!); RELAY_PID=$!
    RELAY=$(wait_line "$TMP/relay$n.out" '^listening /ip4/127.0.0.1/tcp/' 15 | cut -d' ' -f2)
}

# Listeners through $RELAY: each sets CIRCUIT (its /p2p-circuit/p2p/.. address).
listen_cp2p() {
    "$CP2P" ping --relay "$RELAY" --echo --verbose >"$TMP/listen$n.out" 2>"$TMP/listen$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/listen$n.out" '^Listening on .*/p2p-circuit/p2p/' 15 | cut -d' ' -f3)
    # the relay's signed voucher checks out (rust-libp2p's relays send none)
    local want=valid
    [ "${1:-}" != rust ] || want=none
    wait_line "$TMP/listen$n.out" "^reserved .* voucher=$want\$" 5 >/dev/null || fail "$1 relay: voucher not $want"
}
listen_js() {
    JSR listen --relay "$RELAY" >"$TMP/listen$n.out" 2>"$TMP/listen$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/listen$n.out" '^listening .*/p2p-circuit/p2p/' 20 | cut -d' ' -f2)
}
listen_go() {
    "$GO_PEER" relay-listen --relay "$RELAY" >"$TMP/listen$n.out" 2>"$TMP/listen$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/listen$n.out" '^listening .*/p2p-circuit/p2p/' 15 | cut -d' ' -f2)
    # go checked the voucher we signed, and took our Limit
    [ "$1" != cp2p ] || grep -q '^reserved .* limit=2m0s/131072 voucher=true' "$TMP/listen$n.out" ||
        fail "go: no voucher or limit from the cp2p relay"
}

listen_rust() {
    "$RUST_PEER" ready --relay "$RELAY" >"$TMP/listen$n.out" 2>"$TMP/listen$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/listen$n.out" '^listening .*/p2p-circuit/p2p/' 15 | cut -d' ' -f2)
}

# Dialers to $CIRCUIT: 3 pings and an echo under the relay's limit (the rust
# peer has no echo protocol: pings only).
dial_cp2p() {
    local echo=(--echo-streams 1 --echo-size 50000)
    [ "${1:-}" != rust ] || echo=()
    timeout 30 "$CP2P" ping --count 3 --interval 0.1 "${echo[@]}" "$CIRCUIT" \
        >"$TMP/dial$n.out" 2>"$TMP/dial$n.err" || fail "cp2p could not ping and echo through the circuit"
    grep -q "^relayed connection .*/p2p-circuit$" "$TMP/dial$n.out" || fail "cp2p: the connection is not relayed"
    [ "$(grep -c '^ping ' "$TMP/dial$n.out")" = 3 ] || fail "cp2p: 3 pings expected"
    [ "${1:-}" = rust ] || grep -q '^echo ok streams=1 bytes=50000' "$TMP/dial$n.out" || fail "cp2p: no echo"
}
dial_rust() {
    timeout 30 "$RUST_PEER" ready --dial "$CIRCUIT" --ping 3 >"$TMP/dial$n.out" 2>"$TMP/dial$n.err" ||
        fail "rust could not ping through the circuit"
    grep -q "^connected ${CIRCUIT##*/p2p/} relayed=true" "$TMP/dial$n.out" || fail "rust: the connection is not relayed"
    [ "$(grep -c '^ping rtt=' "$TMP/dial$n.out")" = 3 ] || fail "rust: 3 pings expected"
}
dial_js() {
    (cd "$INTEROP" && exec timeout 30 node --import ./polyfill.mjs relay.mjs dial --dial "$CIRCUIT" --ping 3 --echo-size 30000) \
        >"$TMP/dial$n.out" 2>"$TMP/dial$n.err" || fail "js could not ping and echo through the circuit"
    grep -q 'limited=true' "$TMP/dial$n.out" || fail "js: the connection is not limited (relayed)"
    [ "$(grep -c '^ping rtt=' "$TMP/dial$n.out")" = 3 ] || fail "js: 3 pings expected"
    grep -q '^echo ok bytes=30000' "$TMP/dial$n.out" || fail "js: no echo"
}
dial_go() {
    timeout 30 "$GO_PEER" --relay-client --dial "$CIRCUIT" --ping 3 --echo-streams 1 --echo-size 30000 \
        >"$TMP/dial$n.out" 2>"$TMP/dial$n.err" || fail "go could not ping and echo through the circuit"
    grep -q 'transport=p2p-circuit' "$TMP/dial$n.out" || fail "go: the connection is not relayed"
    [ "$(grep -c '^ping rtt=' "$TMP/dial$n.out")" = 3 ] || fail "go: 3 pings expected"
    grep -q '^echo ok streams=1 bytes=30000' "$TMP/dial$n.out" || fail "go: no echo"
}

# case RELAY LISTENER DIALER
case_() {
    n=$((n + 1))
    echo "== $1 relay: $2 listener, $3 dialer"
    "relay_$1"
    "listen_$2" "$1"
    "dial_$3" "$2"
    kill "$RELAY_PID" 2>/dev/null || true
}

case_ cp2p cp2p cp2p
case_ cp2p js cp2p
case_ cp2p go cp2p
case_ cp2p cp2p js
case_ cp2p cp2p go
case_ cp2p rust cp2p
case_ cp2p cp2p rust
case_ js cp2p cp2p
case_ go cp2p cp2p
case_ rust cp2p cp2p

echo "== a cp2p relay on WebSocket (/ws): cp2p listener, cp2p dialer"
n=$((n + 1))
"$CP2P" relay --listen /ip4/127.0.0.1/tcp/0/ws >"$TMP/relay$n.out" 2>"$TMP/relay$n.err" &
PIDS+=($!); RELAY_PID=$!
RELAY=$(wait_line "$TMP/relay$n.out" '^Listening on /ip4/127.0.0.1/tcp/[0-9]+/ws/p2p/' | cut -d' ' -f3)
listen_cp2p cp2p
dial_cp2p cp2p
kill "$RELAY_PID"

echo "== the circuit's data limit (128 KiB per direction) resets it"
n=$((n + 1))
relay_cp2p
listen_cp2p cp2p
rc=0; timeout 30 "$CP2P" ping --count 1 --echo-streams 1 --echo-size 300000 "$CIRCUIT" \
    >"$TMP/big.out" 2>"$TMP/big.err" || rc=$?
[ $rc = 1 ] || fail "an echo of 300000 bytes passed a 128 KiB limit (rc $rc)"
grep -q '^relayed connection' "$TMP/big.out" || fail "the big echo did not go through the relay"
wait_line "$TMP/relay$n.out" 'circuits_limited=1 ' 5 >/dev/null || fail "the relay did not count the limited circuit"
kill "$RELAY_PID"

echo "== a reservation flood from many identities stays within --max-reservations"
n=$((n + 1))
relay_cp2p --max-reservations 3
for i in 1 2 3 4 5 6; do
    "$CP2P" ping --relay "$RELAY" --echo >"$TMP/flood$i.out" 2>"$TMP/flood$i.err" &
    PIDS+=($!)
done
wait_line "$TMP/relay$n.out" 'reservations=3 .*reservations_refused=[3-9]' 15 >/dev/null ||
    fail "the relay did not hold 3 and refuse the rest"
# The relay's count can come before the listeners print their circuits
# (slow builds): wait for 3 of them, then make sure no fourth comes.
held() { grep -h '^Listening on .*/p2p-circuit/' "$TMP"/flood*.out 2>/dev/null | wc -l; }
for _ in $(seq 150); do [ "$(held)" -ge 3 ] && break; sleep 0.1; done
sleep 1
[ "$(held)" = 3 ] || fail "not exactly 3 reservations held: $(held)"
good=$(awk '/^Listening on .*\/p2p-circuit\// {print $3; exit}' "$TMP"/flood*.out)
CIRCUIT=$good dial_cp2p
grep -q 'reservations=3 ' <(tail -1 "$TMP/relay$n.out") || fail "the relay's count moved"

echo "== misuse: one-line errors"
rc=0; "$CP2P" relay --limit-data 0 2>"$TMP/u.err" || rc=$?
[ $rc = 2 ] && grep -q 'bad option --limit-data 0' "$TMP/u.err" || fail "--limit-data 0: rc $rc"
rc=0; "$CP2P" ping --relay /ip4/127.0.0.1/tcp/1 >/dev/null 2>"$TMP/u.err" || rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$TMP/u.err")" = 1 ] && grep -q '/p2p/<relay id> is needed' "$TMP/u.err" ||
    fail "--relay without a peer id: rc $rc: $(cat "$TMP/u.err")"

echo "== AutoRelay: reservations on 2 of 3 static relays, the third taken when one goes"
n=$((n + 1)); relay_cp2p; R1=$RELAY; P1=$RELAY_PID
n=$((n + 1)); relay_cp2p; R2=$RELAY
n=$((n + 1)); relay_cp2p; R3=$RELAY
"$CP2P" ping --auto-relay "$R1" --auto-relay "$R2" --auto-relay "$R3" --echo >"$TMP/auto.out" 2>"$TMP/auto.err" &
PIDS+=($!)
wait_line "$TMP/auto.out" "^Listening on $R1/p2p-circuit/p2p/" 15 >/dev/null
wait_line "$TMP/auto.out" "^Listening on $R2/p2p-circuit/p2p/" 15 >/dev/null
sleep 0.5
! grep -q "^Listening on $R3/" "$TMP/auto.out" || fail "AutoRelay took a third relay"
kill "$P1"
CIRCUIT=$(wait_line "$TMP/auto.out" "^Listening on $R3/p2p-circuit/p2p/" 15 | cut -d' ' -f3)
grep -q 'reservation lost' "$TMP/auto.err" || fail "AutoRelay did not say the first relay went"
dial_cp2p

echo PASS
