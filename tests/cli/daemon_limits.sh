#!/usr/bin/env bash
# cp2pd's limit flags (issue #13) reach the host: -maxMemoryMB shows as the
# memory limit in /metrics, next to the memory in use; -h lists them all.
source "$(dirname "$0")/lib/common.sh"
for f in maxMemoryMB connsPerIP connsPerSubnet maxPendingInbound handshakeTimeout; do
    "$BUILD/cp2pd" -h 2>&1 | grep -q -- "-$f " || fail "cp2pd -h does not list -$f"
done
M=$(free_port)
start_cp2pd d -maxMemoryMB 100 -connsPerIP 4 -maxPendingInbound 32 -handshakeTimeout 2s -metricsAddr 127.0.0.1:$M
metrics=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$M/metrics', timeout=5).read().decode())")
grep -qx 'cp2p_memory_limit_bytes 104857600' <<<"$metrics" || fail "no 100 MiB memory limit in /metrics: $(grep memory <<<"$metrics")"
grep -q '^cp2p_memory_used_bytes [0-9]' <<<"$metrics" || fail "no memory in use in /metrics"
grep -q '^cp2p_memory_holds_total 0$' <<<"$metrics" || fail "memory holds not 0 at rest"
echo PASS
