#!/usr/bin/env bash
# ctest: run-serial
# The WebSocket transport (/ws) with noise and yamux on top: cp2p with
# cp2p, js-libp2p (@libp2p/websockets), go-libp2p and rust-libp2p, each side
# dialling: pings, a 1 MiB echo on 2 streams, and identify's /ws address. A
# private network over /ws. Then the attacks: a head that never ends gets a
# 431, silent sockets past the 128 upgrade slots give way to a peer that
# speaks, a text frame and an unmasked frame close that connection only, and
# a peer that pings without reading is cut off; the listener serves on.
INTEROP_PEERS="js go rust"
. "$(dirname "$0")/../interop/lib.sh"
SHOW_ON_FAIL=(all)

start_cp2p c1 --listen /ip4/127.0.0.1/tcp/0/ws --echo
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
kill -INT "$CP2P_PID"
echo PASS
