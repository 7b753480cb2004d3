#!/usr/bin/env bash
# mDNS between three implementations on one link: cp2p, go-libp2p
# (p2p/discovery/mdns) and rust-libp2p (libp2p-mdns), each in a network
# namespace of its own on one bridge (tests/cli/lib/netns.sh). Each of the
# six directed pairs is checked by peer ID and an address in the other's
# namespace; five discover each other within LIMIT_MS (5 s) of the start. The
# sixth, go finding rust, cannot happen, and is checked not to (so the day it
# does, this test says so): go-libp2p's zeroconf drops an answer without SRV
# and A/AAAA records before it reads the TXT records, and rust-libp2p answers
# with PTR and TXT only. Then the discovered addresses are used: go and rust
# dial cp2p at the address they found, cp2p pings go and rust at the ones it
# found. Last, expiry: cp2p sees go's goodbye, and rust (which sends none)
# run out by its TTL; rust sees cp2p run out by cp2p's TTL (rust ignores
# goodbyes). go-libp2p reports no expiry at all (its Notifee has
# HandlePeerFound only).
INTEROP_PEERS="go rust"
source "$(dirname "$0")/../interop/lib.sh" # and lib/common.sh: BUILD, TMP, PIDS, fail, wait_line
P=cp2px$$
LIMIT_MS=${MDNS_LIMIT_MS:-5000}
NET=10.81.0
source "$(dirname "$0")/lib/netns.sh"

netns_link "$P" $NET 3

"$CP2P" keygen --out "$TMP/c.key" >/dev/null
ID_C=$("$CP2P" id --key "$TMP/c.key" | head -1)
now_ms() { date +%s%3N; }
# await FILE REGEX DEADLINE_MS: wait for the line until the deadline (epoch ms).
await() {
    while ! grep -qE "$2" "$1" 2>/dev/null; do
        [ "$(now_ms)" -lt "$3" ] || return 1
        sleep 0.05
    done
}
SHOW_ON_FAIL=(all)

# cp2p queries every 2 s and announces a TTL of 4 s; so does rust. go-libp2p
# has no such settings (queries at once, after 4 s, then less often; TTL 3200 s).
start_cp2p() {
    ip netns exec ${P}h0 "$CP2P" mdns --key "$TMP/c.key" --interval 2 --ttl 4 >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PID_C=$!
    PIDS+=($PID_C)
}
echo "== cp2p, go and rust started together"
t0=$(now_ms)
deadline=$((t0 + LIMIT_MS))
start_cp2p cp2p
ip netns exec ${P}h1 "$GO_PEER" mdns --dial >"$TMP/go.out" 2>"$TMP/go.err" &
PID_GO=$!
ip netns exec ${P}h2 "$RUST_PEER" mdns --dial --interval 2 --ttl 4 >"$TMP/rust.out" 2>"$TMP/rust.err" &
PID_RUST=$!
PIDS+=($PID_GO $PID_RUST)
ID_GO=$(wait_line "$TMP/go.out" '^peer-id ' | cut -d' ' -f2)
ID_RUST=$(wait_line "$TMP/rust.out" '^peer-id ' | cut -d' ' -f2)
wait_line "$TMP/cp2p.out" '^Listening on ' >/dev/null
# Each side: its output, peer ID and address (its namespace).
declare -A OUT=([cp2p]=cp2p.out [go]=go.out [rust]=rust.out)
declare -A PEER=([cp2p]=$ID_C [go]=$ID_GO [rust]=$ID_RUST)
declare -A IP=([cp2p]=$NET.1 [go]=$NET.2 [rust]=$NET.3)
for who in cp2p go rust; do
    for other in cp2p go rust; do
        [ $who != $other ] && ! [ $who = go -a $other = rust ] || continue
        await "$TMP/${OUT[$who]}" "^discovered ${PEER[$other]} /ip4/${IP[$other]//./\\.}/tcp/[0-9]+$" $deadline ||
            fail "$who did not discover $other (${PEER[$other]} at ${IP[$other]}) within $LIMIT_MS ms"
        echo "   $who discovered $other"
    done
