#!/usr/bin/env bash
# cp2p dht --mdns across two network namespaces on one bridge (all made here,
# the bridge in a namespace of its own, so no multicast leaves them): a node
# that knows no peer but what mDNS finds gets a record the other one put.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
P=cp2pd$$ # namespace prefix, unique per run
SHOW_ON_FAIL=(all)
cleanup_more() {
    exec 3>&- 2>/dev/null || true
    netns_cleanup
}
source "$(dirname "$0")/lib/netns.sh"

[ -x "$CP2P" ] || fail "$CP2P not built"
netns_link "$P" 10.78.0 2

# a stores the record (locally: it knows no peer yet) and keeps serving.
echo "PUT greeting hello over mdns" |
    ip netns exec ${P}h0 "$CP2P" dht --mdns --serve --listen /ip4/0.0.0.0/tcp/0 --quorum 1 \
        >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
wait_line "$TMP/a.out" '^(Successfully put|Failed to put) record "greeting"' >/dev/null

# b has no bootstrap peer: only mDNS can lead it to a. Its stdin stays open so
# the GET can be repeated until mDNS has found a (a first try may be too early).
mkfifo "$TMP/b.in"
ip netns exec ${P}h1 "$CP2P" dht --mdns --listen /ip4/0.0.0.0/tcp/0 --quorum 1 \
    <"$TMP/b.in" >"$TMP/b.out" 2>"$TMP/b.err" &
PIDS+=($!)
exec 3>"$TMP/b.in"
for ((try = 0; try < 30; try++)); do
    echo "GET greeting" >&3
    sleep 1
    grep -qxF 'Got record "greeting" "hello over mdns"' "$TMP/b.out" && break
done
grep -qxF 'Got record "greeting" "hello over mdns"' "$TMP/b.out" || fail "b did not get the record"
echo PASS
