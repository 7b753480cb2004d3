#!/usr/bin/env bash
# ctest: run-serial
# The WebSocket transport (/ws) with noise and yamux on top: cp2p with
# cp2p, js-libp2p (@libp2p/websockets), go-libp2p and rust-libp2p, each side
# dialling: pings, a 1 MiB echo on 2 streams, and identify's /ws address. A
# private network over /ws. /wss and /tls/ws with a certificate from files:
# cp2p, js and go dial it by address, by name and with an SNI; a dialer
# that does not trust its CA refuses it and says why. Then the attacks: a head that never ends gets a
# 431, silent sockets past the 128 upgrade slots give way to a peer that
# speaks, a text frame and an unmasked frame close that connection only, and
# a peer that pings without reading is cut off; the listener serves on.
INTEROP_PEERS="js go rust"
. "$(dirname "$0")/../interop/lib.sh"
SHOW_ON_FAIL=(all)

start_cp2p c1 --listen /ip4/127.0.0.1/tcp/0/ws --echo
C1_PID=$CP2P_PID
WS_ADDR=$(grep -m1 '^Listening on /ip4/127.0.0.1/tcp/[0-9]*/ws/p2p/' "$TMP/c1.out" | cut -d' ' -f3)
[ -n "$WS_ADDR" ] || fail "cp2p does not print a /ws listen address"
WS_ID=${WS_ADDR##*/p2p/}
WS_PORT=$(sed -E 's#.*/tcp/([0-9]+)/ws/.*#\1#' <<<"$WS_ADDR")

# check_out FILE WHO: 2 pings and the echo in FILE.
check_out() {
    [ "$(grep -cE '^ping( [^ ]+)? rtt=' "$TMP/$1")" -ge 2 ] || fail "$2: no pings over /ws"
    grep -qE '^echo ok streams=2 bytes=1048576' "$TMP/$1" || fail "$2: no echo over /ws"
}

echo "== cp2p to cp2p"
"$CP2P" ping --count 2 --interval 0.1 --echo-streams 2 --verbose "$WS_ADDR" >"$TMP/cc.out" 2>"$TMP/cc.err" ||
    fail "cp2p to cp2p over /ws: exit $?"
check_out cc.out cp2p

echo "== js dials cp2p, cp2p dials js"
js --dial "$WS_ADDR" --ping 2 --echo-streams 2 --wait-identify >"$TMP/jc.out" 2>"$TMP/jc.err" || fail "js to cp2p over /ws"
check_out jc.out js
line=$(grep -m1 "^identified $WS_ID " "$TMP/jc.out") || fail "js did not identify cp2p over /ws"
has "$line" addrs "${WS_ADDR%/p2p/*}" || fail "cp2p's identify lacks its /ws address: $line"
start_js j1 --listen /ip4/127.0.0.1/tcp/0/ws
JS_WS=$(grep -m1 '^listening /ip4/127.0.0.1/tcp/[0-9]*/ws/p2p/' "$TMP/j1.out" | cut -d' ' -f2)
[ -n "$JS_WS" ] || fail "js does not listen on /ws"
"$CP2P" ping --count 2 --interval 0.1 --echo-streams 2 "$JS_WS" >"$TMP/cj.out" 2>"$TMP/cj.err" || fail "cp2p to js over /ws"
check_out cj.out "cp2p to js"

echo "== go dials cp2p, cp2p dials go"
"$GO_PEER" --dial "$WS_ADDR" --ping 2 --echo-streams 2 --wait-identify >"$TMP/gc.out" 2>&1 || fail "go to cp2p over /ws"
check_out gc.out go
grep -q "transport=websocket" "$TMP/gc.out" || fail "go did not connect over websocket"
"$GO_PEER" --listen /ip4/127.0.0.1/tcp/0/ws >"$TMP/g1.out" 2>&1 &
PIDS+=($!)
GO_WS=$(wait_line "$TMP/g1.out" '^listening /ip4/127.0.0.1/tcp/[0-9]+/ws/p2p/' 15 | cut -d' ' -f2)
"$CP2P" ping --count 2 --interval 0.1 --echo-streams 2 "$GO_WS" >"$TMP/cg.out" 2>"$TMP/cg.err" || fail "cp2p to go over /ws"
check_out cg.out "cp2p to go"

echo "== rust dials cp2p, cp2p dials rust"
"$RUST_PEER" --dial "$WS_ADDR" --ping 2 --echo-streams 2 --wait-identify >"$TMP/rc.out" 2>&1 || fail "rust to cp2p over /ws"
check_out rc.out rust
"$RUST_PEER" --listen /ip4/127.0.0.1/tcp/0/ws >"$TMP/r1.out" 2>&1 &
PIDS+=($!)
RUST_WS=$(wait_line "$TMP/r1.out" '^listening /ip4/127.0.0.1/tcp/[0-9]+/ws/p2p/' 15 | cut -d' ' -f2)
"$CP2P" ping --count 2 --interval 0.1 --echo-streams 2 "$RUST_WS" >"$TMP/cr.out" 2>"$TMP/cr.err" || fail "cp2p to rust over /ws"
check_out cr.out "cp2p to rust"

echo "== a private network over /ws, with js"
"$CP2P" keygen --psk --out "$TMP/psk" >/dev/null
start_cp2p p1 --listen /ip4/127.0.0.1/tcp/0/ws --psk "$TMP/psk" --echo
P_WS=$(grep -m1 '/ws/p2p/' "$TMP/p1.out" | cut -d' ' -f3)
"$CP2P" ping --psk "$TMP/psk" --count 2 --interval 0.1 --echo-streams 2 "$P_WS" >"$TMP/pp.out" 2>&1 || fail "pnet over /ws"
check_out pp.out "pnet cp2p"
js --dial "$P_WS" --psk "$TMP/psk" --ping 2 --echo-streams 2 >"$TMP/pj.out" 2>&1 || fail "pnet over /ws with js"
check_out pj.out "pnet js"
rc=0; timeout 20 "$CP2P" ping --count 1 --timeout 5 "$P_WS" >"$TMP/pn.out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "a peer without the key reached a private network over /ws"

echo "== /wss: TLS with a certificate from files, verified against a CA the dialers trust"
( cd "$TMP" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj /CN=cp2p-test-ca &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext
) >"$TMP/openssl.log" 2>&1 || fail "openssl could not make the test certificates"
rc=0; timeout 10 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0/wss >"$TMP/nocert.out" 2>"$TMP/nocert.err" || rc=$?
[ $rc = 1 ] && grep -q 'needs a certificate' "$TMP/nocert.err" || fail "/wss without a certificate: rc $rc"
start_cp2p s1 --listen /ip4/127.0.0.1/tcp/0/wss --listen /ip4/127.0.0.1/tcp/0/tls/ws \
    --wss-cert "$TMP/srv.pem" --wss-key "$TMP/srv.key" --echo
WSS=$(grep -m1 '/wss/p2p/' "$TMP/s1.out" | cut -d' ' -f3)
TLSWS=$(grep -m1 '/tls/ws/p2p/' "$TMP/s1.out" | cut -d' ' -f3)
[ -n "$WSS" ] && [ -n "$TLSWS" ] || fail "no /wss and /tls/ws listen addresses"
DNS_WSS=$(sed 's#^/ip4/127.0.0.1#/dns4/localhost#' <<<"$WSS")
SNI=$(sed -E 's#^/ip4/127.0.0.1/tcp/([0-9]+)/tls/ws#/ip4/127.0.0.1/tcp/\1/tls/sni/localhost/ws#' <<<"$TLSWS")
for a in "$WSS" "$DNS_WSS" "$SNI"; do
    SSL_CERT_FILE=$TMP/ca.pem "$CP2P" ping --count 2 --interval 0.1 --echo-streams 2 "$a" >"$TMP/w.out" 2>&1 ||
        fail "cp2p to cp2p over $a"
    check_out w.out "cp2p over $a"
done
NODE_EXTRA_CA_CERTS=$TMP/ca.pem js --dial "$WSS" --ping 2 --echo-streams 2 >"$TMP/jw.out" 2>&1 || fail "js to cp2p over /wss"
check_out jw.out "js over /wss"
NODE_EXTRA_CA_CERTS=$TMP/ca.pem js --dial "$TLSWS" --ping 2 --echo-streams 2 >"$TMP/jt.out" 2>&1 || fail "js to cp2p over /tls/ws"
check_out jt.out "js over /tls/ws"
SSL_CERT_FILE=$TMP/ca.pem "$GO_PEER" --dial "$DNS_WSS" --ping 2 --echo-streams 2 >"$TMP/gw.out" 2>&1 || fail "go to cp2p over /wss"
check_out gw.out "go over /wss"
rc=0; timeout 20 "$CP2P" ping --count 1 "$WSS" >"$TMP/untrusted.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "the server's certificate: unable to get local issuer" "$TMP/untrusted.out" ||
    fail "a /wss server no root vouches for was accepted, or not said why: rc $rc"
kill -INT "$CP2P_PID"

echo "== attacks on the /ws listener"
python3 - "$WS_PORT" >"$TMP/attack.out" 2>&1 <<'EOF' || fail "attacks: $(cat "$TMP/attack.out")"
import base64, os, socket, struct, sys, time
port = int(sys.argv[1])

def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s

def upgrade(s):
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        if not b: raise SystemExit("no 101")
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head

def closed(s, secs=15):
    s.settimeout(secs)
    try:
        while True:
            b = s.recv(65536)
            if not b: return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

# 1. a head that never ends
s = conn()
s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000)
s.settimeout(10)
r = s.recv(4096)
assert r.startswith(b"HTTP/1.1 431"), r
assert closed(s), "the endless head's socket stayed open"
print("endless head: 431")

