#!/bin/sh
# Builds the spike and runs every mode: loopback (server + client in one
# process), then against go-libp2p and rust-libp2p peers when their cached
# interop binaries exist (tests/interop/{go,rust}/build.sh print their paths).
cd "$(dirname "$0")" && ./build.sh || exit 1
fail=0
for m in ok nocert badalpn idle idle-nokeepalive vn; do
    timeout 20 ./spike $m > out.$m 2>&1; grep RESULT out.$m || { echo "RESULT $m: FAIL (no result)"; fail=1; }
    grep -q PASS out.$m || fail=1
done
GO=$(CP2P_INTEROP_CACHE=$HOME/.cache/cp2p-interop "$(dirname "$0")"/../../tests/interop/go/build.sh 2>/dev/null)
if [ -x "$GO" ]; then
    # go dials us: 4 concurrent 1 MiB /echo/1.0.0 streams over QUIC streams
    timeout 25 ./spike listen > out.listen 2>&1 & sp=$!
    sleep 1; ma=$(grep -o '/ip4.*' out.listen)
    timeout 20 "$GO" --dial "$ma" --echo-streams 4 --echo-size 1048576 > out.go-dials 2>&1 && echo "RESULT go dials spike: PASS ($(grep 'echo ok' out.go-dials))" || { echo "RESULT go dials spike: FAIL"; fail=1; }
    kill $sp 2>/dev/null; wait $sp 2>/dev/null
    # we dial go
    timeout 20 "$GO" --listen /ip4/127.0.0.1/udp/0/quic-v1 > out.go-listen 2>&1 & gp=$!
    sleep 2; port=$(grep -o 'udp/[0-9]*' out.go-listen | head -1 | cut -d/ -f2)
    timeout 15 ./spike dial 127.0.0.1 "$port" > out.dial-go 2>&1; echo "$(grep RESULT out.dial-go) (go-libp2p /echo/1.0.0)"; grep -q PASS out.dial-go || fail=1
    kill $gp 2>/dev/null; wait $gp 2>/dev/null
fi
RUST=$(CP2P_INTEROP_CACHE=$HOME/.cache/cp2p-interop "$(dirname "$0")"/../../tests/interop/rust/build.sh 2>/dev/null)
if [ -x "$RUST" ]; then
    timeout 20 "$RUST" ready --listen /ip4/127.0.0.1/udp/0/quic-v1 > out.rust-listen 2>&1 & rp=$!
    sleep 2; port=$(grep -o 'udp/[0-9]*/quic-v1' out.rust-listen | head -1 | cut -d/ -f2)
    SPIKE_PING=1 timeout 15 ./spike dial 127.0.0.1 "$port" > out.dial-rust 2>&1; echo "$(grep RESULT out.dial-rust) (rust-libp2p /ipfs/ping/1.0.0)"; grep -q PASS out.dial-rust || fail=1
    kill $rp 2>/dev/null; wait $rp 2>/dev/null
fi
exit $fail
