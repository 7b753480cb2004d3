#!/usr/bin/env bash
# The control API stays local (issue #14, finding 7). Each case is an attack
# that worked before and must fail now:
#   a control address that is not loopback needs -allowRemoteControl (and warns);
#   the unix control socket is 0600 whatever the umask (-listenMode to widen it);
#   an existing path is refused (a live socket, a regular file, a symlink) unless
#   it is a stale socket of ours;
#   a handler address pointing at the control socket itself (by its path, a
#   symlink, or a handler socket swapped for a symlink after STREAM_HANDLER,
#   or the control TCP port) is refused, and a remote peer opening that
#   protocol gets no control API;
#   a handler address of another kind than the control socket's, not loopback,
#   or a unix path that is not a socket is refused.
source "$(dirname "$0")/lib/common.sh"
D=$BUILD/cp2pd
command -v python3 >/dev/null || fail "python3 is needed"
SHOW_ON_FAIL=(all)
for f in allowRemoteControl listenMode; do
    "$D" -h 2>&1 | grep -qE -- "^  -$f( |$)" || fail "cp2pd -h does not list -$f"
done

# start_unix NAME PATH ARGS...: cp2pd with the control socket at PATH.
start_unix() {
    local name=$1 path=$2; shift 2
    "$D" -listen "/unix$path" -hostAddrs=/ip4/127.0.0.1/tcp/0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    DAEMON_PID=$!
    wait_line "$TMP/$name.out" '^Peer Addrs:' 5 >/dev/null
}
# refused NAME ARGS...: cp2pd must exit 1 at once; its stderr is in $TMP/NAME.err.
refused() {
    local name=$1 rc=0; shift
    timeout 5 "$D" -hostAddrs=/ip4/127.0.0.1/tcp/0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    [ $rc = 1 ] || fail "cp2pd $* was not refused (exit $rc)"
}

echo "== a control address that is not loopback"
refused remote4 -listen /ip4/0.0.0.0/tcp/0
grep -q -- 'not loopback.*-allowRemoteControl' "$TMP/remote4.err" || fail "unclear refusal: $(cat "$TMP/remote4.err")"
[ "$(wc -l <"$TMP/remote4.err")" = 1 ] || fail "more than one line: $(cat "$TMP/remote4.err")"
refused remote6 -listen /ip6/::/tcp/0
grep -q -- '-allowRemoteControl' "$TMP/remote6.err" || fail "/ip6/:: not refused clearly"
"$D" -listen /ip4/0.0.0.0/tcp/0 -allowRemoteControl -hostAddrs=/ip4/127.0.0.1/tcp/0 \
    >"$TMP/open.out" 2>"$TMP/open.err" & PIDS+=($!)
wait_line "$TMP/open.out" '^Peer Addrs:' 5 >/dev/null
grep -q 'WARN.*control socket /ip4/0.0.0.0/tcp/[0-9]* is not loopback' "$TMP/open.err" ||
    fail "-allowRemoteControl without a warning: $(cat "$TMP/open.err")"
OPEN=$(sed -n 's#^Control socket: /ip4/0.0.0.0/tcp/##p' "$TMP/open.out")
start_cp2pd loop; B=$CTL # loopback: no warning
grep -q 'loopback' "$TMP/loop.err" && fail "a warning for a loopback control socket: $(cat "$TMP/loop.err")"

echo "== the unix control socket's mode and path"
(umask 000; exec "$D" -listen "/unix$TMP/m.sock" -hostAddrs=/ip4/127.0.0.1/tcp/0 >"$TMP/m.out" 2>"$TMP/m.err") & PIDS+=($!)
wait_line "$TMP/m.out" '^Peer Addrs:' 5 >/dev/null
[ "$(stat -c %a "$TMP/m.sock")" = 600 ] || fail "control socket mode $(stat -c %a "$TMP/m.sock") under umask 000"
(umask 000; exec "$D" -listen "/unix$TMP/g.sock" -listenMode 0660 -noListenAddrs >"$TMP/g.out" 2>"$TMP/g.err") & PIDS+=($!)
wait_line "$TMP/g.out" '^Peer Addrs:' 5 >/dev/null
[ "$(stat -c %a "$TMP/g.sock")" = 660 ] || fail "-listenMode 0660 gave $(stat -c %a "$TMP/g.sock")"
for bad in 0999 0400 1777 rw; do
    rc=0; "$D" -listen "/unix$TMP/bad.sock" -listenMode $bad -noListenAddrs 2>"$TMP/e" >/dev/null || rc=$?
    [ $rc = 1 ] && grep -q -- '-listenMode' "$TMP/e" || fail "-listenMode $bad: exit $rc: $(cat "$TMP/e")"
done

