#!/usr/bin/env bash
# ctest: run-serial
# 256 MiB through one /echo/1.0.0 stream between cp2p and js-libp2p, both
# directions, over yamux and mplex: the data must come back intact and cp2p's
# peak memory must stay bounded (flow control end to end, or for mplex the
# socket paused while the reader lags; not buffering).
. "$(dirname "$0")/../interop/lib.sh"

SIZE=$((256 * 1024 * 1024))
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
# default) before reuse; keep it small so RSS measures our buffering.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
CP2P_MAX_KIB=$((64 * 1024))
# Node frees stream buffers only when V8 collects; fed at cp2p's speed its peak
# is ~600 MiB (160 MiB js to js), so this bound only catches runaway growth.
JS_MAX_KIB=$((1024 * 1024))
for mux in ${CP2P_BIG_MUXERS:-yamux mplex}; do
    echo "== $mux: js sends to cp2p"
    start_cp2p c-$mux --muxer "$mux" --echo
    run_measured "$TMP/j-$mux.out" "$TMP/j-$mux.err" \
        js --dial "$CP2P_ADDR" --muxer "$mux" --echo-streams 1 --echo-size $SIZE
    [ "$RC" = 0 ] || { show j-$mux.out j-$mux.err c-$mux.err; fail "$mux: js run failed"; }
    grep -E "^echo ok streams=1 bytes=$SIZE " "$TMP/j-$mux.out" || fail "$mux: transfer incomplete"
    peak=$(peak_rss_kib "$CP2P_PID")
    echo "cp2p peak RSS ${peak} KiB (echo side)"
    [ "$peak" -lt $CP2P_MAX_KIB ] || fail "$mux: cp2p used ${peak} KiB"
    kill "$CP2P_PID"

    echo "== $mux: cp2p sends to js"
    start_js js-$mux --muxer "$mux"
    run_measured "$TMP/d-$mux.out" "$TMP/d-$mux.err" \
        "$CP2P" ping --dial "$JS_ADDR" --muxer "$mux" --echo-streams 1 --echo-size $SIZE
    [ "$RC" = 0 ] || { show d-$mux.out d-$mux.err; fail "$mux: cp2p run failed"; }
    grep -E "^echo ok streams=1 bytes=$SIZE$" "$TMP/d-$mux.out" || fail "$mux: transfer incomplete"
    echo "cp2p peak RSS ${PEAK_KIB} KiB (sending side)"
    [ "$PEAK_KIB" -lt $CP2P_MAX_KIB ] || fail "$mux: cp2p used ${PEAK_KIB} KiB"
    jpeak=$(peak_rss_kib "$JS_PID")
    echo "js peak RSS ${jpeak} KiB (echo side)"
    [ "$jpeak" -lt $JS_MAX_KIB ] || fail "$mux: js used ${jpeak} KiB"
    kill "$JS_PID"
done
echo PASS