# 2. 200 silent sockets: the oldest give way, and a peer that speaks is served
silent = [conn() for _ in range(200)]
s = conn(); upgrade(s); s.close()
gone = sum(1 for x in silent[:72] if closed(x, 2))
assert gone >= 60, "only %d of the oldest silent sockets were let go" % gone
for x in silent: x.close()
print("silent flood: %d of the oldest gave way, an upgrade still went through" % gone)

# 3. a text frame, and an unmasked frame: that connection closes
for frame in (b"\x81\x85" + b"\0\0\0\0" + b"hello", b"\x82\x05hello"):
    s = conn(); upgrade(s)
    s.sendall(frame)
    assert closed(s), "a bad frame %r did not close the connection" % frame[:2]
print("bad frames: closed")

# 4. pings, never reading the pongs: cut off
s = conn()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
upgrade(s)
ping = b"\x89\xfd" + b"\0\0\0\0" + b"p" * 125
s.settimeout(30)
cut = False
t0 = time.time()
try:
    for i in range(400000):
        s.sendall(ping)
        if time.time() - t0 > 25: break
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    cut = True
assert cut, "a peer that pings and never reads was not cut off"
assert closed(s, 10), "the pinging peer was only blocked, not disconnected"
print("ping flood: cut off")
EOF
cat "$TMP/attack.out"
# ...and the listener goes on.
"$CP2P" ping --count 1 "$WS_ADDR" >"$TMP/after.out" 2>&1 || fail "the /ws listener stopped serving after the attacks"
kill -INT "$C1_PID"; wait "$C1_PID" || fail "the /ws listener did not exit cleanly"
echo PASS
