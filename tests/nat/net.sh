# The NAT test network, built with ip netns and nftables only. Sourced after
# tests/cli/lib/common.sh (it needs TMP, PIDS and fail); defines cleanup_more
# (deletes every namespace it made) unless the script has its own that calls
# nat_cleanup.
#
#   "internet": a bridge in namespace ${P}inet, 10.200.0.0/24 (private
#   addresses that play public ones inside the test). nat_inet_host puts a
#   host on it (a relay, a STUN server, a public peer).
#
#   nat_router NAME WAN_IP LAN_NET KIND: a router with wan0 on the internet
#   at 10.200.0.WAN_IP and a LAN bridge lan0 at LAN_NET.1/24 (192.168.x):
#     cone       endpoint-independent mapping: masquerade keeps the source
#                port when it is free (it is: one host per port), so one
#                inside address:port has one outside port whatever the
#                destination. Filtering is address-and-port dependent (what
#                conntrack knows: replies to what went out), which is what a
#                home router does and what TCP hole punching gets through:
#                both SYNs go out, each router sees the other's as a reply.
#     symmetric  masquerade fully-random: every new connection gets a new
#                random outside port, so the address a peer observes is
#                useless to anyone else; hole punching must fail.
#     upnp       cone NAT whose forwards are managed by miniupnpd (UPnP IGD
#                and NAT-PMP/PCP on lan0): nat_upnpd starts it.
#   Every router drops unsolicited packets to its own WAN address (no RST
#   that would break a simultaneous open) and forwards nothing inbound
#   that is neither a reply nor a mapping.
#
#   nat_lan_host NAME ROUTER: a host on that router's LAN (.2, .3, ...)
#   with the router as default gateway.
#
# Namespace names start with $P, so that two runs never collide: set P
# before sourcing (e.g. P=cnat$$). Namespace NAME is ${P}NAME.
NAT_NSS=()
NAT_INET_NEXT=0
declare -A NAT_LAN NAT_LAN_NEXT NAT_WAN
nat_cleanup() {
    local ns
    for ns in "${NAT_NSS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
declare -F cleanup_more >/dev/null || cleanup_more() { nat_cleanup; }

# nat_ns NAME: make namespace ${P}NAME with lo up.
nat_ns() {
    local ns=$P$1
    ip netns add "$ns" || fail "ip netns add $ns"
    NAT_NSS+=("$ns")
    ip -n "$ns" link set lo up
}

# nat_net_init: the internet bridge. Exits 0 with SKIP when namespaces cannot
# be made (not root) or nft is missing.
nat_net_init() {
    if ! ip netns add "${P}inet" 2>/dev/null; then
        echo "SKIP: needs root and ip netns"
        exit 0
    fi
    NAT_NSS+=("${P}inet")
    command -v nft >/dev/null || { echo "SKIP: nft (nftables) is not installed"; exit 0; }
    ip -n "${P}inet" link set lo up
    ip -n "${P}inet" link add br0 type bridge
    ip -n "${P}inet" link set br0 up
}

# nat_inet_plug NS IFNAME IP: a veth from NS (as IFNAME) to the bridge.
nat_inet_plug() {
    local ns=$1 ifn=$2 ip=$3 port=i$((NAT_INET_NEXT++))
    ip link add "$ifn" netns "$ns" type veth peer name "$port" netns "${P}inet"
    ip -n "${P}inet" link set "$port" master br0 up
    ip -n "$ns" addr add "10.200.0.$ip/24" dev "$ifn"
    ip -n "$ns" link set "$ifn" up
}

# nat_inet_host NAME IP: a host on the internet at 10.200.0.IP.
nat_inet_host() {
    nat_ns "$1"
    nat_inet_plug "$P$1" eth0 "$2"
}

# nat_router NAME WAN_IP LAN_NET KIND (cone|symmetric|upnp)
nat_router() {
    local name=$1 wan=$2 lan=$3 kind=$4 ns=$P$1 masq
    nat_ns "$name"
    nat_inet_plug "$ns" wan0 "$wan"
    ip -n "$ns" link add lan0 type bridge
    ip -n "$ns" addr add "$lan.1/24" dev lan0
    ip -n "$ns" link set lan0 up
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
    NAT_LAN[$name]=$lan
    NAT_LAN_NEXT[$name]=2
    NAT_WAN[$name]=10.200.0.$wan
    case $kind in
    cone | upnp) masq=masquerade ;;
    symmetric) masq="masquerade fully-random" ;;
    *) fail "nat_router: kind $kind (cone, symmetric or upnp)" ;;
    esac
    # miniupnpd (2.3, nftables backend) adds its rules to table inet filter:
    # forwards to chain miniupnpd, DNATs to prerouting_miniupnpd, and
    # expects those chains to exist and be jumped to (its nft_init.sh).
    ip netns exec "$ns" nft -f - <<EOF || fail "nft rules for router $name"
