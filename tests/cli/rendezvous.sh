#!/usr/bin/env bash
# Rendezvous (/rendezvous/1.0.0) with the programs, on loopback:
#  1. a cp2p point (cp2p rendezvous) and two cp2p clients (cp2p ping
#     --rendezvous): each registers, discovers the other and pings it; both
#     unregister when they stop.
#  2. a rust-libp2p point: a cp2p client registers (falling back to
#     rust-libp2p's legacy record envelope), pages with its cookie (its second
#     discover is served the newcomer only), finds a rust client and pings it;
#     the rust client finds the cp2p one and pings it.
#  3. a cp2p point: a rust client registers, pages one registration at a
#     time with cookies, finds two cp2p clients and pings one; they find it.
#  4. a flood of identities at a point with small limits: the per-namespace
#     and total caps hold (E_UNAVAILABLE past them) and a peer registered
#     before is still found and reached by a newcomer; then a point that
#     counts loopback holds its registrations per address.
#  5. cp2p relay --rendezvous: two hosts that do not listen (as behind NAT)
#     reserve on the relay, register their /p2p-circuit address at its point
#     once they have it, find each other and ping over the circuit.
INTEROP_PEERS="rust"
source "$(dirname "$0")/../interop/lib.sh" # and lib/common.sh: BUILD, TMP, PIDS, fail, wait_line
SHOW_ON_FAIL=(all)
L=/ip4/127.0.0.1/tcp/0

# point NAME ARGS...: a cp2p point; sets POINT (its address).
point() {
    local name=$1; shift
    "$CP2P" rendezvous --listen $L --stats 0.2 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    POINT=$(wait_line "$TMP/$name.out" '^Listening on ' | cut -d' ' -f3)
}
# client NAME ARGS...: cp2p ping meeting peers at $POINT in namespace demo; sets CID.
client() {
    local name=$1; shift
    "$CP2P" ping --listen $L --rendezvous "$POINT" --namespace demo "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    CID=$(wait_line "$TMP/$name.out" '^Local peer id: ' | cut -d' ' -f4)
}
stats() { grep '^rendezvous ' "$TMP/$1.out" | tail -1; }
# stat NAME KEY: the last value of KEY in the point's counters.
stat() { field "$(stats "$1")" "$2"; }
await_stat() { # NAME KEY VALUE: within 10 s
    local i
    for ((i = 0; i < 100; i++)); do [ "$(stat "$1" "$2")" = "$3" ] && return 0; sleep 0.1; done
    fail "$1: $2 is $(stat "$1" "$2"), not $3"
}

echo "== 1. cp2p point, two cp2p clients"
point p1
client a --count 3
A=$CID
wait_line "$TMP/a.out" '^registered demo ttl=7200$' >/dev/null
client b # until stopped: a stops first, after 3 replies
B=$CID
PID_B=${PIDS[-1]}
PID_A=${PIDS[-2]}
wait_line "$TMP/b.out" "^discovered $A /ip4/127\.0\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/a.out" "^discovered $B /ip4/127\.0\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/b.out" "^ping $A rtt=" >/dev/null
wait_line "$TMP/a.out" "^ping $B rtt=" >/dev/null
wait $PID_A || fail "client a failed"
kill $PID_B
wait $PID_B || fail "client b did not stop cleanly"
if grep -q "^discovered $A " "$TMP/a.out"; then fail "a discovered itself"; fi
await_stat p1 unregistered 2
await_stat p1 registrations 0
[ "$(stat p1 registered)" = 2 ] || fail "p1: $(stats p1)"
echo "   found each other, pinged, unregistered on exit"

