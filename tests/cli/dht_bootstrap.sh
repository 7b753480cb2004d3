#!/usr/bin/env bash
# cp2p dht keeps trying its bootstrap peers while its routing table is empty:
# a node started before its bootstrap peer exists puts a record once that
# peer starts (same key and port) a few seconds later, with no restart; the
# table emptied (the peer killed) fills again the same way. And a failed
# operation names its real cause: unreachable, refused (by cp2p, and by
# js-libp2p, which refuses keys without a namespace), too few for the quorum,
# timed out; never "unreachable" for a peer that answered.
source "$(dirname "$0")/../interop/lib.sh" "$1"
SHOW_ON_FAIL=(all)
cleanup_more() { exec 3>&- 2>/dev/null || true; }
DHT=("$CP2P" dht --listen /ip4/127.0.0.1/tcp/0)

"$CP2P" keygen --out "$TMP/b.key" >/dev/null
ID_B=$("$CP2P" id --key "$TMP/b.key" | head -1)
PORT_B=$(free_port)
MA_B=/ip4/127.0.0.1/tcp/$PORT_B/p2p/$ID_B
start_b() {
    "$CP2P" dht --key "$TMP/b.key" --listen /ip4/127.0.0.1/tcp/$PORT_B --serve </dev/null \
        >>"$TMP/b.out" 2>>"$TMP/b.err" &
    PIDS+=($!)
    PID_B=$!
    wait_line "$TMP/b.out" '^Listening on ' >/dev/null
}
# get NAME KEY: a fresh node that bootstraps from b reads KEY; prints its line.
get() {
    echo "GET $2" | timeout 60 "${DHT[@]}" --bootstrap "$MA_B" >"$TMP/$1.out" 2>"$TMP/$1.err"
    grep '^\(Got\|Failed to get\) record' "$TMP/$1.out"
}

echo "== the bootstrap peer starts after us"
mkfifo "$TMP/a.in"
CP2P_LOG=info "${DHT[@]}" --bootstrap "$MA_B" --quorum 1 --serve <"$TMP/a.in" >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
exec 3>"$TMP/a.in"
wait_line "$TMP/a.err" '^cp2p: dht: bootstrap failed: peer unreachable: no connection to 1 of 1 peer asked; trying again' >/dev/null
# Tried again after 1 s, then 2 s: a backoff, not a flood.
wait_line "$TMP/a.err" 'trying the 1 bootstrap peer again in 1\.0 s' >/dev/null
wait_line "$TMP/a.err" 'trying the 1 bootstrap peer again in 2\.0 s' 5 >/dev/null
before=$(grep -c 'trying the 1 bootstrap peer again' "$TMP/a.err")
echo "PUT k1 v1" >&3 # issued while the table is empty: it waits, and the tries come each second
sleep 3
grep -q '^Failed to put' "$TMP/a.out" && fail "the put did not wait for the bootstrap peer"
start_b
wait_line "$TMP/a.out" '^(Successfully put|Failed to put) record "k1"' 30 >/dev/null
grep -qxF 'Successfully put record "k1"' "$TMP/a.out" || fail "the put failed once the bootstrap peer was up"
[ "$(get c k1)" = 'Got record "k1" "v1"' ] || fail "a new node did not read k1 from b"
tries=$(($(grep -c 'trying the 1 bootstrap peer again' "$TMP/a.err") - before))
[ "$tries" -ge 2 ] && [ "$tries" -le 5 ] || fail "$tries tries while the put waited 3 s (2 to 5 expected)"
grep -q 'bootstrap peers reached' "$TMP/a.err" || fail "no log line for the refilled table"

echo "== the table empties (b killed) and fills again (b back)"
kill -9 "$PID_B"
wait "$PID_B" 2>/dev/null || true
echo "PUT k2 v2" >&3 # b fails it: the table empties, the put waits
sleep 3
grep -q '^Failed to put record "k2"' "$TMP/a.out" && fail "the put did not wait for the table to fill again"
start_b
wait_line "$TMP/a.out" '^(Successfully put|Failed to put) record "k2"' 30 >/dev/null
grep -qxF 'Successfully put record "k2"' "$TMP/a.out" || fail "the put failed once b was back"
[ "$(get d k2)" = 'Got record "k2" "v2"' ] || fail "a new node did not read k2 from b"
exec 3>&-

