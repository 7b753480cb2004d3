#!/usr/bin/env bash
# The same control requests to cp2pd and to the real p2pd (v0.9.2,
# tests/interop/p2pd, built once and cached; one that cannot be built fails
# the test), started alike, each connected to a third daemon (a p2pd): the
# answers must agree, OK or ERROR and the streamed DHT answers' shape, and
# where clients may read it the error text too. The differences cp2pd keeps
# on purpose are checked as such (OURS below). Then the request timeout, the
# /echo/1.0.0 of -echo and SIGUSR1's diagnostics, as p2pd has them.
source "$(dirname "$0")/lib/common.sh"
P2PD=$(bash "$(dirname "$0")/../interop/p2pd/build.sh") || fail "the real p2pd could not be built (tests/interop/p2pd/build.sh)"
command -v python3 >/dev/null || fail "python3 is needed"
SHOW_ON_FAIL=(all)
PYTHONPATH=$(dirname "$0") python3 - "$P2PD" "$BUILD/cp2pd" "$TMP" <<'PY' || fail "cp2pd and p2pd answer differently"
import os, signal, socket, subprocess, sys, time
from p2pd_client import conn, field, frame, ma_tcp, ma_unix, parse, read_msg, request, identify

P2PD, CP2PD, TMP = sys.argv[1:4]
procs = []

def start(binary, name, *flags):
    sock = f'{TMP}/{name}.sock'
    out, err = open(f'{TMP}/{name}.out', 'w'), open(f'{TMP}/{name}.err', 'w')
    p = subprocess.Popen([binary, '-listen', '/unix' + sock, '-hostAddrs=/ip4/127.0.0.1/tcp/0', *flags],
                         stdout=out, stderr=err)
    procs.append(p)
    for _ in range(100):
        if 'Peer Addrs:' in open(f'{TMP}/{name}.out').read():
            return p, sock
        time.sleep(0.05)
    raise SystemExit(f'{name} did not start')

def answer(sock, body, n=1):
    """n messages, shown as 'OK', 'ERROR <msg>', 'DHT <type>', or 'closed'."""
    s = conn(sock)
    s.settimeout(15)
    s.sendall(frame(body))
    out = []
    try:
        for _ in range(n):
            r = read_msg(s)
            if out and out[0] == 'OK DHT BEGIN':  # the stream: DHTResponses
                out.append('DHT ' + ['BEGIN', 'VALUE', 'END'][r[1][0]])
            elif 2 in r and r[1] == [1] and isinstance(r[2][0], bytes):
                out.append('ERROR ' + parse(r[2][0])[1][0].decode('utf-8', 'replace'))
            elif 5 in r:  # Response with a DHTResponse
                out.append('OK DHT ' + ['BEGIN', 'VALUE', 'END'][parse(r[5][0])[1][0]])
            else:
                out.append('OK')
    except EOFError:
        out.append('closed')
    s.close()
    return out