refused live -listen "/unix$TMP/m.sock"
grep -q "$TMP/m.sock.*in use" "$TMP/live.err" || fail "a live socket: unclear error: $(cat "$TMP/live.err")"
[ "$(wc -l <"$TMP/live.err")" = 1 ] || fail "more than one line: $(cat "$TMP/live.err")"
echo hello >"$TMP/file"
refused file -listen "/unix$TMP/file"
grep -q "$TMP/file.*not a socket" "$TMP/file.err" || fail "a regular file: unclear error: $(cat "$TMP/file.err")"
[ "$(cat "$TMP/file")" = hello ] || fail "the regular file was touched"
ln -s "$TMP/m.sock" "$TMP/link.sock"
refused link -listen "/unix$TMP/link.sock"
grep -q "$TMP/link.sock.*not a socket" "$TMP/link.err" || fail "a symlink: unclear error: $(cat "$TMP/link.err")"
[ -L "$TMP/link.sock" ] && [ -S "$TMP/m.sock" ] || fail "the symlink or the live socket is gone"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$TMP/stale.sock"
[ -S "$TMP/stale.sock" ] || fail "no stale socket to test with"
start_unix stale "$TMP/stale.sock"
grep -q 'stale' "$TMP/stale.err" || true

PYTHONPATH=$(dirname "$0") python3 - "$TMP" "$B" "$OPEN" <<'PY'
import os, socket, sys
from p2pd_client import (connect, error_msg, frame, field, identify, ma_tcp, ma_unix, read_msg,
                         stream_handler, stream_open)
TMP, B, OPEN = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
M, STALE = TMP + '/m.sock', TMP + '/stale.sock'
identify(M); identify(STALE)
print('ok: the live socket still answers; the stale one was replaced', flush=True)

def refused(where, addr, want, proto='/x/1.0.0'):
    why = error_msg(stream_handler(where, addr, proto))
    assert why and want in why, 'handler %r on %r: %r' % (addr, where, why)

def accepted(where, addr, proto):
    r = stream_handler(where, addr, proto)
    assert r[1] == [0], (addr, error_msg(r))

def unix_listener(path):
    l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen(16); return l

def tcp_listener():
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(16); return l

# a remote peer: the daemon at B (loopback TCP control)
b_id, b_addrs = identify(B)
def remote_gets_control(target, proto):
    """B opens proto to target and sends IDENTIFY on the stream: does the
    daemon's control API answer?"""
    t_id, t_addrs = identify(target)
    assert connect(B, t_id, t_addrs)[1] == [0]
    s, r = stream_open(B, t_id, proto)
    if r[1] != [0]:
        return False
    s.settimeout(3)
    try:
        s.sendall(frame(field(1, 0, 0)))
        # the control socket would first answer the StreamInfo (an ERROR)
        return any(4 in read_msg(s) for _ in range(3))
    except (EOFError, OSError):
        return False
    finally:
        s.close()

# --- unix control at M: the control socket itself, by path and by symlink
refused(M, ma_unix(M), 'control socket', '/evil/1.0.0')
os.symlink(M, TMP + '/alias.sock')
refused(M, ma_unix(TMP + '/alias.sock'), 'control socket', '/evil/1.0.0')
assert not remote_gets_control(M, '/evil/1.0.0'), 'a remote peer reached the control API'
# a handler socket swapped for a symlink to the control socket after STREAM_HANDLER
h = unix_listener(TMP + '/h.sock')
accepted(M, ma_unix(TMP + '/h.sock'), '/swap/1.0.0')
h.close(); os.unlink(TMP + '/h.sock'); os.symlink(M, TMP + '/h.sock')
assert not remote_gets_control(M, '/swap/1.0.0'), 'a swapped handler socket gave the control API'
identify(M)
print('ok: handlers at the unix control socket refused', flush=True)

# --- TCP control at B: its own port, on any loopback address
refused(B, ma_tcp(B), 'control socket', '/evil/1.0.0')
refused(B, ma_tcp(B, '127.0.0.2'), 'control socket', '/evil/1.0.0')
print('ok: handlers at the TCP control port refused', flush=True)

# --- kinds: unix control takes unix sockets and loopback TCP (@libp2p/daemon-client)
t = tcp_listener()
refused(M, ma_tcp(80, '192.0.2.1'), 'loopback')
refused(M, ma_tcp(t.getsockname()[1], '0.0.0.0'), 'loopback')
open(TMP + '/plain', 'w').write('x')
refused(M, ma_unix(TMP + '/plain'), 'not a socket')
refused(M, ma_unix(TMP + '/nothing.sock'), 'no such')
u = unix_listener(TMP + '/u.sock')
accepted(M, ma_unix(TMP + '/u.sock'), '/u/1.0.0')
accepted(M, ma_tcp(t.getsockname()[1]), '/t/1.0.0')
# and a bridged stream does reach a unix handler
t_id, t_addrs = identify(M)
s, r = stream_open(B, t_id, '/u/1.0.0')
assert r[1] == [0], r
u.settimeout(5); c, _ = u.accept(); c.settimeout(5)
assert c.recv(100), 'no StreamInfo from the daemon'
c.close(); s.close()
# loopback TCP control takes loopback TCP only
u2 = unix_listener(TMP + '/u2.sock')
refused(B, ma_unix(TMP + '/u2.sock'), 'loopback TCP')
refused(B, ma_tcp(80, '192.0.2.1'), 'loopback')
accepted(B, ma_tcp(t.getsockname()[1]), '/t/1.0.0')
# -allowRemoteControl: remote clients' handlers may be anywhere but the control port
accepted(OPEN, ma_tcp(80, '192.0.2.1'), '/far/1.0.0')
refused(OPEN, ma_tcp(OPEN, '192.0.2.1'), 'control socket')
print('ok: handler address kinds', flush=True)
PY
echo PASS