echo "== failures name their cause"
# unreachable: nothing listens on the bootstrap address.
DEAD=/ip4/127.0.0.1/tcp/$(free_port)/p2p/$ID_B
result() { grep -v '^Local peer id: \|^Listening on ' || true; }
out=$(echo "GET x" | timeout 30 "${DHT[@]}" --bootstrap "$DEAD" --query-timeout 3 2>/dev/null | result)
[ "$out" = 'Failed to get record "x": no peer in the routing table, and the bootstrap peers: peer unreachable: no connection to 1 of 1 peer asked' ] ||
    fail "unreachable: $out"
# timed out: a bootstrap peer that accepts TCP and says nothing.
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' >"$TMP/silent.port" &
PIDS+=($!)
wait_line "$TMP/silent.port" '^[0-9]+$' >/dev/null
SILENT=/ip4/127.0.0.1/tcp/$(cat "$TMP/silent.port")/p2p/$ID_B
out=$(echo "PUT x y" | timeout 30 "${DHT[@]}" --bootstrap "$SILENT" --timeout 1 --query-timeout 4 2>"$TMP/t.err" | result)
[ "$out" = 'Failed to put record "x": no peer in the routing table, and the bootstrap peers: timed out: 1 of 1 peer asked did not answer in time' ] ||
    fail "timed out: $out"
grep -q 'bootstrap failed: timed out' "$TMP/t.err" || fail "bootstrap timeout not named: $(cat "$TMP/t.err")"

# A fresh peer f for the rest, which knows nobody yet.
"${DHT[@]}" --serve </dev/null >"$TMP/f.out" 2>"$TMP/f.err" &
PIDS+=($!)
MA_F=$(wait_line "$TMP/f.out" '^Listening on ' | cut -d' ' -f3)
# not found: a peer answered, and did not have it.
out=$(echo "GET nothing-here" | timeout 60 "${DHT[@]}" --bootstrap "$MA_F" 2>/dev/null | result)
[ "$out" = 'Failed to get record "nothing-here": not found (1 of 1 peer asked answered)' ] ||
    fail "not found: $out"
# refused, by a cp2p peer that has no validator for /foo/ (f has none).
out=$(echo "PUT /foo/x y" | timeout 60 "${DHT[@]}" --namespace foo --bootstrap "$MA_F" 2>/dev/null | result)
[ "$out" = 'Failed to put record "/foo/x": refused by 1 of 1 peer' ] || fail "refused: $out"
# too few for the quorum: e takes /foo/ keys, f refuses them.
"${DHT[@]}" --namespace foo --serve </dev/null >"$TMP/e.out" 2>"$TMP/e.err" &
PIDS+=($!)
MA_E=$(wait_line "$TMP/e.out" '^Listening on ' | cut -d' ' -f3)
out=$(echo "PUT /foo/q y" | timeout 60 "${DHT[@]}" --namespace foo --bootstrap "$MA_F" --bootstrap "$MA_E" 2>/dev/null | result)
[ "$out" = 'Failed to put record "/foo/q": too few peers for the quorum: 1 of the 2 needed took it (1 refused, 0 unreachable, 0 timed out)' ] ||
    fail "quorum: $out"
# refused by js-libp2p: a key without a namespace, as the original demo typed it.
mkfifo "$TMP/js.in"
(cd "$INTEROP" && exec node --import ./polyfill.mjs dht.mjs) <"$TMP/js.in" >"$TMP/js.out" 2>"$TMP/js.err" &
PIDS+=($!)
exec 3>"$TMP/js.in"
J=$(wait_line "$TMP/js.out" '^Listening on ' 30 | cut -d' ' -f3)
out=$(echo "PUT k1 v1" | timeout 60 "${DHT[@]}" --bootstrap "$J" 2>/dev/null | result)
[ "$out" = 'Failed to put record "k1": refused by 1 of 1 peer (js-libp2p, go-libp2p and cp2pd take only keys under a namespace they have a validator for: use /<namespace>/k1, with that namespace set up on those peers and --namespace <namespace> here; or they hold all they take from one peer)' ] ||
    fail "refused by js: $out"
# ... and takes one under a namespace it validates.
out=$(echo "PUT /test/k1 v1" | timeout 60 "${DHT[@]}" --namespace test --bootstrap "$J" 2>/dev/null | result)
[ "$out" = 'Successfully put record "/test/k1"' ] || fail "js refused a /test/ key: $out"
if grep -h 'unreachable' "$TMP"/*.out | grep -v '0 unreachable' | grep -qv 'no connection to'; then
    fail "a message says unreachable for a peer that answered"
fi
exec 3>&-
echo PASS
