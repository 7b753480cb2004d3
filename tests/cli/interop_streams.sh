#!/usr/bin/env bash
# 50 concurrent /echo/1.0.0 streams of 1 MiB each between cp2p and js-libp2p,
# both directions, over yamux and mplex: every byte must come back intact.
. "$(dirname "$0")/../interop/lib.sh"

STREAMS=50
SIZE=$((1024 * 1024))
for mux in $MUXERS; do
    echo "== $mux: js streams to cp2p"
    start_cp2p c-$mux --muxer "$mux" --echo
    js --dial "$CP2P_ADDR" --muxer "$mux" --echo-streams $STREAMS --echo-size $SIZE \
        >"$TMP/j-$mux.out" 2>"$TMP/j-$mux.err" || { show j-$mux.out j-$mux.err c-$mux.err; fail "$mux: js echo run failed"; }
    grep -E "^echo ok streams=$STREAMS bytes=$SIZE " "$TMP/j-$mux.out" || fail "$mux: js echo incomplete"
    kill "$CP2P_PID"

    echo "== $mux: cp2p streams to js"
    start_js js-$mux --muxer "$mux"
    "$CP2P" ping --dial "$JS_ADDR" --muxer "$mux" --echo-streams $STREAMS --echo-size $SIZE \
        >"$TMP/d-$mux.out" 2>"$TMP/d-$mux.err" || { show d-$mux.out d-$mux.err; fail "$mux: cp2p echo run failed"; }
    grep -E "^echo ok streams=$STREAMS bytes=$SIZE$" "$TMP/d-$mux.out" || fail "$mux: cp2p echo incomplete"
    kill "$JS_PID"
done
echo PASS
