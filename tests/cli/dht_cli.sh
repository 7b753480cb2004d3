# cp2p dht on the command line: two nodes put, get, provide and find each
# other; bad lines are answered and skipped; a restarted node keeps its
# records in --datastore; a corrupt or foreign datastore is a clean error.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
SHOW_ON_FAIL=(all)
expect() { grep -qxF "$2" "$TMP/$1" || fail "$1 lacks: $2"; }
CID=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy

"$CP2P" dht --help | grep -q -- '--serve' || fail "--help does not document --serve"

# A server with a datastore, kept alive by --serve after its empty stdin.
"$CP2P" keygen --out "$TMP/a.key" >/dev/null
"$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --key "$TMP/a.key" --datastore "$TMP/store" --serve \
    </dev/null >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
A_PID=$!
wait_line "$TMP/a.out" '^Listening on /ip4/127.0.0.1/tcp/[0-9]+/p2p/' 30 >/dev/null
A=$(grep -m1 '^Listening on ' "$TMP/a.out" | cut -d' ' -f3)
A_ID=${A##*/p2p/}
grep -qx "Local peer id: $A_ID" "$TMP/a.out" || fail "no Local peer id line"

printf '%s\n' "PUT greeting hello dht world" "GET greeting" "GET nothing-here" \
    "PUT_PROVIDER $CID" "GET_PROVIDERS $CID" "GET_PROVIDERS no-such-key" "FIND_PEER $A_ID" \
    "FIND_PEER not-a-peer" "PUT lonely" "FROB x" "" "GET" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$A" --quorum 1 \
        >"$TMP/b.out" 2>"$TMP/b.err" || fail "client exited with $?"
B_ID=$(sed -n 's/^Local peer id: //p' "$TMP/b.out")
expect b.out 'Successfully put record "greeting"'
expect b.out 'Got record "greeting" "hello dht world"'
grep -q '^Failed to get record "nothing-here": ' "$TMP/b.out" || fail "missing get failure"
expect b.out "Successfully put provider record \"$CID\""
expect b.out "Peer $B_ID provides key \"$CID\""
expect b.out 'No providers found for key "no-such-key"'
grep -qE "^Peer $A_ID has address /ip4/127.0.0.1/tcp/[0-9]+$" "$TMP/b.out" || fail "FIND_PEER"
grep -q '^Failed to find peer not-a-peer: ' "$TMP/b.out" || fail "bad peer id accepted"
expect b.out 'Expected: PUT <key> <value>'
[ "$(grep -c '^Expected: ' "$TMP/b.out")" -eq 3 ] || fail "bad lines not all reported"

# A fresh client reads both from the server alone.
printf '%s\n' "GET greeting" "GET_PROVIDERS $CID" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$A" --quorum 1 --client \
        >"$TMP/c.out" 2>"$TMP/c.err" || fail "client exited with $?"
expect c.out 'Got record "greeting" "hello dht world"'
expect c.out "Peer $B_ID provides key \"$CID\""

# Restart the server on the same datastore: it still holds what it held.
kill -TERM "$A_PID"
wait "$A_PID" || fail "server did not exit cleanly on SIGTERM"
printf '%s\n' "GET greeting" "GET_PROVIDERS $CID" |
    timeout 30 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --key "$TMP/a.key" \
        --datastore "$TMP/store" --quorum 1 >"$TMP/a2.out" 2>"$TMP/a2.err" || fail "restart failed"
expect a2.out 'Got record "greeting" "hello dht world"'
expect a2.out "Peer $B_ID provides key \"$CID\""

# A damaged datastore and a directory of something else are errors, not crashes.
for f in "$TMP/store"/*; do head -c 8192 /dev/urandom >"$f"; done
rc=0
echo "GET greeting" | "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --datastore "$TMP/store" \
    >"$TMP/d.out" 2>"$TMP/d.err" || rc=$?
[ "$rc" -eq 1 ] || fail "corrupt datastore: exit $rc"
grep -q 'datastore' "$TMP/d.err" || fail "corrupt datastore: no message"
mkdir "$TMP/foreign" && echo "my notes" >"$TMP/foreign/notes.txt"
rc=0
echo "GET greeting" | "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --datastore "$TMP/foreign" \
    >"$TMP/e.out" 2>"$TMP/e.err" || rc=$?
[ "$rc" -eq 1 ] || fail "foreign datastore: exit $rc"
grep -q 'datastore' "$TMP/e.err" || fail "foreign datastore: no message"
[ "$(cat "$TMP/foreign/notes.txt")" = "my notes" ] || fail "foreign datastore was touched"
echo "PASS dht_cli"
