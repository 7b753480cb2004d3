#!/usr/bin/env bash
# Remote peers cannot lock local clients out of cp2pd (issue #14, finding 6):
# control connections and the streams remote peers open to a registered
# handler have pools of their own. Five peers open 250 streams each to a
# handler and hold them (with one shared pool of 1024 they took every slot and
# IDENTIFY was refused): each peer gets at most its share of the bridged
# pool, IDENTIFY still answers, and once they let go the handler gets new
# streams again. Then the flags: -maxBridgedStreams and -bridgedStreamsPerPeer
# bound the bridged pool, and -maxClients local clients do not keep remote
# peers from the handler either.
source "$(dirname "$0")/lib/common.sh"
command -v python3 >/dev/null || fail "python3 is needed"
ulimit -n 8192 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || fail "needs 4096 file descriptors, have $(ulimit -n)"

for f in maxClients maxBridgedStreams bridgedStreamsPerPeer; do
    "$BUILD/cp2pd" -h 2>&1 | grep -qE -- "^  -$f( |$)" || fail "cp2pd -h does not list -$f"
done
start_cp2pd a; A=$CTL
REMOTES=()
for i in 0 1 2 3 4; do start_cp2pd r$i; REMOTES+=($CTL); done
SHOW_ON_FAIL=(all)

cat >"$TMP/pools.py" <<'PY'
import selectors, socket, sys, threading, time
from p2pd_client import (conn, connect, error_msg, frame, field, identify, ma_tcp, parse,
                         read_msg, rd, stream_handler, stream_open)
PROTO = '/pool/1.0.0'

class Handler:
    """A handler address that accepts every bridged stream, reads its
    StreamInfo and holds it: per peer, the streams the daemon bridged."""
    def __init__(self):
        self.l = socket.socket()
        self.l.bind(('127.0.0.1', 0))
        self.l.listen(4096)
        self.port = self.l.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.l, selectors.EVENT_READ)
        self.held, self.by_peer, self.lock = {}, {}, threading.Lock()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            for key, _ in self.sel.select():
                if key.fileobj is self.l:
                    s, _ = self.l.accept()
                    self.held[s] = b''
                    self.sel.register(s, selectors.EVENT_READ)
                    continue
                s = key.fileobj
                try: data = s.recv(4096)
                except OSError: data = b''
                if not data:
                    self.sel.unregister(s); s.close(); self.held.pop(s, None)
                    continue
                buf = self.held.get(s)
                if buf is None: continue       # StreamInfo already read
                buf += data
                try:
                    n, i = rd(buf, 0)
                    if len(buf) - i < n: raise IndexError
                except IndexError:
                    self.held[s] = buf; continue
                peer = parse(buf[i:i + n])[1][0]
                self.held[s] = None
                with self.lock: self.by_peer[peer] = self.by_peer.get(peer, 0) + 1

    def total(self):
        with self.lock: return sum(self.by_peer.values())

    def settle(self):
        """The count once it stopped moving for half a second."""
        last, since = -1, time.time()
        while time.time() - since < 0.5:
            n = self.total()
            if n != last: last, since = n, time.time()
            time.sleep(0.05)
        return last

def attack(target, target_info, peers, per_peer, proto):
    """Each of peers opens per_peer streams to proto on target and holds them."""
    held = []
    for p in peers:
        assert connect(p, target_info[0], target_info[1])[1] == [0]
        batch = [conn(p) for _ in range(per_peer)]
        for s in batch:
            s.sendall(frame(field(1, 0, 2) + field(3, 2, field(1, 2, target_info[0]) +
                                                   field(2, 2, proto.encode()))))
        for s in batch:
            try: read_msg(s)
            except (EOFError, OSError): pass
        held += batch
    return held

def identify_ok(where, times=10):
    for _ in range(times):
        try: identify(where)
        except (EOFError, OSError) as e: return repr(e)
    return None
PY

echo "== five peers, 250 streams each, default pools"
PYTHONPATH=$(dirname "$0"):$TMP python3 - "$A" "${REMOTES[@]}" <<'PY'
import sys, time
from pools import *
A, remotes = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
# --- five peers, 250 streams each, against the default pools
h = Handler()
a_info = identify(A)
r = stream_handler(A, ma_tcp(h.port), PROTO)
assert r[1] == [0], r
held = attack(A, a_info, remotes, 250, PROTO)
bridged = h.settle()
why = identify_ok(A)
assert why is None, 'IDENTIFY refused while remote peers hold %d bridged streams: %s' % (bridged, why)
assert stream_handler(A, ma_tcp(h.port), '/pool/2.0.0')[1] == [0], 'STREAM_HANDLER refused'
assert bridged < 5 * 250, 'every one of %d streams bridged: no per-peer share' % bridged
most = max(h.by_peer.values())
assert len(h.by_peer) == 5 and most <= 1024 // 8, 'shares %s' % sorted(h.by_peer.values())
print('ok: %d streams held by 5 peers, %d bridged (at most %d per peer), IDENTIFY answers'
      % (len(held), bridged, most), flush=True)
for s in held: s.close()
deadline = time.time() + 10
while len(h.held) > 0 and time.time() < deadline: time.sleep(0.1)
before = h.total()
s, r = stream_open(remotes[0], a_info[0], PROTO)
assert r[1] == [0], r
for _ in range(100):
    if h.total() > before: break
    time.sleep(0.05)
assert h.total() == before + 1, 'no stream bridged after the peers let go'
s.close()
print('ok: the pool is free again once they let go', flush=True)
PY

echo "== -maxBridgedStreams, -bridgedStreamsPerPeer, -maxClients"
start_cp2pd b -maxBridgedStreams 300 -bridgedStreamsPerPeer 100 -maxClients 20; B=$CTL
PYTHONPATH=$(dirname "$0"):$TMP python3 - "$B" "${REMOTES[@]}" <<'PY'
import sys, time
from pools import *
B, remotes = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
# --- -maxBridgedStreams 300 -bridgedStreamsPerPeer 100 -maxClients 20
h2 = Handler()
b_info = identify(B)
assert stream_handler(B, ma_tcp(h2.port), PROTO)[1] == [0]
held = attack(B, b_info, remotes[:4], 150, PROTO)
bridged = h2.settle()
shares = sorted(h2.by_peer.values())
assert bridged == 300 and max(shares) <= 100, 'bridged %d, shares %s' % (bridged, shares)
why = identify_ok(B)
assert why is None, why
print('ok: -maxBridgedStreams 300, -bridgedStreamsPerPeer 100: shares %s' % shares, flush=True)
for s in held: s.close()
deadline = time.time() + 10
while len(h2.held) > 0 and time.time() < deadline: time.sleep(0.1)
locals_ = [conn(B) for _ in range(20)]           # the whole control pool
time.sleep(0.3)
extra = conn(B)
extra.sendall(frame(field(1, 0, 0)))
try: refused = read_msg(extra) is None
except (EOFError, OSError): refused = True
assert refused, 'a 21st control client answered with -maxClients 20'
before = h2.total()
s, r = stream_open(remotes[0], b_info[0], PROTO)
assert r[1] == [0], r
for _ in range(100):
    if h2.total() > before: break
    time.sleep(0.05)
assert h2.total() == before + 1, 'local clients holding every control slot kept a remote stream out'
print('ok: -maxClients 20 full, a remote peer still reaches the handler', flush=True)
PY
echo PASS
