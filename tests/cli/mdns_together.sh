#!/usr/bin/env bash
# Hosts that start at the same instant find each other quickly (as every pod
# of a Kubernetes rollout does): two `cp2p mdns` with the default 10 s
# interval, started together in two network namespaces on one bridge, discover
# each other within 3 s, ten times in a row; then cp2p and js-libp2p
# (@libp2p/mdns, its default interval too) likewise, ten times.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
INTEROP=$(cd "$(dirname "$0")/../interop" && pwd)
P=cp2pt$$
ROUNDS=${MDNS_ROUNDS:-10}
LIMIT_MS=3000
source "$(dirname "$0")/lib/netns.sh"

[ -x "$CP2P" ] || fail "$CP2P not built"
netns_link "$P" 10.79.0 2

"$CP2P" keygen --out "$TMP/a.key" >/dev/null
"$CP2P" keygen --out "$TMP/b.key" >/dev/null
ID_A=$("$CP2P" id --key "$TMP/a.key" | head -1)
ID_B=$("$CP2P" id --key "$TMP/b.key" | head -1)

now_ms() { date +%s%3N; }
# await FILE REGEX DEADLINE_MS: wait for the line until the deadline (epoch ms).
await() {
    while ! grep -qE "$2" "$1" 2>/dev/null; do
        [ "$(now_ms)" -lt "$3" ] || return 1
        sleep 0.02
    done
}
# stop PID...: SIGINT (goodbye), then wait.
stop() { kill -INT "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }

echo "== two cp2p hosts started together, $ROUNDS times"
worst=0
for ((r = 1; r <= ROUNDS; r++)); do
    : >"$TMP/a.out"; : >"$TMP/b.out"
    t0=$(now_ms)
    ip netns exec ${P}h0 "$CP2P" mdns --key "$TMP/a.key" >"$TMP/a.out" 2>"$TMP/a.err" &
    pa=$!
    ip netns exec ${P}h1 "$CP2P" mdns --key "$TMP/b.key" >"$TMP/b.out" 2>"$TMP/b.err" &
    pb=$!
    PIDS+=($pa $pb)
    deadline=$((t0 + LIMIT_MS))
    await "$TMP/a.out" "^discovered $ID_B /ip4/10\.79\.0\.2/tcp/" $deadline &&
        await "$TMP/b.out" "^discovered $ID_A /ip4/10\.79\.0\.1/tcp/" $deadline ||
        { SHOW_ON_FAIL=(a.out a.err b.out b.err); fail "round $r: not discovered within $LIMIT_MS ms"; }
    took=$(($(now_ms) - t0))
    [ $took -le $worst ] || worst=$took
    grep -q "^Listening on /ip4/10\.79\.0\.1/tcp/[0-9]*/p2p/$ID_A$" "$TMP/a.out" ||
        { SHOW_ON_FAIL=(a.out); fail "cp2p mdns printed no Listening on line"; }
    stop $pa $pb
done
echo "   slowest round: $worst ms"

echo "== cp2p and js-libp2p started together, $ROUNDS times"
[ -f "$INTEROP/node_modules/@libp2p/mdns/package.json" ] ||
    fail "@libp2p/mdns is not installed: run 'npm ci' in tests/interop"
worst=0
for ((r = 1; r <= ROUNDS; r++)); do
    : >"$TMP/a.out"; : >"$TMP/js.out"
    (cd "$INTEROP" && exec ip netns exec ${P}h1 node --import ./polyfill.mjs mdns.mjs) \
        >"$TMP/js.out" 2>"$TMP/js.err" &
    pj=$!
    ip netns exec ${P}h0 "$CP2P" mdns --key "$TMP/a.key" >"$TMP/a.out" 2>"$TMP/a.err" &
    pa=$!
    PIDS+=($pa $pj)
    # Node takes a second or more to load js-libp2p: the clock starts when
    # both hosts run (js prints its peer id once its node has started).
    wait_line "$TMP/js.out" '^Local peer id: ' 30 >/dev/null
    t0=$(now_ms)
    JS_ID=$(sed -n 's/^Local peer id: //p' "$TMP/js.out")
    deadline=$((t0 + LIMIT_MS))
    await "$TMP/a.out" "^discovered $JS_ID /ip4/10\.79\.0\.2/tcp/" $deadline &&
        await "$TMP/js.out" "^discovered $ID_A /ip4/10\.79\.0\.1/tcp/" $deadline ||
        { SHOW_ON_FAIL=(a.out a.err js.out js.err); fail "round $r: cp2p and js did not discover each other within $LIMIT_MS ms"; }
    took=$(($(now_ms) - t0))
    [ $took -le $worst ] || worst=$took
    kill -TERM $pj 2>/dev/null || true
    stop $pa
    wait $pj 2>/dev/null || true
done
echo "   slowest round: $worst ms after js started"
echo PASS
