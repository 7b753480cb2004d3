#!/usr/bin/env bash
# Decode amplification (issue #13): a Kademlia server that answers every
# request with 4 MiB of empty closerPeers (2 bytes each on the wire, a
# hundred once unpacked), as the only bootstrap peer of a cp2p dht node that
# keeps asking it (the bootstrap is retried while the table is empty). The
# node's peak memory stays within 64 MiB of a quiet node's, a js-libp2p peer
# is served ping and identify meanwhile, and a record the node holds is still
# served afterwards.
# ctest: run-serial
source "$(dirname "$0")/../interop/lib.sh" "$1"
small_quarantine
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"
DHT=("$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --namespace test)

# A quiet node's footprint, for the baseline.
mkfifo "$TMP/quiet.in"
"${DHT[@]}" --serve <"$TMP/quiet.in" >"$TMP/quiet.out" 2>"$TMP/quiet.err" &
QUIET=$!
PIDS+=($QUIET)
exec 4>"$TMP/quiet.in"
wait_line "$TMP/quiet.out" '^Listening on ' >/dev/null
echo "PUT /test/warm x" >&4
sleep 2
BASE=$(proc_kb "$QUIET" VmHWM)
kill "$QUIET"

"${HOSTILE[@]}" kad-bomb 127.0.0.1 0 16 >"$TMP/bomb.out" 2>"$TMP/bomb.err" &
PIDS+=($!)
BOMB=$(wait_line "$TMP/bomb.out" '^listening ' | cut -d' ' -f2)
mkfifo "$TMP/victim.in"
CP2P_LOG=info "${DHT[@]}" --bootstrap "$BOMB" --query-timeout 8 --serve <"$TMP/victim.in" \
    >"$TMP/victim.out" 2>"$TMP/victim.err" &
VICTIM=$!
PIDS+=($VICTIM)
exec 3>"$TMP/victim.in"
ADDR=$(wait_line "$TMP/victim.out" '^Listening on ' | cut -d' ' -f3)
echo "PUT /test/keep kept through the attack" >&3 # stored here, whatever the network says
sleep 3
js --dial "$ADDR" --ping 3 --wait-identify >"$TMP/js.out" 2>"$TMP/js.err" ||
    { show js.out js.err victim.err; fail "js was not served during the attack"; }
grep -q "^identified ${ADDR##*/p2p/} " "$TMP/js.out" || { show js.out; fail "js was not served identify"; }
wait_line "$TMP/victim.out" '^(Successfully put|Failed to put) record "/test/keep"' 20 >/dev/null
grep -q 'bad response from .*: ' "$TMP/victim.err" || { show victim.err bomb.out bomb.err; fail "the bombs were not refused"; }
bombs=$(grep -c 'bad response from' "$TMP/victim.err" || true)
sleep 4
kill -0 "$VICTIM" || fail "the node died"
PEAK=$(proc_kb "$VICTIM" VmHWM)
out=$(echo "GET /test/keep" | timeout 60 "${DHT[@]}" --bootstrap "$ADDR" 2>/dev/null | grep 'record')
[ "$out" = 'Got record "/test/keep" "kept through the attack"' ] || fail "the record was lost: $out"
echo "bombs refused: $bombs (logged); peak RSS $PEAK kB against $BASE kB for a quiet node"
[ $((PEAK - BASE)) -lt $((64 * 1024)) ] || fail "peak memory $((PEAK - BASE)) kB above a quiet node's"
exec 3>&- 4>&-
echo PASS
