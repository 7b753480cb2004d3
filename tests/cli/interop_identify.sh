#!/usr/bin/env bash
# Identify between cp2p and js-libp2p: each side learns the other's agent
# version, protocols and listen addresses, over yamux and mplex.
. "$(dirname "$0")/../interop/lib.sh"

for mux in $MUXERS; do
    echo "== $mux: js dials cp2p"
    start_cp2p c-$mux --muxer "$mux" --verbose
    js --dial "$CP2P_ADDR" --muxer "$mux" --wait-identify --agent js-interop/$mux \
        >"$TMP/j-$mux.out" 2>"$TMP/j-$mux.err" || { show j-$mux.out j-$mux.err; fail "$mux: js run failed"; }
    line=$(grep -m1 "^identified $CP2P_ID " "$TMP/j-$mux.out") || { show j-$mux.out; fail "$mux: js did not identify cp2p"; }
    echo "js saw: $line"
    [[ $line == *" agent=cp2p/"* ]] || fail "$mux: js saw no cp2p agent version"
    [[ $line == *"/ipfs/ping/1.0.0"* && $line == *"/ipfs/id/1.0.0"* ]] || fail "$mux: js saw the wrong protocols"
    [[ $line == *"${CP2P_ADDR%/p2p/*}"* ]] || fail "$mux: js did not learn cp2p's listen address"
    [[ $line =~ record=[0-9]+$ ]] || fail "$mux: js did not accept cp2p's signed peer record"
    line=$(wait_line "$TMP/c-$mux.out" "^identified [^ ]+ agent=js-interop/$mux ") || fail "$mux: cp2p did not identify js"
    echo "cp2p saw: $line"
    [[ $line == *"/ipfs/ping/1.0.0"* && $line == *"/echo/1.0.0"* ]] || fail "$mux: cp2p saw the wrong protocols"
    kill "$CP2P_PID"

    echo "== $mux: cp2p dials js"
    start_js js-$mux --muxer "$mux" --agent js-listener/$mux
    "$CP2P" ping --dial "$JS_ADDR" --muxer "$mux" --verbose --count 3 --interval 0.3 \
        >"$TMP/d-$mux.out" 2>"$TMP/d-$mux.err" || { show d-$mux.out d-$mux.err; fail "$mux: cp2p run failed"; }
    line=$(grep -m1 "^identified $JS_ID agent=js-listener/$mux " "$TMP/d-$mux.out") ||
        { show d-$mux.out; fail "$mux: cp2p did not identify js"; }
    echo "cp2p saw: $line"
    [[ $line == *"${JS_ADDR%/p2p/*}"* ]] || fail "$mux: cp2p did not learn js's listen address"
    [[ $line =~ record=[0-9]+$ ]] || fail "$mux: cp2p did not accept js's signed peer record"
    wait_line "$TMP/js-$mux.out" "^identified [^ ]+ agent=cp2p/" >/dev/null
    kill "$JS_PID"
done
echo PASS