echo "== 2. rust point: cp2p and rust clients"
"$RUST_PEER" rendezvous server --listen $L >"$TMP/rs.out" 2>"$TMP/rs.err" &
PIDS+=($!)
POINT=$(wait_line "$TMP/rs.out" '^listening ' | cut -d' ' -f2)
CP2P_LOG=info client c
C=$CID
wait_line "$TMP/c.out" '^registered demo ttl=7200$' >/dev/null
grep -q "legacy envelope" "$TMP/c.err" || fail "no fallback to the legacy envelope logged"
wait_line "$TMP/rs.out" "^registered $C demo ttl=7200$" >/dev/null
wait_line "$TMP/rs.out" "^discover-served $C n=1$" >/dev/null # itself only
"$RUST_PEER" rendezvous client --point "$POINT" --namespace demo --register --find 1 --dial \
    >"$TMP/rc.out" 2>"$TMP/rc.err" &
PIDS+=($!)
R=$(wait_line "$TMP/rc.out" '^peer-id ' | cut -d' ' -f2)
wait_line "$TMP/rc.out" "^discovered $C /ip4/127\.0\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/c.out" "^discovered $R /ip4/127\.0\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/c.out" "^ping $R rtt=" >/dev/null
wait_line "$TMP/rc.out" "^ping $C rtt=" >/dev/null
# the cookie: no answer to c held both registrations at once
if grep -q "^discover-served $C n=2" "$TMP/rs.out"; then fail "c's cookie was not honoured"; fi
[ "$(grep -c "^discover-served $C n=1$" "$TMP/rs.out")" -ge 2 ] || fail "c paged less than twice"
echo "   cp2p registered (legacy envelope), paged by cookie, found and pinged rust; rust found cp2p"

echo "== 3. cp2p point: a rust client and two cp2p clients"
point p3
"$RUST_PEER" rendezvous client --point "$POINT" --namespace demo --register --limit 1 --find 2 --dial \
    >"$TMP/rc3.out" 2>"$TMP/rc3.err" &
PIDS+=($!)
R3=$(wait_line "$TMP/rc3.out" '^peer-id ' | cut -d' ' -f2)
wait_line "$TMP/rc3.out" '^registered demo ttl=7200$' >/dev/null
client d --rendezvous-record legacy
D=$CID
client e --rendezvous-record legacy
E=$CID
wait_line "$TMP/rc3.out" "^found 2$" >/dev/null
grep -q "^discovered $D /ip4/127\.0\.0\.1/tcp/" "$TMP/rc3.out" || fail "rust did not discover d"
grep -q "^discovered $E /ip4/127\.0\.0\.1/tcp/" "$TMP/rc3.out" || fail "rust did not discover e"
if grep -q '^page n=[2-9]' "$TMP/rc3.out"; then fail "a page over the limit of 1"; fi
[ "$(grep -c '^page n=1$' "$TMP/rc3.out")" -ge 3 ] || fail "rust did not page one at a time"
wait_line "$TMP/d.out" "^discovered $R3 /ip4/127\.0\.0\.1/tcp/" >/dev/null
wait_line "$TMP/e.out" "^discovered $R3 /ip4/127\.0\.0\.1/tcp/" >/dev/null
wait_line "$TMP/rc3.out" "^ping ($D|$E) rtt=" >/dev/null
wait_line "$TMP/d.out" "^ping ($R3|$E) rtt=" >/dev/null
echo "   rust registered at cp2p, paged one at a time, found both cp2p clients; they found rust"

