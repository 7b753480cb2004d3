#!/usr/bin/env bash
# Identify addresses are not trusted blindly (issue #14): a js-libp2p peer
# announces, beside its real address, 127.0.0.1:6379, the cloud metadata
# service 169.254.169.254:80, 10.9.9.9:22 and 0.0.0.0:4001 (in identify and
# in its signed peer record). cp2pd keeps only what fits the connection the
# claim came over: from a peer on loopback all but the unusable (link-local,
# unspecified); from a peer on a public address (network namespaces on
# 11.77.0.0/24) only public addresses; from one on a private address
# (10.78.0.0/24) all but loopback; and -keepPrivateAddrs keeps them all but
# the unusable.
source "$(dirname "$0")/../interop/lib.sh" "$1"
P=cp2pa$$
source "$(dirname "$0")/lib/netns.sh"
D=$BUILD/cp2pd
HERE=$(cd "$(dirname "$0")" && pwd)
BOGUS=/ip4/127.0.0.1/tcp/6379,/ip4/169.254.169.254/tcp/80,/ip4/10.9.9.9/tcp/22,/ip4/0.0.0.0/tcp/4001

# in_ns NS CMD...: CMD in namespace NS ("" = here).
in_ns() { local ns=$1; shift; if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi; }

# kept NS CTL ADDR: CONNECT to ADDR (/ip4/A/tcp/P/p2p/ID), let identify run,
# print the daemon's peerstore addresses of that peer, one a line.
kept() {
    in_ns "$1" env PYTHONPATH="$HERE:$HERE/lib" python3 - "$2" "$3" <<'PY'
import socket, sys, time
from p2pd_client import connect, peer_addrs
from hostile import unbase58
ctl, addr = sys.argv[1], sys.argv[2]
parts = addr.split('/')
peer = unbase58(parts[6])
real = b'\x04' + socket.inet_aton(parts[2]) + b'\x06' + int(parts[4]).to_bytes(2, 'big')
r = connect(ctl, peer, [real])
assert r[1] == [0], r
time.sleep(1)  # identify follows the connection
for a in peer_addrs(ctl, peer):
    if a[0] == 4 and a[5] == 6:
        print(f'/ip4/{socket.inet_ntoa(a[1:5])}/tcp/{int.from_bytes(a[6:8], "big")}')
    else:
        print('other', a.hex())
PY
}

# js_peer NS NAME IP: a js peer on IP:4001 (loopback: a free port) announcing
# its real address and BOGUS; sets JS_REAL.
js_peer() {
    local ns=$1 name=$2 ip=$3 port=4001
    [ -n "$ns" ] || port=$(free_port)
    (cd "$INTEROP" && exec ${ns:+ip netns exec "$ns"} node --import ./polyfill.mjs peer.mjs \
        --listen "/ip4/$ip/tcp/$port" --announce "/ip4/$ip/tcp/$port,$BOGUS") \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    local first
    first=$(wait_line "$TMP/$name.out" '^listening ' | cut -d' ' -f2)
    JS_REAL=/ip4/$ip/tcp/$port/p2p/${first##*/p2p/}
}

# daemon NS NAME ARGS...: cp2pd with a unix control socket; sets CTL.
daemon() {
    local ns=$1 name=$2; shift 2
    CTL=$TMP/$name.sock
    ${ns:+ip netns exec "$ns"} env CP2P_LOG=${CP2P_LOG:-warn} "$D" -listen "/unix$CTL" -hostAddrs /ip4/0.0.0.0/tcp/0 "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    wait_line "$TMP/$name.out" '^Peer Addrs:' 5 >/dev/null || fail "cp2pd $name did not start"
}

check() { # FILE REGEX WHAT
    grep -q -- "$2" "$TMP/$1" || { cat "$TMP/$1"; fail "$3"; }
}
check_not() { # FILE REGEX WHAT
    ! grep -q -- "$2" "$TMP/$1" || { cat "$TMP/$1"; fail "$3"; }
}

echo "== a peer on loopback"
js_peer "" jslo 127.0.0.1
daemon "" dlo
SHOW_ON_FAIL=(dlo.err jslo.err)
kept "" "$CTL" "$JS_REAL" >"$TMP/lo.addrs" || fail "connect over loopback failed"
check lo.addrs "^${JS_REAL%/p2p/*}\$" "the real address is gone"
check lo.addrs '^/ip4/127\.0\.0\.1/tcp/6379$' "a loopback claim from a loopback peer was dropped"
check lo.addrs '^/ip4/10\.9\.9\.9/tcp/22$' "a private claim from a loopback peer was dropped"
check_not lo.addrs '169\.254\.' "a link-local claim was kept"
check_not lo.addrs '0\.0\.0\.0' "an unspecified claim was kept"
[ "$(head -1 "$TMP/lo.addrs")" = "${JS_REAL%/p2p/*}" ] || fail "the confirmed address is not first"

echo "== a peer on a public address"
netns_link "$P" 11.77.0 2
js_peer ${P}h0 jspub 11.77.0.1
daemon ${P}h1 dpub
SHOW_ON_FAIL=(dpub.err jspub.err)
JS_PUB=$JS_REAL
kept ${P}h1 "$CTL" "$JS_PUB" >"$TMP/pub.addrs" || fail "connect over the public link failed"
check pub.addrs '^/ip4/11\.77\.0\.1/tcp/4001$' "the real address is gone"
check_not pub.addrs '127\.0\.0\.1' "a loopback claim from a public peer was kept"
check_not pub.addrs '10\.9\.9\.9' "a private claim from a public peer was kept"
check_not pub.addrs '169\.254\.' "a link-local claim was kept"
check_not pub.addrs '0\.0\.0\.0' "an unspecified claim was kept"

echo "== a peer on a private address"
netns_link ${P}p 10.78.0 2
js_peer ${P}ph0 jspriv 10.78.0.1
daemon ${P}ph1 dpriv
SHOW_ON_FAIL=(dpriv.err jspriv.err)
kept ${P}ph1 "$CTL" "$JS_REAL" >"$TMP/priv.addrs" || fail "connect over the private link failed"
check priv.addrs '^/ip4/10\.78\.0\.1/tcp/4001$' "the real address is gone"
check priv.addrs '^/ip4/10\.9\.9\.9/tcp/22$' "a private claim from a private peer was dropped"
check_not priv.addrs '127\.0\.0\.1' "a loopback claim from a private peer was kept"
check_not priv.addrs '169\.254\.' "a link-local claim was kept"

echo "== -keepPrivateAddrs: a private deployment that routes them"
daemon ${P}h1 dkeep -keepPrivateAddrs
SHOW_ON_FAIL=(dkeep.err jspub.err)
kept ${P}h1 "$CTL" "$JS_PUB" >"$TMP/keep.addrs" || fail "connect with -keepPrivateAddrs failed"
check keep.addrs '^/ip4/10\.9\.9\.9/tcp/22$' "-keepPrivateAddrs dropped a private claim"
check_not keep.addrs '169\.254\.' "-keepPrivateAddrs kept a link-local claim"
echo "kept from loopback: $(tr "\n" " " <"$TMP/lo.addrs")"
echo "kept from public: $(tr "\n" " " <"$TMP/pub.addrs")"
echo "kept from private: $(tr "\n" " " <"$TMP/priv.addrs")"
echo "kept with -keepPrivateAddrs: $(tr "\n" " " <"$TMP/keep.addrs")"
echo "ok: claimed addresses filtered by the connection they came over"
