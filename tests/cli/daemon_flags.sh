#!/usr/bin/env bash
# cp2pd takes every p2pd flag: -connManager/-connLo/-connHi/-connGrace trim
# connections (and spare tagged peers), -idleTimeout ends an unused daemon,
# -echo serves /echo/1.0.0, -autoRelay needs -relay and a DHT as in p2pd;
# flags for features cp2p lacks are an error when
# set to what p2pd would act on, silent at their defaults; bad values exit 2.
# (daemon_help.sh compares the flags and defaults with the real p2pd's.)
source "$(dirname "$0")/lib/common.sh"
D=$BUILD/cp2pd
command -v python3 >/dev/null || fail "python3 is needed"

echo "== flag values"
for bad in "-connGrace 5x" "-connLo many" "-idleTimeout -1s" "-natPortMap=maybe" "-pprofPort -1"; do
    rc=0; "$D" $bad -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
    [ $rc = 2 ] && grep -q 'invalid value' "$TMP/e" || fail "$bad: rc $rc: $(cat "$TMP/e")"
done
rc=0; "$D" -f "$TMP/none.json" 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q 'JSON' "$TMP/e" || fail "-f: rc $rc"
rc=0; "$D" -connManager -connLo 10 -connHi 5 -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q 'connLo' "$TMP/e" || fail "-connLo > -connHi: rc $rc"


echo "== AutoNAT"
rc=0; "$D" -forceReachabilityPublic -forceReachabilityPrivate -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$TMP/e")" = 1 ] && grep -q 'public or private, not both' "$TMP/e" ||
    fail "both forced: rc $rc: $(cat "$TMP/e")"
start_cp2pd an -autonat -forceReachabilityPrivate
[ -s "$TMP/an.err" ] && fail "warnings for -autonat: $(cat "$TMP/an.err")"
echo "== -autoRelay: as in p2pd v0.9.2, it needs -relay and a DHT, and does nothing more"
rc=0; "$D" -autoRelay -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q "^cp2pd: -autoRelay: can't have autorelay enabled without Relay enabled and DHT enabled" "$TMP/e" ||
    fail "-autoRelay without a DHT: rc $rc: $(cat "$TMP/e")"
rc=0; "$D" -autoRelay -dhtServer -relay=false -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] || fail "-autoRelay -relay=false: rc $rc"
start_cp2pd ar -autoRelay -dhtServer
[ -s "$TMP/ar.err" ] && fail "warnings for -autoRelay -dhtServer: $(cat "$TMP/ar.err")"
echo "== -pubsub and its flags"
rc=0; "$D" -pubsub -pubsubRouter randomsub -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q -- '-pubsubRouter.*gossipsub or floodsub' "$TMP/e" || fail "-pubsubRouter randomsub: rc $rc: $(cat "$TMP/e")"
rc=0; "$D" -pubsub -pubsubSignStrict=false -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q 'LaxSign' "$TMP/e" || fail "-pubsubSignStrict=false: rc $rc: $(cat "$TMP/e")"
rc=0; "$D" -pubsub -pubsubSign=false -pubsubSignStrict=false -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q 'LaxNoSign' "$TMP/e" || fail "LaxNoSign: rc $rc: $(cat "$TMP/e")"
start_cp2pd ps -pubsub -pubsubRouter floodsub -pubsubSign=false -gossipsubHeartbeatInterval 700ms
[ -s "$TMP/ps.err" ] && fail "warnings for -pubsub: $(cat "$TMP/ps.err")"
# at their defaults, or where p2pd v0.9.2 ignores them too: silent
start_cp2pd w -relay -relayHop -relayActive -relayDiscovery -relayHopLimit 3 -autonat=false -quic \
    -pubsubRouter floodsub -pubsubSign=false -pubsubSignStrict=false -gossipsubHeartbeatInterval 700ms \
    -gossipsubHeartbeatInitialDelay 1s -pprofPort 6061 -echo=false
[ -s "$TMP/w.err" ] && fail "warnings for flags p2pd ignores there too: $(cat "$TMP/w.err")"
W=$CTL
start_cp2pd pp -pprof -relay=false
grep -q -- '^cp2pd: -pprof: cp2pd has no Go profiler' "$TMP/pp.err" || fail "no warning for -pprof: $(cat "$TMP/pp.err")"
PP=$CTL

echo "== -echo"
# on by default, as in p2pd: /echo/1.0.0 sends back what it reads until the
# remote closes; -echo=false has none; a STREAM_HANDLER replaces it
start_cp2pd e
E=$CTL
PYTHONPATH=$(dirname "$0") python3 - "$E" "$W" "$PP" <<'PY'
import socket, sys
from p2pd_client import identify, connect, stream_open, stream_handler, error_msg, ma_tcp, read_msg
E, W, PP = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for where in (E, W):
    pid, addrs = identify(where)
    assert connect(PP, pid, addrs)[1] == [0]
