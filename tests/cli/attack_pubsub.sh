#!/usr/bin/env bash
# ctest: run-serial
# A pubsub node under a flood (tests/cli/lib/hostile.py ps-flood, two
# connections): RPCs of 300 topics, forged messages, IHAVEs of 10,000 ids,
# IWANTs of 2,000 and GRAFTs (again and again, into their backoff), sent as
# fast as the stream window allows by peers that never read what the node
# sends them. Meanwhile the node relays between a cp2p peer and
# a go-libp2p-pubsub peer: every message gets through, during the flood and
# after it; the node's memory grows by less than 64 MiB; the node scores
# (--score) the flooders down and graylists them (their RPCs ignored, the
# forged messages of their first ones counted as rejected in /metrics), while
# what the honest peer publishes keeps flowing through it (a graylisted
# sender would be ignored); the node exits cleanly.
INTEROP_PEERS=go
. "$(dirname "$0")/../interop/lib.sh"
small_quarantine
HOSTILE=(python3 "$(dirname "$0")/lib/hostile.py")

M=$(free_port)
mkfifo "$TMP/v.in" "$TMP/b.in"
"$CP2P" pubsub --topic chat --score --listen /ip4/127.0.0.1/tcp/0 --metrics 127.0.0.1:$M \
    <"$TMP/v.in" >"$TMP/v.out" 2>"$TMP/v.err" &
V_PID=$!
PIDS+=($V_PID)
exec 7>"$TMP/v.in"
V=$(wait_line "$TMP/v.out" '^Listening on ' | cut -d' ' -f3)
V_PORT=$(sed -E 's#^/ip4/127\.0\.0\.1/tcp/([0-9]+)/.*#\1#' <<<"$V")
"$GO_PEER" pubsub --topic chat --dial "$V" </dev/null >"$TMP/g.out" 2>"$TMP/g.err" &
PIDS+=($!)
"$CP2P" pubsub --topic chat --listen /ip4/127.0.0.1/tcp/0 --dial "$V" <"$TMP/b.in" >"$TMP/b.out" 2>"$TMP/b.err" &
PIDS+=($!)
exec 8>"$TMP/b.in"
B_ID=$(wait_line "$TMP/b.out" '^Local peer id: ' | cut -d' ' -f4)
wait_line "$TMP/g.out" "^subscribed " 10 >/dev/null || { show all; fail "go did not see the node subscribe"; }
sleep 1.5 # a heartbeat: the meshes form
base=$(peak_rss_kib "$V_PID")

delivered() { # TEXT: go got TEXT from B
    wait_line "$TMP/g.out" "^Got message: '$1' with id: [0-9a-f]+ from peer: $B_ID\$" 15 >/dev/null ||
        { show all; fail "'$1' did not get through the node"; }
}
echo "before the flood" >&8
delivered "before the flood"

"${HOSTILE[@]}" ps-flood 127.0.0.1 "$V_PORT" 8 >"$TMP/h1.out" 2>&1 &
H1=$!
"${HOSTILE[@]}" ps-flood 127.0.0.1 "$V_PORT" 8 >"$TMP/h2.out" 2>&1 &
H2=$!
for i in 1 2 3; do
    sleep 2
    echo "during the flood $i" >&8
    delivered "during the flood $i"
done
wait $H1 $H2 || true
rpcs=$(cat "$TMP/h1.out" "$TMP/h2.out" | awk '/^rpcs/ {n += $2} END {print n + 0}')
[ "$rpcs" -gt 10 ] || { cat "$TMP"/h*.out; fail "the flood sent only $rpcs RPCs"; }
echo "after the flood" >&8
delivered "after the flood"
peak=$(peak_rss_kib "$V_PID")
echo "flood: $rpcs RPCs; node RSS $base kB before, peak $peak kB"
[ $((peak - base)) -lt $((64 * 1024)) ] || fail "the node grew by $((peak - base)) kB"

metrics=$(curl -s "http://127.0.0.1:$M/metrics") || fail "no /metrics"
rejected=$(awk '/^cp2p_pubsub_rejected_total/ {print $2}' <<<"$metrics")
[ "${rejected:-0}" -gt 0 ] || fail "the forged messages were not counted: $(grep pubsub <<<"$metrics")"
graylisted=$(awk '/^cp2p_pubsub_graylisted_rpcs_total/ {print $2}' <<<"$metrics")
[ "${graylisted:-0}" -gt 0 ] || fail "the flooders were not graylisted: $(grep pubsub <<<"$metrics")"
echo "rejected $rejected forged messages; ignored $graylisted RPCs of graylisted peers"
kill -0 "$V_PID" || fail "the node died"
exec 7>&- 8>&-
kill -TERM "$V_PID"
rc=0; wait "$V_PID" || rc=$?
[ $rc = 0 ] || { show v.err; fail "the node exited with $rc"; }
echo PASS
