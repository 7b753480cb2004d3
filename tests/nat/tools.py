#!/usr/bin/env python3
"""Helpers of the NAT test network (net.sh), run inside its namespaces.

  tools.py stund              STUN binding server (RFC 5389) on UDP 3478: what
                              miniupnpd asks to learn its external address
  tools.py whoami             TCP server on port 7000 that writes back the
                              client's address as "ip:port\n"
  tools.py probe IP...        connect from one fixed local port to each IP's
                              whoami and print what each saw, one per line
  tools.py natpmp-silent      answer nothing on UDP 5351 (a gateway that
                              says nothing) and count what arrives
"""
import socket
import struct
import sys

MAGIC = 0x2112A442


def stund():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 3478))
    print("stun ready", flush=True)
    while True:
        data, (ip, port) = s.recvfrom(2048)
        if len(data) < 20:
            continue
        mtype, _, magic = struct.unpack(">HHI", data[:8])
        if mtype != 0x0001 or magic != MAGIC:
            continue
        tid = data[8:20]
        xport = port ^ (MAGIC >> 16)
        xip = struct.unpack(">I", socket.inet_aton(ip))[0] ^ MAGIC
        attr = struct.pack(">HHBBHI", 0x0020, 8, 0, 1, xport, xip)
        s.sendto(struct.pack(">HHI", 0x0101, len(attr), MAGIC) + tid + attr, (ip, port))


def whoami():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000))
    s.listen(16)
    print("whoami ready", flush=True)
    while True:
        c, (ip, port) = s.accept()
        try:
            c.sendall(b"%s:%d\n" % (ip.encode(), port))
        finally:
            c.close()


def probe(ips):
    local = None
    for ip in ips:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        c.bind(("0.0.0.0", local or 0))
        local = c.getsockname()[1]
        c.settimeout(5)
        c.connect((ip, 7000))
        seen = c.makefile().readline().strip()
        print("local=%d seen-by %s %s" % (local, ip, seen), flush=True)
        c.close()


def natpmp_silent():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 5351))
    print("silent ready", flush=True)
    n = 0
    while True:
        s.recvfrom(2048)
        n += 1
        print("natpmp request %d" % n, flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "stund":
        stund()
    elif cmd == "whoami":
        whoami()
    elif cmd == "probe":
        probe(sys.argv[2:])
    elif cmd == "natpmp-silent":
        natpmp_silent()
    else:
        sys.exit(__doc__)