echo "== 4. a flood of identities"
MPORT=$(free_port)
point p4 --max-per-namespace 5 --max-total 8 --metrics 127.0.0.1:$MPORT
client good
GOOD=$CID
wait_line "$TMP/good.out" '^registered demo ttl=7200$' >/dev/null
flood() { # NAMESPACE N
    local i
    for ((i = 0; i < $2; i++)); do
        "$CP2P" ping --listen $L --rendezvous "$POINT" --namespace "$1" >"$TMP/f$1$i.out" 2>"$TMP/f$1$i.err" &
        PIDS+=($!)
    done
}
refused() { cat "$TMP"/f*.err 2>/dev/null | grep -c 'register failed: .* E_UNAVAILABLE' || true; }
SHOW_ON_FAIL=(p4.out good.out)
flood flood 12
await_stat p4 refused_limit 7
flood flood2 12
await_stat p4 refused_limit 17
await_stat p4 registrations 8
for ((i = 0; i < 100; i++)); do [ "$(refused)" = 17 ] && break; sleep 0.1; done
[ "$(refused)" = 17 ] || fail "$(refused) flood clients told E_UNAVAILABLE, not 17"
[ "$(stat p4 namespaces)" = 3 ] || fail "p4: $(stats p4)"
curl -sf "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics.txt" || fail "no /metrics"
grep -q '^cp2p_rendezvous_registrations 8$' "$TMP/metrics.txt" || fail "metrics: $(grep rendezvous "$TMP/metrics.txt")"
grep -q '^cp2p_rendezvous_refused_limit_total 17$' "$TMP/metrics.txt" || fail "metrics: $(grep rendezvous "$TMP/metrics.txt")"
# the good peer is still found, and reached, by a newcomer that only discovers
"$CP2P" ping --rendezvous "$POINT" --namespace demo --count 2 >"$TMP/new.out" 2>"$TMP/new.err" &
PIDS+=($!)
PID_NEW=$!
wait_line "$TMP/new.out" "^discovered $GOOD /ip4/127\.0\.0\.1/tcp/" >/dev/null
wait $PID_NEW || fail "the newcomer could not ping the good peer"
grep -q "^ping $GOOD rtt=" "$TMP/new.out" || fail "no ping of the good peer"
echo "   per namespace 5 and total 8 held (17 refused); the good peer was found and pinged"
# the same identities from one address, at a point that counts loopback
point p5 --max-per-ip 3 --limit-loopback
rm -f "$TMP"/f*.err
flood crowd 6
await_stat p5 refused_limit 3
await_stat p5 registrations 3
echo "   3 registrations per address held (3 of 6 refused)"
echo "== 5. relay and rendezvous point in one: hosts reachable through the relay only"
"$CP2P" relay --listen $L --rendezvous --stats 0.2 >"$TMP/relay.out" 2>"$TMP/relay.err" &
PIDS+=($!)
POINT=$(wait_line "$TMP/relay.out" '^Listening on ' | cut -d' ' -f3)
SHOW_ON_FAIL=(relay.out n1.out n1.err n2.out n2.err)
"$CP2P" ping --relay "$POINT" --rendezvous "$POINT" --namespace nat >"$TMP/n1.out" 2>"$TMP/n1.err" &
PIDS+=($!)
N1=$(wait_line "$TMP/n1.out" '^Local peer id: ' | cut -d' ' -f4)
wait_line "$TMP/n1.out" '^registered nat ttl=7200$' >/dev/null
"$CP2P" ping --relay "$POINT" --rendezvous "$POINT" --namespace nat >"$TMP/n2.out" 2>"$TMP/n2.err" &
PIDS+=($!)
N2=$(wait_line "$TMP/n2.out" '^Local peer id: ' | cut -d' ' -f4)
wait_line "$TMP/n2.out" "^discovered $N1 ${POINT//./\\.}/p2p-circuit$" >/dev/null
wait_line "$TMP/n2.out" "^ping $N1 rtt=" >/dev/null
wait_line "$TMP/n1.out" "^discovered $N2 ${POINT//./\\.}/p2p-circuit$" >/dev/null
wait_line "$TMP/n1.out" "^ping $N2 rtt=" >/dev/null
wait_line "$TMP/relay.out" '^rendezvous registrations=2 ' >/dev/null
if grep -q '^discovered .* /ip4/127\.0\.0\.1/tcp/[0-9]*$' "$TMP/n1.out" "$TMP/n2.out"; then
    fail "a host with no listen address registered a direct one"
fi
echo "   both registered their circuit address, found each other and pinged through the relay"
echo "PASS"
