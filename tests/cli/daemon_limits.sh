#!/usr/bin/env bash
# cp2pd's limit flags (issue #13) reach the host: -maxMemoryMB shows as the
# memory limit in /metrics, next to the memory in use, and -limits as the
# resource manager's scopes; a bad -limits item is refused; -h lists them all.
source "$(dirname "$0")/lib/common.sh"
for f in maxMemoryMB connsPerIP connsPerSubnet maxPendingInbound handshakeTimeout limits; do
    "$BUILD/cp2pd" -h 2>&1 | grep -qE -- "^  -$f( |$)" || fail "cp2pd -h does not list -$f"
done
M=$(free_port)
for bad in peer.bogus=1 nobody.conns=1 peer.conns=-1 peer.conns=x system.memory=1XB "protocol:.streams_in=1"; do
    out=$("$BUILD/cp2pd" -q -limits "$bad" 2>&1) && fail "cp2pd took -limits $bad"
    grep -q "^cp2pd: -limits: .* is not SCOPE.RESOURCE=N" <<<"$out" || fail "-limits $bad: unclear error: $out"
done
start_cp2pd d -maxMemoryMB 100 -connsPerIP 4 -maxPendingInbound 32 -handshakeTimeout 2s -metricsAddr 127.0.0.1:$M \
    -limits "peer.streams_in=77,system.fds=unlimited,transient.memory=3MiB,protocol:/ipfs/id/1.0.0.streams_in=5"
metrics=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$M/metrics', timeout=5).read().decode())")
grep -qx 'cp2p_memory_limit_bytes 104857600' <<<"$metrics" || fail "no 100 MiB memory limit in /metrics: $(grep memory <<<"$metrics")"
grep -q '^cp2p_memory_used_bytes [0-9]' <<<"$metrics" || fail "no memory in use in /metrics"
grep -q '^cp2p_memory_holds_total 0$' <<<"$metrics" || fail "memory holds not 0 at rest"
for want in 'cp2p_rcmgr_limit{scope="peer",resource="streams_in"} 77' \
            'cp2p_rcmgr_limit{scope="transient",resource="memory"} 3145728' \
            'cp2p_rcmgr_limit{scope="transient",resource="conns_in"} 32' \
            'cp2p_rcmgr_limit{scope="system",resource="memory"} 104857600' \
            'cp2p_rcmgr_limit{scope="protocol",protocol="/ipfs/id/1.0.0",resource="streams_in"} 5'; do
    grep -qxF "$want" <<<"$metrics" || fail "no '$want' in /metrics: $(grep rcmgr_limit <<<"$metrics")"
done
grep -q 'cp2p_rcmgr_limit{scope="system",resource="fds"}' <<<"$metrics" && fail "system.fds=unlimited still has a limit"
echo PASS
