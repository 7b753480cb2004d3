#!/usr/bin/env bash
# mDNS discovery across network namespaces joined by one bridge (all made here,
# the bridge in a namespace of its own, so no multicast leaves them): cp2p hosts
# find each other over IPv4 and IPv6, addresses of a stopped or killed host
# expire, hostile packets are counted and survived, and cp2p and js-libp2p
# (@libp2p/mdns) find each other both ways.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
INTEROP=$(cd "$(dirname "$0")/../interop" && pwd)
P=cp2pm$$ # namespace prefix, unique per run
N=4
source "$(dirname "$0")/lib/netns.sh"

[ -x "$CP2P" ] || fail "$CP2P not built"
netns_link "$P" 10.77.0 "$N" fd77

# start_cp2p I NAME ARGS...: cp2p mdns in namespace I; sets PID_<NAME> and ID_<NAME>.
start_cp2p() {
    local i=$1 name=$2; shift 2
    ip netns exec ${P}h$i "$CP2P" mdns --interval 1 --ttl 4 --stats "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    printf -v "PID_$name" %s $!
    local id
    id=$(wait_line "$TMP/$name.out" '^Local peer id: ' | cut -d' ' -f4)
    printf -v "ID_$name" %s "$id"
}


echo "== cp2p hosts discover each other"
start_cp2p 0 a --listen /ip4/0.0.0.0/tcp/0 --listen /ip6/::/tcp/0
start_cp2p 1 b --listen /ip4/0.0.0.0/tcp/0 --listen /ip6/::/tcp/0
start_cp2p 2 c
start_cp2p 3 d --no-ipv4 --listen /ip6/::/tcp/0 --dial # mDNS over IPv6 only
wait_line "$TMP/a.out" "^discovered $ID_b /ip4/10\.77\.0\.2/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/a.out" "^discovered $ID_b /ip6/fd77::2/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/a.out" "^discovered $ID_c /ip4/10\.77\.0\.3/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/a.out" "^discovered $ID_d /ip6/fd77::4/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/b.out" "^discovered $ID_a /ip4/10\.77\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/c.out" "^discovered $ID_a /ip4/10\.77\.0\.1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/c.out" "^discovered $ID_b /ip4/10\.77\.0\.2/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/d.out" "^discovered $ID_a /ip6/fd77::1/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/d.out" "^connected $ID_a$" >/dev/null # --dial connects to what it finds
for f in a b c d; do
    if grep -q "^discovered $(eval echo \$ID_$f) " "$TMP/$f.out"; then fail "$f discovered itself"; fi
    n=$(grep '^discovered ' "$TMP/$f.out" | sort | uniq -d | wc -l)
    [ "$n" = 0 ] || { show $f.out; fail "$f reported an address twice"; }
done

echo "== a stopped host says goodbye, a killed one expires by TTL"
kill -INT "$PID_c"
wait "$PID_c" || fail "cp2p mdns did not exit cleanly on SIGINT"
wait_line "$TMP/a.out" "^expired $ID_c /ip4/10\.77\.0\.3/tcp/[0-9]+$" 3 >/dev/null
kill -9 "$PID_d"
wait_line "$TMP/a.out" "^expired $ID_d /ip6/fd77::4/tcp/[0-9]+$" 10 >/dev/null
if grep -q "^expired $ID_b " "$TMP/a.out"; then fail "a live host expired"; fi

echo "== hostile packets are dropped and counted"
ip netns exec ${P}h2 python3 - <<'EOF'
import socket, struct
def hdr(flags, qd, an, ns, ar, id=0):
    return struct.pack('>HHHHHH', id, flags, qd, an, ns, ar)
def name(*labels):
    return b''.join(bytes([len(l)]) + l for l in labels) + b'\0'
svc = (b'_p2p', b'_udp', b'local')
def txt(owner, cls, *strs):
    rd = b''.join(bytes([len(s)]) + s for s in strs)
    return owner + struct.pack('>HHIH', 16, cls, 120, len(rd)) + rd
malformed = [
    hdr(0x8400, 0, 1, 0, 0),                                  # truncated: a record is missing
    hdr(0, 1, 0, 0, 0) + b'\xc0\x0c' + b'\0\x0c\0\x01',       # a pointer to itself
    hdr(0, 1, 0, 0, 0) + b'\x01a\xc0\x0c' + b'\0\x0c\0\x01',  # a loop through a label
    hdr(0, 1, 0, 0, 0) + b'\xc0\x20' + b'\0\x0c\0\x01' + b'\0' * 40,  # a forward pointer
    hdr(0x8400, 0xffff, 0xffff, 0xffff, 0xffff) + b'\0' * 100,  # huge counts
    hdr(0, 1, 0, 0, 0) + b'\x40' + b'a' * 64 + b'\0\0\x0c\0\x01',  # label type 01
    hdr(0, 1, 0, 0, 0) + b'\x3f' + b'a' * 63 + b'\x3f' + b'b' * 63 + b'\x3f' + b'c' * 63
        + b'\x3f' + b'd' * 63 + b'\0\0\x0c\0\x01',             # name over 255 bytes
    hdr(0x8400, 0, 1, 0, 0) + name(*svc) + struct.pack('>HHIH', 1, 1, 120, 5) + b'12345',  # A of 5 bytes
    b'\x13\x37' * 3,                                          # shorter than a header
    b'\xff' * 10000,                                          # larger than any mDNS packet
]
rejected = [
    hdr(0x8400, 0, 1, 0, 0) + txt(name(b'evil', *svc), 3,     # class CH
        b'dnsaddr=/ip4/10.77.0.9/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'),
    hdr(0x8400, 0, 0, 0, 1) + txt(name(b'evil', *svc), 1, b'dnsaddr=/ip4/999.1.1.1/tcp/1'),
    hdr(0x8400, 0, 0, 0, 1) + txt(name(b'evil', *svc), 1, b'dnsaddr=/ip4/10.77.0.9/tcp/1'),  # no /p2p
]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.77.0.3'))
for p in malformed + rejected:
    s.sendto(p, ('224.0.0.251', 5353))
