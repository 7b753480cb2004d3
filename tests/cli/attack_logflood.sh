#!/usr/bin/env bash
# The log flood (issue #14): a peer fills a cp2p dht listener's store (16,384
# records) and goes on putting, 4,000 PUT_VALUEs more, each refused with a
# warning. The listener's log stays a few lines: the first refusals, then one
# line with the count of those suppressed (written at the latest when the
# listener exits); every refusal is still counted (/metrics), and the
# listener still serves what it holds.
source "$(dirname "$0")/lib/common.sh" "$1"
CP2P=$BUILD/cp2p
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"
FULL=16384 # CP2P_KAD_STORE_DEFAULT_MAX_RECORDS
MORE=4000
SHOW_ON_FAIL=(victim.err flood.out flood.err)

M=$(free_port)
mkfifo "$TMP/victim.in"
# One peer may fill the whole store here: its quota (--records-per-peer,
# tests/cli/dht_quota.sh) is lifted so that the store itself is what refuses.
CP2P_LOG=info "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --namespace test --serve \
    --records-per-peer $((FULL * 2)) \
    --metrics 127.0.0.1:$M <"$TMP/victim.in" >"$TMP/victim.out" 2>"$TMP/victim.err" &
VICTIM=$!
PIDS+=($VICTIM)
exec 3>"$TMP/victim.in"
ADDR=$(wait_line "$TMP/victim.out" '^Listening on ' | cut -d' ' -f3)
PORT=$(cut -d/ -f5 <<<"$ADDR")

"${HOSTILE[@]}" put-flood 127.0.0.1 "$PORT" 120 $((FULL + MORE)) >"$TMP/flood.out" 2>"$TMP/flood.err" ||
    fail "the flood did not run"
read -r _ stored _ refused < <(grep '^stored ' "$TMP/flood.out")
[ "$stored" = $FULL ] && [ "$refused" = $MORE ] ||
    fail "expected $FULL records stored and $MORE refused, got $stored and $refused"

lines=$(wc -l <"$TMP/victim.err")
echo "$refused PUT_VALUEs refused; the listener logged $lines lines"
[ "$lines" -lt 50 ] || fail "$refused refusals wrote $lines log lines"
metrics=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$M/metrics', timeout=5).read().decode())")
grep -qx "cp2p_dht_not_stored_total $MORE" <<<"$metrics" ||
    fail "the refusals were not counted: $(grep not_stored <<<"$metrics")"

out=$(echo "GET /test/flood-7" | timeout 60 "$CP2P" dht --namespace test --bootstrap "$ADDR" 2>/dev/null | grep 'record' || true)
[ "$out" = 'Got record "/test/flood-7" "x"' ] || fail "a record held was not served after the flood: $out"

kill -TERM "$VICTIM"
wait "$VICTIM" || fail "the listener did not exit cleanly"
exec 3>&-
shown=$(grep -v ' kad: suppressed ' "$TMP/victim.err" | grep -c 'did not store a record from .*: the store is full' || true)
sum=$(sed -n 's/.* kad: suppressed \([0-9]*\) similar lines in the last [0-9]* s, like: did not store a record .*/\1/p' \
    "$TMP/victim.err")
[ -n "$sum" ] || fail "no line says how many refusals were not logged"
[ $((shown + sum)) = "$MORE" ] || fail "$shown refusals logged and $sum suppressed, of $MORE"
echo "logged $shown, suppressed $sum"
echo PASS
