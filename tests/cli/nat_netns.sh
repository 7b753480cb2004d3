#!/usr/bin/env bash
# ctest: run-serial
# The NAT test network (tests/nat/net.sh: an "internet" bridge with a relay,
# cone routers A and A2, symmetric router B, router C with miniupnpd) and
# what crosses it. First the network itself: the mappings each router makes
# (cone keeps the port for every destination, symmetric does not). Then a
# table of cases, each run and asserted with real go-libp2p peers (the peer
# in tests/interop/go, mode "nat"): (a) a host behind NAT is reached through
# the relay; (b) two hosts behind two cone NATs end up on a direct connection
# after DCUtR whose remote address is the peer's router; (c) behind the
# symmetric NAT the punch fails and the connection stays relayed; (d) a host
# behind router C maps its port (UPnP/NAT-PMP by miniupnpd) and is dialled
# on it, and AutoNAT says public there; (e) AutoNAT v1 says private behind
# the other NATs. cp2p: (a) with a cp2p relay and the go relay, cp2p and go
# listeners, cp2p and go dialers (from the internet and from behind the
# symmetric NAT); (d) port mapping with UPnP and NAT-PMP (and NAT-PMP alone,
# and cp2pd -natPortMap) on miniupnpd, and a gateway that answers nothing;
# (f) two hosts behind NAT meet at a rendezvous point and ping.
# cp2p's DCUtR: behind cone NATs (cp2p and go, each dialling) the punch
# ends on a direct connection to the peer's router; behind the symmetric
# NAT it fails and the connection stays relayed. cp2p's AutoNAT cases go
# into the same table next.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
[ -x "$CP2P" ] || fail "$CP2P not built"
P=cnat$$ # namespace prefix, unique per run

echo "== misuse"
for bad in "--nat-method pcp --nat-port-map" "--nat-method upnp" "--nat-lease 60" "--nat-port-map --nat-lease 1"; do
    rc=0; "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 $bad 2>"$TMP/u.err" || rc=$?
    [ $rc = 2 ] && [ "$(wc -l <"$TMP/u.err")" = 1 ] || fail "cp2p ping $bad: rc $rc: $(cat "$TMP/u.err")"
done
source "$(dirname "$0")/../nat/net.sh"
GO_PEER=$("$(dirname "$0")/../interop/go/build.sh") || fail "the go peer does not build"

echo "== the network: internet 10.200.0.0/24, routers A, A2 (cone), B (symmetric), C (miniupnpd)"
nat_net_init
nat_inet_host relay 2
nat_inet_host pub 3
nat_router ra 11 192.168.1 cone
nat_router ra2 12 192.168.2 cone
nat_router rb 13 192.168.3 symmetric
nat_router rc 14 192.168.4 upnp
nat_router rd 15 192.168.5 upnp # miniupnpd with NAT-PMP only
nat_router re 16 192.168.6 cone # a NAT-PMP "gateway" that answers nothing, and no UPnP
nat_lan_host ha ra
nat_lan_host ha2 ra2
nat_lan_host hb rb
nat_lan_host hc rc
nat_lan_host hd rd
nat_lan_host he re
nat_stund relay
nat_upnpd rc 10.200.0.2 yes yes
nat_upnpd rd 10.200.0.2 no yes
ip netns exec ${P}re python3 "$NAT_DIR/tools.py" natpmp-silent >"$TMP/silent.out" 2>&1 &
PIDS+=($!)
wait_line "$TMP/silent.out" '^silent ready' 5 >/dev/null

echo "== the routers map as they say"
nat_whoami relay
nat_whoami pub
# cone: one inside port, one outside port (the same) for every destination
nat_probe ha 10.200.0.2 10.200.0.3 >"$TMP/probe-a.out" || fail "ha cannot reach the internet"
local_a=$(sed -n '1s/^local=\([0-9]*\) .*/\1/p' "$TMP/probe-a.out")
for ip in 10.200.0.2 10.200.0.3; do
    grep -q "^local=$local_a seen-by $ip 10\.200\.0\.11:$local_a$" "$TMP/probe-a.out" ||
        { cat "$TMP/probe-a.out"; fail "cone router A did not keep the port toward $ip"; }