EOF
sleep 1
echo "== one sender making up peers cannot take the table"
rss_before=$(proc_kb "$PID_a" VmRSS)
LIB=$(cd "$(dirname "$0")/lib" && pwd) ip netns exec ${P}h2 /usr/bin/python3 - <<'EOF'
import os, socket, struct, sys
sys.path.insert(0, os.environ['LIB'])
from hostile import base58, raw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
def fake_id():  # an Ed25519 peer id: the identity multihash of a PublicKey
    return base58(b'\x00\x24\x08\x01\x12\x20' + raw(Ed25519PrivateKey.generate().public_key())).encode()
def name(*labels):
    return b''.join(bytes([len(l)]) + l for l in labels) + b'\0'
svc = (b'_p2p', b'_udp', b'local')
def txt(owner, *strs):
    rd = b''.join(bytes([len(s)]) + s for s in strs)
    return owner + struct.pack('>HHIH', 16, 1, 120, len(rd)) + rd
def send(recs):
    s.sendto(struct.pack('>HHHHHH', 0, 0x8400, 0, 0, 0, len(recs)) + b''.join(recs), ('224.0.0.251', 5353))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.77.0.3'))
k = 0
for pkt in range(60):  # 60 packets of 40 made-up peers, one address each
    recs = []
    for i in range(40):
        k += 1
        recs.append(txt(name(b'fake%d' % k, *svc),
                        b'dnsaddr=/ip4/10.77.%d.%d/tcp/4001/p2p/%s' % (1 + k // 250, 1 + k % 250, fake_id())))
    send(recs)
pid = fake_id()  # and one made-up peer with 60 addresses
send([txt(name(b'many', *svc), b'dnsaddr=/ip4/10.77.20.%d/tcp/4001/p2p/%s' % (i + 1, pid)) for i in range(60)])
EOF
sleep 1
fakes=$(grep -c '^discovered .* /ip4/10\.77\.[1-9][0-9]*\.' "$TMP/a.out" || true)
[ "$fakes" -le 128 ] || fail "one sender took $fakes entries of the table (at most 128)"
rss_after=$(proc_kb "$PID_a" VmRSS)
[ $((rss_after - rss_before)) -lt $((64 * 1024)) ] || fail "the table flood grew memory by $((rss_after - rss_before)) kB"
echo "   $fakes made-up entries kept of 2460 sent; RSS $rss_before -> $rss_after kB"

start_cp2p 2 e # the host is still working: it finds a new peer
wait_line "$TMP/a.out" "^discovered $ID_e /ip4/10\.77\.0\.3/tcp/[0-9]+$" >/dev/null
wait_line "$TMP/e.out" "^discovered $ID_a " >/dev/null
kill -INT "$PID_a"
wait "$PID_a" || fail "cp2p mdns exited non-zero after the hostile packets"
st=$(wait_line "$TMP/a.out" '^stats ')
malformed=$(sed -E 's/.* malformed=([0-9]+).*/\1/' <<<"$st")
rejected=$(sed -E 's/.* rejected=([0-9]+).*/\1/' <<<"$st")
[ "$malformed" -ge 10 ] && [ "$rejected" -ge 3 ] || fail "hostile packets not counted: $st"
over=$(sed -E 's/.* over_limit=([0-9]+).*/\1/' <<<"$st")
[ "$over" -ge 2000 ] || fail "the table flood was not counted: $st"
if grep -q "evil\|10\.77\.0\.9" "$TMP/a.out"; then fail "a hostile record was believed"; fi

echo "== cp2p and js-libp2p discover each other"
[ -f "$INTEROP/node_modules/@libp2p/mdns/package.json" ] ||
    fail "@libp2p/mdns is not installed: run 'npm ci' in tests/interop"
command -v node >/dev/null || fail "node is not installed (node 20 or later is needed)"
(cd "$INTEROP" && exec ip netns exec ${P}h3 node --import ./polyfill.mjs mdns.mjs --interval 1) \
    >"$TMP/js.out" 2>"$TMP/js.err" &
PIDS+=($!)
JS_PID=$!
JS_ID=$(wait_line "$TMP/js.out" '^Local peer id: ' | cut -d' ' -f4)
SHOW_ON_FAIL=(js.err)
wait_line "$TMP/b.out" "^discovered $JS_ID /ip4/10\.77\.0\.4/tcp/[0-9]+$" 30 >/dev/null
wait_line "$TMP/js.out" "^discovered $ID_b /ip4/10\.77\.0\.2/tcp/[0-9]+" 30 >/dev/null
kill -TERM "$JS_PID"
echo PASS