try:
    _, peer = start(P2PD, 'peer', '-dhtServer')
    pid, paddrs = identify(peer)
    daemons = {n: start(b, n, '-dhtServer')[1] for n, b in (('p2pd', P2PD), ('cp2pd', CP2PD))}
    unknown = bytes.fromhex('00240801122011111111111111111111111111111111111111111111111111111111111111' + '11')
    cid = bytes.fromhex('01551220' + '22' * 32)
    dht = lambda t, *f: field(1, 0, 4) + field(5, 2, field(1, 0, t) + b''.join(f))
    cm = lambda *f: field(1, 0, 6) + field(6, 2, b''.join(f))
    # (name, request, messages to read, what must agree: 'text' the whole
    # answer, 'kind' OK/ERROR and the DHT shape only, or OURS: (p2pd, cp2pd))
    cases = [
        ('LIST_PEERS, none yet', field(1, 0, 5), 1, 'text'),
        ('CONNECT without its body', field(1, 0, 1), 1, 'text'),
        ('CONNECT, no address, unknown peer', field(1, 0, 1) + field(2, 2, field(1, 2, unknown)), 1, 'kind'),
        ('CONNECT, refused', field(1, 0, 1) + field(2, 2, field(1, 2, unknown) + field(2, 2, ma_tcp(1))), 1, 'kind'),
        ('CONNECT', field(1, 0, 1) + field(2, 2, field(1, 2, pid) + b''.join(field(2, 2, a) for a in paddrs)), 1, 'text'),
        ('CONNECT, connected, no address', field(1, 0, 1) + field(2, 2, field(1, 2, pid)), 1, 'text'),
        ('STREAM_OPEN without its body', field(1, 0, 2), 1, 'text'),
        ('STREAM_OPEN, a protocol it lacks', field(1, 0, 2) + field(3, 2, field(1, 2, pid) + field(2, 2, b'/nope/1')), 1, 'kind'),
        ('STREAM_OPEN /echo/1.0.0', field(1, 0, 2) + field(3, 2, field(1, 2, pid) + field(2, 2, b'/echo/1.0.0')), 1, 'text'),
        ('STREAM_HANDLER without its body', field(1, 0, 3), 1, 'text'),
        ('STREAM_HANDLER, no such socket', field(1, 0, 3) + field(4, 2, field(1, 2, ma_unix(TMP + '/none.sock')) + field(2, 2, b'/x/1')), 1,
         ('OK', 'ERROR no such handler socket: listen on it first')),
        ('DHT without its body', field(1, 0, 4), 1, 'text'),
        ('DHT FIND_PEER, connected', dht(0, field(2, 2, pid)), 1, 'text'),
        ('DHT FIND_PEERS_CONNECTED_TO_PEER', dht(1, field(2, 2, pid)), 1, 'text'),
        ('DHT GET_VALUE, none', dht(5, field(4, 2, b'/pk/missing'), field(7, 0, 5)), 1, 'text'),
        ('DHT SEARCH_VALUE, none', dht(6, field(4, 2, b'/pk/missing'), field(7, 0, 5)), 2, 'text'),
        ('DHT GET_PUBLIC_KEY', dht(4, field(2, 2, pid)), 1, 'text'),
        ('DHT GET_CLOSEST_PEERS', dht(3, field(4, 2, b'abc')), 4, 'text'),
        ('DHT PROVIDE', dht(8, field(3, 2, cid)), 1, 'text'),
        ('DHT FIND_PROVIDERS, 1', dht(2, field(3, 2, cid), field(6, 0, 1), field(7, 0, 5)), 3, 'kind'),
        ('DHT PUT_VALUE, no value', dht(7, field(4, 2, b'/v/x')), 1, 'kind'),
        ('PUBSUB without -pubsub', field(1, 0, 8) + field(8, 2, field(1, 0, 0)), 1, 'text'),
        ('CONNMANAGER without its body', field(1, 0, 6), 1, 'text'),
        ('CONNMANAGER TAG_PEER, no tag', cm(field(1, 0, 0), field(2, 2, pid)), 1, 'text'),
        ('CONNMANAGER TAG_PEER, no weight', cm(field(1, 0, 0), field(2, 2, pid), field(3, 2, b't')), 1, 'text'),
        ('CONNMANAGER UNTAG_PEER', cm(field(1, 0, 1), field(2, 2, pid), field(3, 2, b't')), 1, 'text'),
        ('CONNMANAGER TRIM', cm(field(1, 0, 2)), 1, 'text'),
        ('DISCONNECT, not connected', field(1, 0, 7) + field(7, 2, field(1, 2, unknown)), 1, 'text'),
        ('PEERSTORE (newer than v0.9.2)', field(1, 0, 9) + field(9, 2, field(1, 0, 1) + field(2, 2, pid)), 1, ('closed', 'OK')),
        ('an unknown request type', field(1, 0, 42), 1, ('closed', 'ERROR unknown request type')),
        ('DISCONNECT', field(1, 0, 7) + field(7, 2, field(1, 2, pid)), 1, 'text'),
    ]
    bad = []
    for name, body, n, agree in cases:
        got = {d: ' | '.join(answer(s, body, n)) for d, s in daemons.items()}
        if isinstance(agree, tuple):
            ok = (got['p2pd'], got['cp2pd']) == agree
        elif agree == 'kind':
            ok = [a.split(' ')[0] + (' ' + a.split(' ')[-1] if 'DHT' in a else '') for a in got['p2pd'].split(' | ')] == \
                 [a.split(' ')[0] + (' ' + a.split(' ')[-1] if 'DHT' in a else '') for a in got['cp2pd'].split(' | ')]
        else:
            ok = got['p2pd'] == got['cp2pd']
        print(f"{'ok  ' if ok else 'FAIL'} {name}: p2pd {got['p2pd']}; cp2pd {got['cp2pd']}")
        if not ok:
            bad.append(name)

    # the timeout field: a dial to a listener that never speaks
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)
    other = unknown[:-1] + b'\x12'
    for d, s in daemons.items():
        t = time.time()
        got = answer(s, field(1, 0, 1) + field(2, 2, field(1, 2, other) + field(2, 2, ma_tcp(l.getsockname()[1])) + field(3, 0, 1)))
        took = time.time() - t
        print(f'{d}: CONNECT with a timeout of 1 s to a silent listener: {got[0]} after {took:.1f} s')
        if not (got[0].startswith('ERROR') and 'context deadline exceeded' in got[0] and took < 3):
            bad.append(f'{d}: timeout')

    # a DHT server names the DHT clients connected to it in FIND_NODE answers,
    # so that peers find them through it: each server alone with a client and
    # an asker that knows only the server
    for d, b in (('p2pd', P2PD), ('cp2pd', CP2PD)):
        _, server = start(b, f'{d}-server', '-dhtServer')
        _, client = start(P2PD, f'{d}-client', '-dhtClient')
        _, asker = start(P2PD, f'{d}-asker', '-dhtServer')
        sid, saddrs = identify(server)
        cpid, _ = identify(client)
        hello = field(1, 0, 1) + field(2, 2, field(1, 2, sid) + b''.join(field(2, 2, a) for a in saddrs))
        assert answer(client, hello) == ['OK'] and answer(asker, hello) == ['OK']
        time.sleep(1)  # identify: the asker puts the server in its table
        got = answer(asker, dht(0, field(2, 2, cpid), field(7, 0, 5)))
        print(f'{d} as the only DHT server the asker knows: FIND_PEER of a DHT client connected to it: {got[0]}')
        if got[0] != 'OK DHT VALUE':
            bad.append(f'{d}: FIND_NODE of its DHT client')

    # SIGUSR1: p2pd's diagnostics on stdout, the daemon lives on
    for d, (p, name) in {'p2pd': (procs[1], 'p2pd'), 'cp2pd': (procs[2], 'cp2pd')}.items():
        p.send_signal(signal.SIGUSR1)
        for _ in range(50):
            if 'Connections and streams (' in open(f'{TMP}/{name}.out').read():
                break
            time.sleep(0.1)
        alive = p.poll() is None
        out = open(f'{TMP}/{name}.out').read()
        print(f'{d}: SIGUSR1: {"alive" if alive else "gone"}, "DHT Routing Table:" {"DHT Routing Table:" in out}, "Connections and streams (" {"Connections and streams (" in out}')
        if not (alive and 'DHT Routing Table:' in out and 'Connections and streams (' in out):
            bad.append(f'{d}: SIGUSR1')
    if bad:
        raise SystemExit('differ: ' + ', '.join(bad))
finally:
    for p in procs:
        p.kill()
PY
echo PASS
