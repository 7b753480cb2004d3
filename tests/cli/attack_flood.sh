#!/usr/bin/env bash
# Hostile peers that make a listener write and never read (issue #13):
# a multistream "ls" flood before any handshake, yamux pings and new streams
# past the limit after it. Each time the listener's resident memory grows by
# less than 64 MiB, a js-libp2p peer is served ping and identify meanwhile,
# and the listener is still up afterwards.
# ctest: run-serial
source "$(dirname "$0")/../interop/lib.sh" "$1"
small_quarantine
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
SECONDS_EACH=${ATTACK_SECONDS:-8}
LIMIT_KB=$((64 * 1024))
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"


start_cp2p victim
PORT=$(sed -E 's#^/ip4/127\.0\.0\.1/tcp/([0-9]+)/.*#\1#' <<<"$CP2P_ADDR")
VICTIM=$CP2P_PID
# Warm up (the first connections size the pools), then take the baseline.
js --dial "$CP2P_ADDR" --ping 2 >/dev/null 2>&1 || fail "js could not ping the listener before the attacks"
BASE=$(proc_kb "$VICTIM" VmRSS)
echo "baseline RSS $BASE kB"

# attack MODE [CONNS]: run hostile.py for SECONDS_EACH while js pings; check memory.
attack() {
    local name=$1
    "${HOSTILE[@]}" "$name" 127.0.0.1 "$PORT" "$SECONDS_EACH" ${2:-} >"$TMP/$name.out" 2>"$TMP/$name.err" &
    local hp=$! peak=0 now
    PIDS+=($hp)
    sleep 2
    js --dial "$CP2P_ADDR" --ping 3 --wait-identify >"$TMP/js-$name.out" 2>"$TMP/js-$name.err" &
    local jp=$!
    while kill -0 $hp 2>/dev/null; do
        now=$(proc_kb "$VICTIM" VmRSS) || fail "$name: the listener died"
        [ "$now" -le "$peak" ] || peak=$now
        sleep 0.2
    done
    wait $hp || { show "$name.err"; fail "$name: the attacker failed"; }
    wait $jp || { show "js-$name.out" "js-$name.err"; fail "$name: js was not served ping during the attack"; }
    grep -q "^identified $CP2P_ID " "$TMP/js-$name.out" || { show "js-$name.out"; fail "$name: js was not served identify"; }
    echo "$name: $(cat "$TMP/$name.out"); peak RSS $peak kB (+$((peak - BASE)) kB)"
    [ $((peak - BASE)) -lt $LIMIT_KB ] || fail "$name: resident memory grew by $((peak - BASE)) kB"
}


attack ls-flood 32
attack ping-flood
attack syn-flood
kill -0 "$VICTIM" || fail "the listener died"
js --dial "$CP2P_ADDR" --ping 2 >/dev/null 2>&1 || fail "js could not ping the listener after the attacks"
echo PASS
