#!/usr/bin/env bash
# Installs what is needed, builds, and runs the demo: two cp2p peers on
# loopback; peer B dials peer A by its multiaddr and pings it five times.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
echo "building..." >&2
scripts/build.sh build

log=$(mktemp)
build/cp2p ping --listen /ip4/127.0.0.1/tcp/0 >"$log" 2>&1 &
a=$!
trap 'kill $a 2>/dev/null || true; rm -f "$log"' EXIT
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/^Listening on //p' "$log" | head -n1)
    [ -n "$addr" ] && break
    kill -0 $a 2>/dev/null || { cat "$log"; echo "demo: peer A failed to start" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "demo: peer A did not report a listen address" >&2; exit 1; }
echo "--- peer A (listening)"
cat "$log"
echo "--- peer B: cp2p ping --dial $addr --count 5"
build/cp2p ping --dial "$addr" --count 5