done
# symmetric: a new outside port per destination
nat_probe hb 10.200.0.2 10.200.0.3 >"$TMP/probe-b.out" || fail "hb cannot reach the internet"
ports_b=$(sed -n 's/.* seen-by [0-9.]* 10\.200\.0\.13:\([0-9]*\)$/\1/p' "$TMP/probe-b.out" | sort -u | wc -l)
[ "$ports_b" = 2 ] || { cat "$TMP/probe-b.out"; fail "symmetric router B used one port for two destinations"; }
# nothing gets in unasked: from the internet, neither a LAN host's port through
# its router's address nor the port of the cone mapping just made (someone
# else's) answers; the router drops, it does not even refuse
nat_whoami ha
for port in 7000 "$local_a"; do
    r=$(ip netns exec ${P}pub python3 -c '
import socket, sys
try:
    socket.create_connection(("10.200.0.11", int(sys.argv[1])), 2); print("connected")
except socket.timeout: print("dropped")
except OSError as e: print("refused", e)' "$port")
    [ "$r" = dropped ] || fail "an unsolicited connection to router A port $port: $r"
done
echo "   A keeps port $local_a toward both servers; B used $ports_b outside ports"

# --- peers ------------------------------------------------------------------
# go_listen NAME HOST ARGS...: a go peer behind NAT; sets ADDR_<NAME> to its
# circuit address when ARGS has --relay.
go_listen() {
    local name=$1 host=$2; shift 2
    ip netns exec $P$host "$GO_PEER" nat listen "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    case " $* " in *" --relay "*)
        local a
        a=$(wait_line "$TMP/$name.out" '^(reserved|error) ' 20)
        [[ $a == reserved* ]] || fail "$name: $a"
        printf -v "ADDR_$name" %s "$(cut -d' ' -f2 <<<"$a")" ;;
    esac
}
# go_dial NAME HOST TARGET ARGS...: a go peer that dials TARGET through the
# relay and reports "direct MA" or "relayed MA", then pings on what it has.
go_dial() {
    local name=$1 host=$2 target=$3; shift 3
    ip netns exec $P$host timeout 60 "$GO_PEER" nat dial --relay "$RELAY" --target "$target" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || { show $name.out; fail "$name: the go dialer failed"; }
}

echo "== a go relay (circuit relay v2 + AutoNAT v1 server) on the internet"
ip netns exec ${P}relay "$GO_PEER" nat relay --listen /ip4/0.0.0.0/tcp/4001 >"$TMP/relay.out" 2>&1 &
PIDS+=($!)
RELAY_ID=$(wait_line "$TMP/relay.out" '^peer-id ' 15 | cut -d' ' -f2)
RELAY=/ip4/10.200.0.2/tcp/4001/p2p/$RELAY_ID

echo "== a cp2p relay on the internet"
ip netns exec ${P}relay "$CP2P" relay --listen /ip4/0.0.0.0/tcp/4002 >"$TMP/cp2p_relay.out" 2>"$TMP/cp2p_relay.err" &
PIDS+=($!)
CP2P_RELAY=$(wait_line "$TMP/cp2p_relay.out" '^Listening on /ip4/10\.200\.0\.2/tcp/4002/' 10 | cut -d' ' -f3)

# cp2p_listen NAME HOST RELAY ARGS...: cp2p ping behind NAT holding a slot on
# RELAY; sets ADDR_<NAME> to its circuit address.
cp2p_listen() {
    local name=$1 host=$2 relay=$3; shift 3
    ip netns exec $P$host "$CP2P" ping --listen /ip4/0.0.0.0/tcp/0 --relay "$relay" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    local a
    a=$(wait_line "$TMP/$name.out" "^Listening on ${relay//./\\.}/p2p-circuit/p2p/" 20 | cut -d' ' -f3)
    printf -v "ADDR_$name" %s "$a"
}

# The listeners behind the NATs, all at once (AutoNAT takes its time).
go_listen go_a ha --listen /ip4/0.0.0.0/tcp/4001 --relay "$RELAY" --hole-punching
go_listen go_b hb --listen /ip4/0.0.0.0/tcp/4001 --relay "$RELAY" --hole-punching
go_listen go_a2 ha2 --listen /ip4/0.0.0.0/tcp/4002 --relay "$RELAY"
go_listen go_c hc --listen /ip4/0.0.0.0/tcp/4001 --port-map --relay "$RELAY"
go_listen go_a2c ha2 --listen /ip4/0.0.0.0/tcp/4003 --relay "$CP2P_RELAY" # go on the cp2p relay
cp2p_listen cp2p_a2 ha2 "$CP2P_RELAY"
cp2p_listen cp2p_a2g ha2 "$RELAY"                                         # cp2p on the go relay
cp2p_listen cp2p_a ha "$CP2P_RELAY" --punch-private # DCUtR: 10.200.0.0/24 is private to cp2p
cp2p_listen cp2p_b hb "$CP2P_RELAY" --punch-private

# --- the cases ----------------------------------------------------------------
# Each: case_<name> run by the table below; it fails the test with a message.
case_relayed() { # (a) LISTENER DIALER_HOST: reached through the relay, pings on the circuit
    local l=$1 host=$2 out=$TMP/dial-$1-$2.out
    go_dial dial-$l-$host $host "$(eval echo \$ADDR_$l)" --wait-direct 0 --ping 3
    grep -q "^relayed $RELAY/p2p-circuit" "$out" || { cat "$out"; fail "$l from $host: not relayed"; }
    [ "$(grep -c "^ping rtt=.* via=$RELAY/p2p-circuit" "$out")" = 3 ] || { cat "$out"; fail "$l from $host: pings not on the circuit"; }
}
case_punched() { # (b) LISTENER DIALER_HOST ROUTER_IP: direct to the listener's router after DCUtR
    local l=$1 host=$2 wan=$3 out=$TMP/dial-$1-$2.out
    go_dial dial-$l-$host $host "$(eval echo \$ADDR_$l)" --hole-punching --wait-direct 20 --ping 3
    grep -q "^direct /ip4/$wan/tcp/" "$out" || { cat "$out"; fail "$l from $host: no direct connection to $wan"; }
    [ "$(grep -c "^ping rtt=.* via=/ip4/$wan/tcp/" "$out")" = 3 ] || { cat "$out"; fail "$l from $host: pings not on the direct connection"; }
}
case_unpunched() { # (c) LISTENER DIALER_HOST: the punch fails, the connection stays relayed
    local l=$1 host=$2 out=$TMP/dial-$1-$2.out
    go_dial dial-$l-$host $host "$(eval echo \$ADDR_$l)" --hole-punching --wait-direct 15 --ping 3
    grep -q "^relayed $RELAY/p2p-circuit" "$out" || { cat "$out"; fail "$l from $host: not relayed (punched through symmetric NAT?)"; }
    [ "$(grep -c "^ping rtt=.* via=$RELAY/p2p-circuit" "$out")" = 3 ] || { cat "$out"; fail "$l from $host: pings not on the circuit"; }
}
# dnat_rule ROUTER EXT_PORT DEST [gone]: miniupnpd's DNAT of EXT_PORT to DEST
# (ip:port) is in its chain (or, with "gone", no DNAT of EXT_PORT is). A
# renewal replaces the rule, and a listing that meets it changing may fail
# or miss it: looked at again for up to 2 s.
dnat_rule() {
    local r=$1 ep=$2 dest=$3 gone=${4:-} i out
    for ((i = 0; i < 20; i++)); do
        if out=$(ip netns exec $P$r nft list chain inet filter prerouting_miniupnpd 2>&1); then
            if [ -z "$gone" ]; then
                grep -q "dport $ep .*dnat.*$dest" <<<"$out" && return 0
            else
                grep -q "dport $ep " <<<"$out" || return 0
            fi
        fi
        sleep 0.1
    done
    printf '%s\n' "$out" >&2
    return 1
}
# lease ROUTER REGEX [gone]: a line of miniupnpd's lease file matches (or,
# with "gone", none does); the file is written anew at each change: 2 s.
lease() {
    local i
    for ((i = 0; i < 20; i++)); do
        if [ -z "${3:-}" ]; then grep -q "$2" "$TMP/upnpd-$1.leases" && return 0
        else grep -q "$2" "$TMP/upnpd-$1.leases" || return 0; fi
        sleep 0.1
    done
    cat "$TMP/upnpd-$1.leases" >&2
    return 1
}
case_mapped() { # (d) LISTENER ROUTER_IP: the mapped address is the router's, and the internet dials it
    local l=$1 wan=$2 a id
    a=$(wait_line "$TMP/$l.out" "^address /ip4/$wan/tcp/[0-9]+$" 20 | cut -d' ' -f2)
    id=$(sed -n 's/^peer-id //p' "$TMP/$l.out")
    ip netns exec ${P}pub timeout 30 "$GO_PEER" --dial "$a/p2p/$id" --ping 2 >"$TMP/dial-$l.out" 2>&1 ||
        { cat "$TMP/dial-$l.out"; fail "$l: the internet cannot dial the mapped address $a"; }
    lease rc "^TCP:${a##*/}:${NAT_ADDR[hc]}:4001:" || fail "$l: no lease of port ${a##*/} in miniupnpd"
    dnat_rule rc "${a##*/}" "${NAT_ADDR[hc]}:4001" || fail "$l: no DNAT of port ${a##*/} in miniupnpd's chain"
}
# cp2p_mapped NAME HOST ROUTER METHOD PORT: cp2p ping behind ROUTER maps PORT
# (METHOD: natpmp, upnp, any, or cp2pd for cp2pd -natPortMap); the lease and the DNAT rule are there, the
# internet dials the address printed and pings through it, and on SIGINT the
# mapping goes from the gateway.
case_cp2p_mapped() {
    local name=$1 host=$2 r=$3 method=$4 port=$5 a ep id args=()
    if [ "$method" = cp2pd ]; then # cp2pd -natPortMap, NAT-PMP then UPnP
        ip netns exec $P$host "$BUILD/cp2pd" -listen /ip4/127.0.0.1/tcp/0 -hostAddrs /ip4/0.0.0.0/tcp/$port \
            -natPortMap >"$TMP/$name.out" 2>"$TMP/$name.err" &
    else
        [ "$method" = any ] || args=(--nat-method "$method")
        args+=(--nat-lease 4) # renewed every 2 s: seen below
        ip netns exec $P$host "$CP2P" ping --listen /ip4/0.0.0.0/tcp/$port --nat-port-map "${args[@]}" \
            >"$TMP/$name.out" 2>"$TMP/$name.err" &
    fi
    local pid=$!
    PIDS+=($pid)
    SHOW_ON_FAIL+=($name.out $name.err upnpd-$r.log)
    id=$(wait_line "$TMP/$name.out" '^(Local peer id|Peer ID): ' 10 | sed 's/.*: //')
    a=$(wait_line "$TMP/$name.out" '^port mapping: ' 15 | cut -d' ' -f3)
    [[ $a =~ ^/ip4/${NAT_WAN[$r]//./\\.}/tcp/[0-9]+$ ]] || fail "$name: mapped $a, not on router $r's ${NAT_WAN[$r]}"
    ep=${a##*/}
    lease $r "^TCP:$ep:${NAT_ADDR[$host]}:$port:" || fail "$name: no lease of $ep -> ${NAT_ADDR[$host]}:$port in miniupnpd"
    dnat_rule $r $ep "${NAT_ADDR[$host]}:$port" || fail "$name: no DNAT of port $ep in miniupnpd's chain"
    ip netns exec ${P}pub timeout 30 "$CP2P" ping --dial "$a/p2p/$id" --count 2 --interval 0.2 \
        >"$TMP/$name-dial.out" 2>&1 || { cat "$TMP/$name-dial.out"; fail "$name: the internet cannot ping $a"; }
    [ "$(grep -c "^ping $id rtt=" "$TMP/$name-dial.out")" = 2 ] || fail "$name: no pings through $a"
    if [ "$method" != cp2pd ]; then # renewed at half the 4 s lease, the same external port
        local renewals=0 i
        for ((i = 0; i < 60 && renewals < 2; i++)); do
            renewals=$(grep -cE "(AddPortMapping: ext port $ep to ${NAT_ADDR[$host]}:$port protocol TCP .*leaseduration=4 |NAT-PMP port mapping request : $ep->${NAT_ADDR[$host]}:$port tcp lifetime=4s)" \
                "$TMP/upnpd-$r.log" || true)
            sleep 0.1
        done
        [ "$renewals" -ge 2 ] || fail "$name: the mapping of $ep was not renewed ($renewals requests for it)"
    fi
    kill -INT $pid
    wait $pid || fail "$name: cp2p ping did not exit cleanly"
    lease $r "^TCP:$ep:" gone || fail "$name: the lease of $ep is still there after exit"
    dnat_rule $r $ep "" gone || fail "$name: the DNAT of $ep is still there after exit"
}
case_cp2p_no_gateway() { # HOST: nobody answers: one clear line, and the host goes on
    local host=$1 pub_id pid
    ip netns exec ${P}pub "$CP2P" ping --listen /ip4/0.0.0.0/tcp/4500 >"$TMP/pub.out" 2>&1 &
    PIDS+=($!)
    pub_id=$(wait_line "$TMP/pub.out" '^Local peer id: ' 10 | cut -d' ' -f4)
    ip netns exec $P$host timeout 30 "$CP2P" ping --listen /ip4/0.0.0.0/tcp/4001 --nat-port-map \
        --dial /ip4/10.200.0.3/tcp/4500/p2p/$pub_id --count 8 --interval 0.75 \
        >"$TMP/nogw.out" 2>"$TMP/nogw.err" || { show nogw.out nogw.err; fail "cp2p ping failed without a gateway"; }
    [ "$(grep -c 'no gateway for port mapping' "$TMP/nogw.err")" = 1 ] ||
        { cat "$TMP/nogw.err"; fail "not one 'no gateway' line"; }
    [ "$(grep -c "^ping $pub_id rtt=" "$TMP/nogw.out")" = 8 ] || fail "the host did not go on pinging"
    if grep -q '^port mapping' "$TMP/nogw.out"; then fail "a mapping without a gateway"; fi
    [ "$(grep -c '^natpmp request' "$TMP/silent.out")" -ge 3 ] || fail "NAT-PMP was not retried (RFC 6886 3.1)"
}
# cp2p_relayed LISTENER DIALER_HOST RELAY: cp2p dials the listener's circuit
# address: the connection is relayed, through RELAY, and pings go over it.
case_cp2p_relayed() {
    local l=$1 host=$2 relay=$3 target out=$TMP/cdial-$1-$2.out
    target=$(eval echo \$ADDR_$l)
    ip netns exec $P$host timeout 30 "$CP2P" ping "$target" --count 3 --interval 0.2 >"$out" 2>&1 ||
        { cat "$out"; fail "$l from $host: cp2p could not ping through the relay"; }
    grep -q "^relayed connection ${relay//./\\.}/p2p-circuit" "$out" || { cat "$out"; fail "$l from $host: not relayed"; }
    [ "$(grep -c "^ping ${target##*/} rtt=" "$out")" = 3 ] || { cat "$out"; fail "$l from $host: no pings"; }
}
# cp2p_punch LISTENER DIALER_HOST WAN|none: cp2p dials the listener's circuit
# address with DCUtR on: a direct connection to the listener's router WAN
# (or, with none, the punch fails and the connection stays relayed), and
# the pings go on either way.
case_cp2p_punch() {
    local l=$1 host=$2 wan=$3 target out=$TMP/pdial-$1-$2.out count=10
    # A failing punch reports once its dials time out (10 s, as go's), after
    # the unilateral direct dial has timed out too.
    [ "$wan" = none ] && count=60
    target=$(eval echo \$ADDR_$l)
    ip netns exec $P$host timeout 90 "$CP2P" ping "$target" --listen /ip4/0.0.0.0/tcp/0 --punch-private --count $count --interval 0.5 \
        >"$out" 2>&1 || { cat "$out"; fail "$l from $host: cp2p ping failed"; }
    if [ "$wan" = none ]; then
        grep -q "^hole punch with .* failed after [0-9]* attempts*, staying relayed" "$out" ||
            { cat "$out"; fail "$l from $host: the punch did not fail (through symmetric NAT?)"; }
        if grep -q "^direct connection" "$out"; then cat "$out"; fail "$l from $host: direct through symmetric NAT"; fi
    else
        grep -q "^direct connection /ip4/${wan//./\\.}/tcp/[0-9]*/p2p/" "$out" ||
            { cat "$out"; fail "$l from $host: no direct connection to $wan"; }
    fi
    [ "$(grep -c "^ping ${target##*/} rtt=" "$out")" = $count ] || { cat "$out"; fail "$l from $host: the pings stopped"; }
}
# (f) HOST1 HOST2: two cp2p hosts behind NAT register their circuit
# addresses at a rendezvous point (cp2p relay --rendezvous, on the
# internet), find each other there and ping through the relay.
case_cp2p_rendezvous() {
    local h1=$1 h2=$2 point id1 id2
    ip netns exec ${P}relay "$CP2P" relay --listen /ip4/0.0.0.0/tcp/4005 --rendezvous \
        >"$TMP/rdv.out" 2>"$TMP/rdv.err" &
    PIDS+=($!)
    point=$(wait_line "$TMP/rdv.out" '^Listening on /ip4/10\.200\.0\.2/tcp/4005/' 10 | cut -d' ' -f3)
    SHOW_ON_FAIL+=(rdv.out rdv.err rdv1.out rdv1.err rdv2.out rdv2.err)
    ip netns exec $P$h1 "$CP2P" ping --relay "$point" --rendezvous "$point" --namespace nat \
        >"$TMP/rdv1.out" 2>"$TMP/rdv1.err" &
    PIDS+=($!)
    id1=$(wait_line "$TMP/rdv1.out" '^Local peer id: ' 10 | cut -d' ' -f4)
    wait_line "$TMP/rdv1.out" '^registered nat ttl=7200$' 15 >/dev/null
    ip netns exec $P$h2 "$CP2P" ping --relay "$point" --rendezvous "$point" --namespace nat \
        >"$TMP/rdv2.out" 2>"$TMP/rdv2.err" &
    PIDS+=($!)
    id2=$(wait_line "$TMP/rdv2.out" '^Local peer id: ' 10 | cut -d' ' -f4)
    wait_line "$TMP/rdv2.out" "^discovered $id1 ${point//./\\.}/p2p-circuit$" 15 >/dev/null
    wait_line "$TMP/rdv2.out" "^ping $id1 rtt=" 15 >/dev/null
    wait_line "$TMP/rdv1.out" "^discovered $id2 ${point//./\\.}/p2p-circuit$" 15 >/dev/null
}
case_private() { # (e) LISTENER: AutoNAT v1 says private
    wait_line "$TMP/$1.out" '^reachability private$' 40 >/dev/null
    if grep -q '^reachability public$' "$TMP/$1.out"; then fail "$1: AutoNAT said public behind NAT"; fi
}
case_public() { # (d, e) LISTENER: AutoNAT v1 says public (the relay dialled the mapped port back)
    wait_line "$TMP/$1.out" '^reachability public$' 40 >/dev/null
    if grep -q '^reachability private$' "$TMP/$1.out"; then fail "$1: AutoNAT said private with a port mapped"; fi
}

# IMPL | CASE ARGS | what it shows. "pending" rows (none now) are cases
# written for what does not pass yet; they run only when NAT_CASES names them.
CASES=(
    "go|relayed go_a2 pub|a go host behind cone NAT A2 is reached through the relay from the internet"
    "go|punched go_a ha2 10.200.0.11|go behind A2 dials go behind A: DCUtR gives a direct connection to A's router"
    "go|unpunched go_b ha2|go behind A2 dials go behind symmetric B: the punch fails, the connection stays relayed"
    "go|mapped go_c 10.200.0.14|go behind C maps its port with miniupnpd and is dialled on router C's address"
    "go|private go_a|AutoNAT v1 (go) says private behind cone NAT A"
    "go|private go_b|AutoNAT v1 (go) says private behind symmetric NAT B"
    "go|public go_c|AutoNAT v1 (go) says public behind C once its port is mapped"
    "cp2p|cp2p_relayed cp2p_a2 pub $CP2P_RELAY|cp2p behind A2 is reached through the cp2p relay by cp2p from the internet"
    "cp2p|cp2p_relayed cp2p_a2 hb $CP2P_RELAY|cp2p behind A2 is reached through the cp2p relay by cp2p behind symmetric B"
    "cp2p|relayed cp2p_a2g pub|cp2p behind A2 is reached through the go relay by go from the internet"
    "cp2p|cp2p_relayed go_a2 pub $RELAY|go behind A2 is reached through the go relay by cp2p from the internet"
    "cp2p|cp2p_relayed go_a2c hb $CP2P_RELAY|go behind A2 is reached through the cp2p relay by cp2p behind B"
    "cp2p|cp2p_punch cp2p_a ha2 10.200.0.11|cp2p behind A2 dials cp2p behind A: DCUtR gives a direct connection to A's router"
    "cp2p|cp2p_punch cp2p_b ha2 none|cp2p behind A2 dials cp2p behind symmetric B: the punch fails, the connection stays relayed"
    "cp2p|cp2p_punch go_a ha2 10.200.0.11|cp2p behind A2 dials go behind A (go relay): DCUtR, direct to A's router"
    "cp2p|punched cp2p_a ha2 10.200.0.11|go behind A2 dials cp2p behind A (cp2p relay): DCUtR, direct to A's router"
    "cp2p|cp2p_rendezvous ha hb|cp2p behind cone A and cp2p behind symmetric B meet at a rendezvous point, ping through the relay"
    "cp2p|cp2p_mapped cp2p_upnp hc rc upnp 4101|cp2p behind C maps its port with UPnP IGD, is pinged on it, unmaps on exit"
    "cp2p|cp2p_mapped cp2p_pmp hc rc natpmp 4102|cp2p behind C maps its port with NAT-PMP, is pinged on it, unmaps on exit"
    "cp2p|cp2p_mapped cp2p_pmp_only hd rd any 4103|cp2p behind D (miniupnpd with UPnP off) maps with NAT-PMP"
    "cp2p|cp2p_mapped cp2pd_pmp hd rd cp2pd 4104|cp2pd -natPortMap behind D maps its port and is pinged on it"
    "cp2p|cp2p_no_gateway he|cp2p behind E (a gateway that answers nothing): one 'no gateway' line, it goes on"
)
for c in "${CASES[@]}"; do
    IFS='|' read -r impl args what <<<"$c"
    [ -z "${NAT_CASES:-}" ] || [[ " $NAT_CASES " == *" ${args%% *} "* ]] || continue # NAT_CASES="punched cp2p_mapped": only those
    [[ $impl != *-pending ]] || [ -n "${NAT_CASES:-}" ] || continue
    echo "== [$impl] $what"
    SHOW_ON_FAIL=(relay.out go_a.out go_b.out go_a2.out go_c.out)
    case_$args
done
echo PASS
