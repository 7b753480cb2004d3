"""A minimal go-libp2p-daemon control client for the cp2pd tests: protobuf
wire format by hand (no generated code), varint-framed requests over a unix
or tcp control socket."""
import socket


def varint(n):
    out = b''
    while True:
        b = n & 0x7f
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def rd(b, i):
    n = s = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return n, i


def field(num, wt, payload):
    """wt 0: payload is an int; wt 2: bytes."""
    return varint(num << 3 | wt) + (varint(payload) if wt == 0 else varint(len(payload)) + payload)


def parse(b):
    """A message as {field number: [values]}; bytes for length-delimited fields."""
    i, out = 0, {}
    while i < len(b):
        k, i = rd(b, i)
        num, wt = k >> 3, k & 7
        if wt == 0:
            v, i = rd(b, i)
        else:
            n, i = rd(b, i)
            v = b[i:i + n]
            i += n
        out.setdefault(num, []).append(v)
    return out


def frame(m):
    return varint(len(m)) + m


def conn(where):
    """where: a tcp port on 127.0.0.1 (int) or a unix socket path (str)."""
    if isinstance(where, str):
        s = socket.socket(socket.AF_UNIX)
        s.connect(where)
    else:
        s = socket.create_connection(('127.0.0.1', where))
    s.settimeout(20)
    return s


_pending = {}


def read_msg(s):
    buf = _pending.pop(s, b'')
    while True:
        try:
            n, i = rd(buf, 0)
        except IndexError:
            n = None
        if n is not None and len(buf) - i >= n:
            _pending[s] = buf[i + n:]
            return parse(buf[i:i + n])
        c = s.recv(65536)
        if not c:
            raise EOFError('closed')
        buf += c


def request(where, body):
    """One request on its own connection; the parsed response."""
    s = conn(where)
    s.sendall(frame(body))
    r = read_msg(s)
    s.close()
    return r


def identify(where):
    """(peer id bytes, [address bytes])"""
    r = request(where, field(1, 0, 0))
    assert r[1] == [0], r
    info = parse(r[4][0])
    return info[1][0], info.get(2, [])


def connect(where, peer, addrs):
    return request(where, field(1, 0, 1) + field(2, 2, field(1, 2, peer) +
                                                 b''.join(field(2, 2, a) for a in addrs)))


def peer_addrs(where, peer):
    """The addresses of peer in the daemon's peerstore, in its order."""
    r = request(where, field(1, 0, 9) + field(9, 2, field(1, 0, 2) + field(2, 2, peer)))
    assert r[1] == [0], r
    info = parse(r[8][0]).get(1)
    return parse(info[0]).get(2, []) if info else []


def list_peers(where):
    r = request(where, field(1, 0, 5))
    assert r[1] == [0], r
    return [parse(p)[1][0] for p in r.get(6, [])]


def tag_peer(where, peer, tag, weight):
    cm = field(1, 0, 0) + field(2, 2, peer) + field(3, 2, tag.encode()) + field(4, 0, weight)
    return request(where, field(1, 0, 6) + field(6, 2, cm))


def ma_tcp(port, ip='127.0.0.1'):
    """/ip4/<ip>/tcp/<port> in binary."""
    return b'\x04' + socket.inet_aton(ip) + b'\x06' + port.to_bytes(2, 'big')


def ma_unix(path):
    """/unix<path> in binary (the value keeps its leading slash)."""
    p = path.encode()
    return varint(400) + varint(len(p)) + p


def error_msg(r):
    """The message of an ERROR response, else None."""
    return parse(r[2][0])[1][0].decode() if r[1] == [1] else None


def stream_handler(where, addr, *protos):
    """STREAM_HANDLER for protos at addr (binary multiaddr); the response."""
    sh = field(1, 2, addr) + b''.join(field(2, 2, p.encode()) for p in protos)
    return request(where, field(1, 0, 3) + field(4, 2, sh))


def stream_open(where, peer, proto):
    """STREAM_OPEN on a connection of its own: (socket, response). On OK the
    socket is the stream."""
    s = conn(where)
    s.sendall(frame(field(1, 0, 2) + field(3, 2, field(1, 2, peer) + field(2, 2, proto.encode()))))
    return s, read_msg(s)