done
echo "   all five within $(($(now_ms) - t0)) ms of the start"
for who in cp2p go rust; do
    if grep -q "^discovered ${PEER[$who]} " "$TMP/${OUT[$who]}"; then fail "$who discovered itself"; fi
done
n=$(grep '^discovered ' "$TMP/cp2p.out" | sort | uniq -d | wc -l)
[ "$n" = 0 ] || fail "cp2p reported an address twice"
# go and js announce their loopback addresses too; cp2p leaves them out.
if grep -q '^discovered .* /ip4/127\.' "$TMP/cp2p.out"; then fail "cp2p took a loopback address from another host"; fi

echo "== known gap: go-libp2p does not discover rust-libp2p"
sleep 1 # rust has answered go's queries a few times by now
if grep -q "^discovered $ID_RUST " "$TMP/go.out"; then
    fail "go now discovers rust: drop the known gap here and in the README"
fi
echo "   go has not discovered rust (zeroconf needs SRV and A/AAAA records; libp2p-mdns sends PTR and TXT)"

echo "== the discovered addresses work"
for who in go rust; do
    wait_line "$TMP/${OUT[$who]}" "^dialed $ID_C /ip4/$NET\.1/tcp/[0-9]+$" 10 >/dev/null
    echo "   $who connected to cp2p at the address it discovered"
    addr=$(grep -m1 -E "^discovered ${PEER[$who]} /ip4/${IP[$who]//./\\.}/" "$TMP/cp2p.out" | cut -d' ' -f3)
    ip netns exec ${P}h0 "$CP2P" ping --dial "$addr/p2p/${PEER[$who]}" --count 2 --interval 0.2 \
        >"$TMP/ping-$who.out" 2>"$TMP/ping-$who.err" || fail "cp2p could not ping $who at $addr"
    [ "$(grep -c "^ping ${PEER[$who]} rtt=" "$TMP/ping-$who.out")" = 2 ] || fail "cp2p got no 2 pings from $who"
    echo "   cp2p pinged $who at $addr"
done

echo "== expiry"
kill -TERM $PID_GO
wait $PID_GO || fail "the go peer did not exit cleanly on SIGTERM"
wait_line "$TMP/cp2p.out" "^expired $ID_GO /ip4/$NET\.2/tcp/[0-9]+$" 3 >/dev/null
echo "   cp2p saw go's goodbye"
kill -INT $PID_C
wait $PID_C || fail "cp2p mdns did not exit cleanly on SIGINT"
wait_line "$TMP/rust.out" "^expired $ID_C /ip4/$NET\.1/tcp/[0-9]+$" 8 >/dev/null
echo "   rust saw cp2p expire by its TTL"
start_cp2p cp2p2 # the same key, so the same peer ID
wait_line "$TMP/cp2p2.out" "^discovered $ID_RUST /ip4/$NET\.3/tcp/[0-9]+$" 10 >/dev/null
rediscovered() { [ "$(grep -c "^discovered $ID_C " "$TMP/rust.out")" -ge 2 ]; }
for ((i = 0; i < 100; i++)); do rediscovered && break; sleep 0.1; done
rediscovered || fail "rust did not discover cp2p again after it came back"
kill -TERM $PID_RUST
wait $PID_RUST || fail "the rust peer did not exit cleanly on SIGTERM"
wait_line "$TMP/cp2p2.out" "^expired $ID_RUST /ip4/$NET\.3/tcp/[0-9]+$" 8 >/dev/null
echo "   cp2p saw rust expire by its TTL"
kill -INT $PID_C
wait $PID_C || fail "cp2p mdns did not exit cleanly on SIGINT"
if grep -q '^expired ' "$TMP/go.out"; then fail "go printed an expiry it has no means to know"; fi
echo PASS
