#!/usr/bin/env bash
# cp2pd as p2pd: flags and start-up output, then hostile control clients
# (garbage, oversized frames, disconnects mid-request, thousands of streams and
# connections): after each, the daemon must still answer IDENTIFY.
source "$(dirname "$0")/lib/common.sh"
D=$BUILD/cp2pd
command -v python3 >/dev/null || fail "python3 is needed"

echo "== flags"
"$D" -h | grep -q -- '-hostAddrs' || fail "-h lacks -hostAddrs"
"$D" --help | grep -q -- '-bootstrapPeers' || fail "--help lacks -bootstrapPeers"
rc=0; "$D" -nosuchflag 2>"$TMP/e" || rc=$?
[ $rc = 2 ] && grep -q 'not defined' "$TMP/e" || fail "unknown flag: rc $rc"
rc=0; "$D" -muxer spdy 2>/dev/null || rc=$?; [ $rc = 1 ] || fail "bad -muxer accepted"
rc=0; "$D" -listen /unix/$TMP/x.sock -id /nonexistent 2>/dev/null || rc=$?; [ $rc = 1 ] || fail "missing -id accepted"

start_cp2pd a -id "$(dirname "$0")/../fixtures/keys/rsa-2048.key"
A_CTL=$CTL; A_ID=$ID
[[ $A_ID == Qm* ]] || fail "-id with an RSA key gave peer ID $A_ID"
grep -E -q '^/ip4/127\.0\.0\.1/tcp/[0-9]+$' "$TMP/a.out" || fail "no host address under Peer Addrs"
start_cp2pd b; B_CTL=$CTL; B_ID=$ID
[ "$A_ID" != "$B_ID" ] || fail "two daemons with one ID"
"$D" -q -listen /unix/$TMP/q.sock -noListenAddrs >"$TMP/q.out" 2>&1 & PIDS+=($!)
sleep 0.5; [ ! -s "$TMP/q.out" ] || fail "-q printed: $(cat "$TMP/q.out")"
[ -S "$TMP/q.sock" ] || fail "unix control socket missing"

PYTHONPATH=$(dirname "$0") python3 - "$A_CTL" "$B_CTL" "$TMP/q.sock" <<'PY'
import os, sys, time
from p2pd_client import varint, field, parse, frame, conn, read_msg, identify, connect
A, B, QSOCK = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def check(what):
    identify(A); identify(B); identify(QSOCK)
    print('ok', what, flush=True)

b_id, b_addrs = identify(B)
r = connect(A, b_id, b_addrs)
assert r[1] == [0], r
check('identify over tcp and unix, connect')

# an invalid request in a valid frame gets an ERROR response and the connection goes on
s = conn(A); s.sendall(frame(b'\xff\xff\xff') + frame(field(1, 0, 1)) + frame(field(1, 0, 0)))
r1 = read_msg(s); r2 = read_msg(s); r3 = read_msg(s); s.close()
assert r1[1] == [1] and b'malformed' in parse(r1[2][0])[1][0], r1
assert r2[1] == [1], r2          # CONNECT without its body
assert r3[1] == [0] and 4 in r3, r3
check('errors for bad requests')

for junk in [os.urandom(5000), b'\xff' * 20, varint(1 << 40), varint(64 << 20) + b'x' * 100]:
    s = conn(A)
    try:
        s.sendall(junk); s.recv(100)
    except OSError: pass
    s.close()
check('garbage and oversized frames')

for _ in range(200):    # disconnect mid-request
    s = conn(A); s.sendall(varint(100) + b'\x08'); s.close()
s = conn(A); s.sendall(frame(field(1, 0, 0))); s.close()   # and before the answer
check('disconnects mid-request')

# more control connections than the daemon takes, all at once
socks = []
for _ in range(1500):
    try: socks.append(conn(A))
    except OSError: break
for s in socks: s.close()
time.sleep(0.5)
check('%d simultaneous control connections' % len(socks))

# thousands of STREAM_OPEN: to a protocol nobody serves, and held-open ping streams
def stream_open(proto):
    so = field(1, 2, b_id) + field(2, 2, proto.encode())
    s = conn(A); s.sendall(frame(field(1, 0, 2) + field(3, 2, so)))
    return s
answers = {0: 0, 1: 0}
for i in range(0, 2000, 250):
    batch = [stream_open('/nobody/1.0.0') for _ in range(250)]
    for s in batch:
        answers[read_msg(s)[1][0]] += 1; s.close()
assert answers[1] == 2000, answers
held = [stream_open('/ipfs/ping/1.0.0') for _ in range(1000)]
ok = err = 0
for s in held:
    try:
        r = read_msg(s)
        if r[1] == [0]: ok += 1
        else: err += 1
    except (EOFError, OSError): err += 1
assert ok >= 100, (ok, err)
for s in held: s.close()
print('streams: %d opened, %d refused' % (ok, err))
check('thousands of streams')
PY
echo PASS