pid_e, _ = identify(E)
s, r = stream_open(PP, pid_e, '/echo/1.0.0')
assert r[1] == [0], r
s.sendall(b'hello echo')
s.shutdown(socket.SHUT_WR)
got = b''
while True:
    c = s.recv(100)
    if not c: break
    got += c
assert got == b'hello echo', got
s.close()
pid_w, _ = identify(W)
s, r = stream_open(PP, pid_w, '/echo/1.0.0')
assert r[1] == [1], 'an /echo/1.0.0 stream with -echo=false: %r' % r
# a handler of the client's own replaces the built-in echo
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
r = stream_handler(E, ma_tcp(l.getsockname()[1]), '/echo/1.0.0')
assert r[1] == [0], error_msg(r)
s, r = stream_open(PP, pid_e, '/echo/1.0.0')
assert r[1] == [0], r
h, _ = l.accept(); h.settimeout(10)
read_msg(h)  # StreamInfo
h.sendall(b'from the handler')
assert s.recv(100) == b'from the handler'
print('ok: -echo by default, none with -echo=false, a STREAM_HANDLER replaces it')
PY

echo "== -announceAddrs"
rc=0; "$D" -announceAddrs /ip4/1.2.3.4/tcp/x -listen /unix/$TMP/bad.sock 2>"$TMP/e" || rc=$?
[ $rc = 1 ] && grep -q 'announceAddrs' "$TMP/e" || fail "a bad -announceAddrs: rc $rc"
start_cp2pd ann -announceAddrs /ip4/203.0.113.7/tcp/4001,/dns4/p2p.example.com/tcp/4001
[ "$(sed -n '/^Peer Addrs:/,$p' "$TMP/ann.out" | tail -n +2)" = "$(printf '/ip4/203.0.113.7/tcp/4001\n/dns4/p2p.example.com/tcp/4001')" ] ||
    fail "Peer Addrs are not the announced ones: $(cat "$TMP/ann.out")"
PYTHONPATH=$(dirname "$0") python3 - "$CTL" <<'PY'
import sys
from p2pd_client import identify
_, addrs = identify(int(sys.argv[1]))
assert addrs == [bytes.fromhex('04cb007107060fa1'), b'\x36\x0fp2p.example.com\x06\x0f\xa1'], addrs
PY

echo "== -idleTimeout"
start_cp2pd idle -idleTimeout 1500ms
IDLE_PID=$DAEMON_PID
exec 3<>/dev/tcp/127.0.0.1/$CTL # a client holds it open
sleep 2.5
kill -0 $IDLE_PID 2>/dev/null || fail "-idleTimeout ended a daemon that had a client"
exec 3>&-
for _ in $(seq 50); do kill -0 $IDLE_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $IDLE_PID 2>/dev/null && fail "-idleTimeout 1500ms: still running 5 s after its last client left"
wait $IDLE_PID || fail "-idleTimeout exit status $?"

echo "== -connManager"
PEERS=()
for i in 0 1 2 3; do start_cp2pd p$i; PEERS+=($CTL); done
start_cp2pd trim -connManager -connLo 1 -connHi 2 -connGrace 0; T=$CTL
start_cp2pd keep; K=$CTL
PYTHONPATH=$(dirname "$0") python3 - "$T" "$K" "$W" "${PEERS[@]}" <<'PY'
import sys, time
from p2pd_client import identify, connect, list_peers, tag_peer
T, K, W, peers = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), [int(p) for p in sys.argv[4:]]
infos = [identify(p) for p in peers]

def connect_all(where):
    for i, (pid, addrs) in enumerate(infos):
        r = connect(where, pid, addrs)  # may answer "closed" once trims begin
        if i == 0:
            assert r[1] == [0], r
            assert tag_peer(where, pid, 'precious', 100)[1] == [0]

def settle(where, want):
    for _ in range(50):
        got = list_peers(where)
        if want(got): return got
        time.sleep(0.1)
    return got

connect_all(T)
got = settle(T, lambda g: len(g) <= 2)
assert len(got) <= 2, 'over -connHi 2 and not trimmed: %d peers' % len(got)
assert infos[0][0] in got, 'the tagged peer was trimmed'
connect_all(K)   # no -connManager: the defaults (160/192) keep all four
got = settle(K, lambda g: len(g) >= 4)
assert len(got) == 4, 'without -connManager: %d peers' % len(got)
identify(W)
print('ok: -connManager trimmed to %d and kept the tagged peer; defaults kept 4' % len(list_peers(T)))
PY
echo PASS
