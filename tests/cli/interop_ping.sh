#!/usr/bin/env bash
# Ping between cp2p and js-libp2p, in both directions, over yamux and mplex.
. "$(dirname "$0")/../interop/lib.sh"

for mux in $MUXERS; do
    echo "== $mux: cp2p pings js"
    start_js js-$mux --muxer "$mux"
    dial=(--dial "$JS_ADDR"); [ "$mux" = mplex ] && dial=("$JS_ADDR") # the address alone, as rust's example takes it
    "$CP2P" ping "${dial[@]}" --count 3 --interval 0.1 --muxer "$mux" \
        >"$TMP/c-$mux.out" 2>"$TMP/c-$mux.err" || { show c-$mux.out c-$mux.err; fail "cp2p ping exited non-zero"; }
    n=$(grep -cE "^ping $JS_ID rtt=[0-9]+\.[0-9]+ ms$" "$TMP/c-$mux.out" || true)
    [ "$n" = 3 ] || { show c-$mux.out c-$mux.err; fail "$mux: expected 3 replies from js, got $n"; }
    kill "$JS_PID"

    echo "== $mux: js pings cp2p"
    start_cp2p cl-$mux --muxer "$mux"
    js --dial "$CP2P_ADDR" --muxer "$mux" --ping 3 >"$TMP/j-$mux.out" 2>"$TMP/j-$mux.err" ||
        { show j-$mux.out j-$mux.err cl-$mux.err; fail "$mux: js ping of cp2p failed"; }
    n=$(grep -cE '^ping rtt=[0-9.]+ ms$' "$TMP/j-$mux.out" || true)
    [ "$n" = 3 ] || { show j-$mux.out; fail "$mux: expected 3 replies from cp2p, got $n"; }
    kill -INT "$CP2P_PID"
    wait "$CP2P_PID" || fail "$mux: cp2p ping did not exit cleanly on SIGINT"
done

echo "== misuse"
rc=0; "$CP2P" ping nowhere 2>"$TMP/m.err" || rc=$?
[ $rc = 2 ] && grep -q 'unexpected argument nowhere' "$TMP/m.err" || { show m.err; fail "a stray argument: rc $rc"; }

echo "== unreachable peer"
if "$CP2P" ping --dial /ip4/127.0.0.1/tcp/1 --count 1 --timeout 3 >"$TMP/u.out" 2>"$TMP/u.err"; then
    fail "ping of a closed port succeeded"
fi
[ "$(wc -l <"$TMP/u.err")" -ge 1 ] && grep -qE "cannot (reach|dial)" "$TMP/u.err" || { show u.err; fail "no clear message"; }
echo PASS