table inet filter {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" drop
    }
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        jump miniupnpd
    }
    chain miniupnpd {
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname "wan0" $masq
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
}
EOF
}

# nat_lan_host NAME ROUTER: a host behind ROUTER; prints nothing, sets the
# host's address in NAT_ADDR[NAME].
declare -A NAT_ADDR
nat_lan_host() {
    local name=$1 router=$2 ns=$P$1 lan=${NAT_LAN[$2]} i=${NAT_LAN_NEXT[$2]}
    NAT_LAN_NEXT[$router]=$((i + 1))
    nat_ns "$name"
    ip link add eth0 netns "$ns" type veth peer name "h$i" netns "$P$router"
    ip -n "$P$router" link set "h$i" master lan0 up
    ip -n "$ns" addr add "$lan.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$lan.1"
    NAT_ADDR[$name]=$lan.$i
}

# nat_stund NAME: a STUN server (RFC 5389 binding) on host NAME, UDP 3478,
# for miniupnpd's ext_perform_stun (see nat_upnpd).
nat_stund() {
    ip netns exec "$P$1" python3 "$NAT_DIR/tools.py" stund >"$TMP/stund.out" 2>&1 &
    PIDS+=($!)
    wait_line "$TMP/stund.out" '^stun ready' 5 >/dev/null
}

# nat_upnpd ROUTER STUN_IP UPNP(yes|no) NATPMP(yes|no): miniupnpd on the
# router's LAN, with its config, lease file and log in $TMP/upnpd-ROUTER.*.
# miniupnpd refuses to forward when its WAN address is private unless STUN
# says the outside sees it unfiltered: STUN_IP runs nat_stund, and the
# external address it learns that way is the router's own wan0 address.
nat_upnpd() {
    local r=$1 stun=$2 upnp=$3 pmp=$4 conf=$TMP/upnpd-$1.conf
    command -v miniupnpd >/dev/null || PATH=$PATH:/usr/sbin
    command -v miniupnpd >/dev/null || { echo "SKIP: miniupnpd is not installed"; exit 0; }
    cat >"$conf" <<EOF
ext_ifname=wan0
listening_ip=lan0
http_port=0
enable_upnp=$upnp
enable_natpmp=$pmp
secure_mode=yes
system_uptime=yes
notify_interval=30
lease_file=$TMP/upnpd-$r.leases
ext_perform_stun=yes
ext_stun_host=$stun
ext_stun_port=3478
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d0$(printf %02x $((RANDOM % 256)))
allow 1024-65535 ${NAT_LAN[$r]}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
    : >"$TMP/upnpd-$r.leases"
    ip netns exec "$P$r" miniupnpd -d -f "$conf" -P "$TMP/upnpd-$r.pid" \
        >"$TMP/upnpd-$r.log" 2>&1 &
    PIDS+=($!)
    # Ready once STUN is done and the listeners are open.
    wait_line "$TMP/upnpd-$r.log" 'Port forwarding is now enabled|STUN: \.\.\. done' 15 >/dev/null
    if grep -q 'Port forwarding is now disabled\|Performing STUN failed' "$TMP/upnpd-$r.log"; then
        cat "$TMP/upnpd-$r.log" >&2
        fail "miniupnpd on $r refuses to forward"
    fi
    wait_line "$TMP/upnpd-$r.log" 'Listening for NAT-PMP|HTTP listening on port' 5 >/dev/null
}

# nat_probe HOST SERVER_IP... : from HOST, open a TCP connection from one
# fixed local port to each server's "whoami" (nat_whoami) and print the
# ip:port each one saw, one per line.
nat_probe() {
    local h=$1; shift
    ip netns exec "$P$h" python3 "$NAT_DIR/tools.py" probe "$@"
}
# nat_whoami NAME: a TCP server on NAME port 7000 that answers with the
# address it sees the client at.
nat_whoami() {
    ip netns exec "$P$1" python3 "$NAT_DIR/tools.py" whoami >"$TMP/whoami-$1.out" 2>&1 &
    PIDS+=($!)
    wait_line "$TMP/whoami-$1.out" '^whoami ready' 5 >/dev/null
}
NAT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
