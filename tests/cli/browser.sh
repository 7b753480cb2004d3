#!/usr/bin/env bash
# ctest: run-serial
# A browser dials cp2p: js-libp2p bundled by esbuild, served on 127.0.0.1,
# run in Debian's Chromium (headless, driven by playwright-core), dials
# `cp2p ping --echo` over /ws (3 pings, identify, a 256 KiB echo stream)
# and `cp2p pubsub` (gossipsub: a message each way).
INTEROP_PEERS=js
. "$(dirname "$0")/../interop/lib.sh"
SHOW_ON_FAIL=(all)
CHROMIUM=${CP2P_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "Chromium is not installed at $CHROMIUM (scripts/deps.sh installs Debian's chromium)"
TOPIC=browser-test

start_cp2p ping --listen /ip4/127.0.0.1/tcp/0/ws --echo
P_WS=$(grep -m1 '/ws/p2p/' "$TMP/ping.out" | cut -d' ' -f3)

mkfifo "$TMP/ps.in"
"$CP2P" pubsub --topic "$TOPIC" --listen /ip4/127.0.0.1/tcp/0/ws <"$TMP/ps.in" >"$TMP/ps.out" 2>"$TMP/ps.err" &
PIDS+=($!)
exec 3>"$TMP/ps.in"
S_WS=$(wait_line "$TMP/ps.out" '^Listening on /ip4/127.0.0.1/tcp/[0-9]+/ws/p2p/' 10 | cut -d' ' -f3)

(cd "$INTEROP" && exec node --import ./polyfill.mjs browser/run.mjs --ping "$P_WS" --pubsub "$S_WS" \
    --topic "$TOPIC" --chromium "$CHROMIUM") >"$TMP/browser.out" 2>"$TMP/browser.err" &
B_PID=$!
PIDS+=($B_PID)
wait_line "$TMP/browser.out" "^subscribed $TOPIC$" 90 >/dev/null
B_ID=$(sed -n 's/^browser peer-id \([^ ]*\) .*/\1/p' "$TMP/browser.out")
wait_line "$TMP/ps.out" "^subscribed $B_ID $TOPIC$" 20 >/dev/null
echo "hello from cp2p" >&3
wait "$B_PID" || fail "the browser's test did not run to its end"
exec 3>&-

grep -qE '^browser [0-9]+\.' "$TMP/browser.out" || fail "no browser version: not Chromium?"
grep -qE "^connected ${P_WS##*/p2p/} over /ip4/127.0.0.1/tcp/[0-9]+/ws" "$TMP/browser.out" || fail "the browser did not connect over /ws"
[ "$(grep -cE '^ping rtt=[0-9.]+ ms$' "$TMP/browser.out")" = 3 ] || fail "3 pings from the browser"
grep -qE '^identified agent=cp2p/[^ ]+ protocols=.*/echo/1.0.0' "$TMP/browser.out" || fail "the browser did not identify cp2p"
grep -qx 'echo ok bytes=262144' "$TMP/browser.out" || fail "the browser's echo stream"
grep -qx 'got message hello from cp2p' "$TMP/browser.out" || fail "the browser did not get cp2p's message"
grep -q "^Got message: 'hello from the browser' with id: .* from peer: $B_ID" "$TMP/ps.out" ||
    fail "cp2p did not get the browser's message"
grep -q '^page error' "$TMP/browser.out" && fail "the page threw"
echo PASS
