#!/usr/bin/env bash
# cp2p dht --mdns across two network namespaces on one bridge (all made here,
# the bridge in a namespace of its own, so no multicast leaves them): a node
# that knows no peer but what mDNS finds gets a record the other one put.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
P=cp2pd$$ # namespace prefix, unique per run
SW=${P}sw
NSS=()
SHOW_ON_FAIL=(all)
cleanup_more() {
    exec 3>&- 2>/dev/null || true
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}

[ -x "$CP2P" ] || fail "$CP2P not built"
if ! ip netns add "$SW" 2>/dev/null; then
    echo "SKIP: needs root and ip netns"
    exit 0
fi
NSS+=("$SW")
ip -n "$SW" link add br0 type bridge mcast_snooping 0
ip -n "$SW" link set br0 up
for i in 0 1; do
    ns=${P}h$i
    ip netns add "$ns"
    NSS+=("$ns")
    ip link add eth0 netns "$ns" type veth peer name p$i netns "$SW"
    ip -n "$SW" link set p$i master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add 10.78.0.$((i + 1))/24 dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 224.0.0.0/4 dev eth0
done


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
