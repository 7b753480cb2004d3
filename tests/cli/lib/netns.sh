# Sourced after common.sh by the tests that need hosts on one link: network
# namespaces joined by a bridge that lives in a namespace of its own, so no
# multicast leaves them. Adds cleanup_more (deletes them) unless the script
# defines its own that calls netns_cleanup.
NSS=()
netns_cleanup() { for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done; }
declare -F cleanup_more >/dev/null || cleanup_more() { netns_cleanup; }

# netns_link PREFIX NET N [V6NET]: namespaces PREFIXh0..PREFIXh(N-1), host i
# at NET.(i+1)/24 (and V6NET::(i+1)/64) on eth0. Exits 0 with SKIP when
# namespaces cannot be made (not root).
netns_link() {
    local p=$1 net=$2 n=$3 v6=${4:-} i ns
    if ! ip netns add "${p}sw" 2>/dev/null; then
        echo "SKIP: needs root and ip netns"
        exit 0
    fi
    NSS+=("${p}sw")
    ip -n "${p}sw" link add br0 type bridge mcast_snooping 0
    ip -n "${p}sw" link set br0 up
    for ((i = 0; i < n; i++)); do
        ns=${p}h$i
        ip netns add "$ns"
        NSS+=("$ns")
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        ip link add eth0 netns "$ns" type veth peer name p$i netns "${p}sw"
        ip -n "${p}sw" link set p$i master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
        [ -z "$v6" ] || ip -n "$ns" addr add "$v6::$((i + 1))/64" dev eth0 nodad
        ip -n "$ns" link set eth0 up
        # Programs that pick no interface for multicast (node's dgram) need a route.
        ip -n "$ns" route add 224.0.0.0/4 dev eth0
    done
}
