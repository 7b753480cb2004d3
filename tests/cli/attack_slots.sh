#!/usr/bin/env bash
# Slot exhaustion (issue #13): 300 silent TCP connections from one address,
# each opened again as soon as the listener drops it, against a host that
# allows 256 connections. Meanwhile the host still dials out (cp2p ping --dial
# to a js peer), a js peer still dials in and is served ping and identify, and
# the listener's memory grows by less than 64 MiB.
# ctest: run-serial
source "$(dirname "$0")/../interop/lib.sh" "$1"
small_quarantine
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"

start_js target
PORT=$(free_port)
# The attack starts first and takes every slot it can as soon as the host listens.
"${HOSTILE[@]}" silent 127.0.0.1 "$PORT" 14 300 >"$TMP/silent.out" 2>"$TMP/silent.err" &
ATTACKER=$!
PIDS+=($ATTACKER)
CP2P_LOG=info "$CP2P" ping --listen /ip4/127.0.0.1/tcp/$PORT --dial "$JS_ADDR" --count 16 --interval 0.5 \
    >"$TMP/victim.out" 2>"$TMP/victim.err" &
VICTIM=$!
PIDS+=($VICTIM)
ADDR=$(wait_line "$TMP/victim.out" '^Listening on ' | cut -d' ' -f3)
sleep 1
BASE=$(proc_kb "$VICTIM" VmRSS)
sleep 5 # past the 5 s handshake deadline: the first silent ones were dropped and came back
js --dial "$ADDR" --ping 3 --wait-identify >"$TMP/js.out" 2>"$TMP/js.err" ||
    { show js.out js.err victim.err; fail "js was not served while the slots were under attack"; }
grep -q "^identified ${ADDR##*/p2p/} " "$TMP/js.out" || { show js.out; fail "js was not served identify"; }
peak=$(proc_kb "$VICTIM" VmRSS)
wait "$VICTIM" || { show victim.out victim.err; fail "the attacked host could not ping out"; }
[ "$(grep -c '^ping ' "$TMP/victim.out")" -ge 16 ] || { show victim.out; fail "too few pings out"; }
wait "$ATTACKER"
echo "attacker: $(cat "$TMP/silent.out"); RSS $BASE kB -> $peak kB"
opened=$(sed -E 's/.* on ([0-9]+) connections/\1/' "$TMP/silent.out")
[ "$opened" -gt 300 ] || fail "the silent connections were never dropped ($opened opened)"
grep -q 'refused so far' "$TMP/victim.err" || { show victim.err; fail "no log line for the refused connections"; }
[ $(("$peak" - "$BASE")) -lt $((64 * 1024)) ] || fail "memory grew by $((peak - BASE)) kB"
echo PASS
