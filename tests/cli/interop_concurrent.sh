#!/usr/bin/env bash
# Several js-libp2p peers dial one cp2p peer at the same moment, over yamux
# and mplex, ping it and run echo streams; cp2p must serve every one, keep
# its memory bounded and exit cleanly on SIGINT (the setting in which a heap
# corruption was once seen). CP2P_CONCURRENT_PEERS sets how many (default 4).
. "$(dirname "$0")/../interop/lib.sh"

N=${CP2P_CONCURRENT_PEERS:-4}
start_cp2p c --echo
pids=()
for ((i = 1; i <= N; i++)); do
    mux=yamux
    ((i % 2)) || mux=mplex
    js --dial "$CP2P_ADDR" --muxer $mux --ping 2 --echo-streams 8 --echo-size 262144 \
        >"$TMP/j$i.out" 2>"$TMP/j$i.err" &
    pids+=($!)
    PIDS+=($!)
done
for ((i = 1; i <= N; i++)); do
    wait "${pids[i - 1]}" || { show j$i.out j$i.err c.err; fail "js peer $i failed"; }
    grep -qE '^echo ok streams=8 bytes=262144 ' "$TMP/j$i.out" || { show j$i.out; fail "js peer $i: echo incomplete"; }
    [ "$(grep -cE '^ping rtt=' "$TMP/j$i.out")" = 2 ] || { show j$i.out; fail "js peer $i: pings missing"; }
done
kill -0 "$CP2P_PID" 2>/dev/null || { show c.err; fail "cp2p died"; }
peak=$(peak_rss_kib "$CP2P_PID")
echo "cp2p peak RSS ${peak} KiB"
[ "$peak" -lt $((256 * 1024)) ] || fail "cp2p used ${peak} KiB"
kill -INT "$CP2P_PID"
wait "$CP2P_PID" || { show c.err; fail "cp2p did not exit cleanly"; }
echo PASS
