#!/usr/bin/env bash
# Address poisoning through the DHT (issue #14): a rogue Kademlia server, the
# only bootstrap peer of a cp2pd, answers every lookup with a victim's peer ID
# at 32 addresses where nobody listens. cp2pd holds at most a few of them,
# apart and last, passes none on, and still connects to the victim (a js-libp2p
# peer) as soon as it is given its real address.
source "$(dirname "$0")/../interop/lib.sh" "$1"
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"

start_js victim
VICTIM=$JS_ADDR VICTIM_ID=$JS_ID

"${HOSTILE[@]}" kad-poison 127.0.0.1 0 30 "$VICTIM_ID" 32 >"$TMP/rogue.out" 2>"$TMP/rogue.err" &
PIDS+=($!)
ROGUE=$(wait_line "$TMP/rogue.out" '^listening ' | cut -d' ' -f2)

start_cp2pd d -dht -bootstrap -bootstrapPeers "$ROGUE"
SHOW_ON_FAIL=(d.err rogue.err victim.err)

PYTHONPATH=$(dirname "$0"):$(dirname "$0")/lib python3 - "$CTL" "$VICTIM" <<'PY' || fail "the poisoning worked"
import sys, time
from p2pd_client import connect, peer_addrs
from hostile import unbase58
ctl, victim = int(sys.argv[1]), sys.argv[2]
vid = unbase58(victim.split('/p2p/')[1])
host, port = victim.split('/')[2], int(victim.split('/')[4])
real = b'\x04' + bytes(map(int, host.split('.'))) + b'\x06' + port.to_bytes(2, 'big')

# The rogue's answers arrive (bootstrap and its retries ask it).
deadline = time.time() + 10
while time.time() < deadline and not peer_addrs(ctl, vid):
    time.sleep(0.2)
held = peer_addrs(ctl, vid)
assert held, 'the rogue was never asked'
assert len(held) <= 8, f'{len(held)} third-party addresses held'
print('held', len(held), 'of the rogue\'s 32 addresses', flush=True)

t0 = time.time()
r = connect(ctl, vid, [real])
assert r[1] == [0], f'connect failed: {r}'
print(f'connected to the victim in {time.time() - t0:.2f} s', flush=True)
held = peer_addrs(ctl, vid)
assert held[0] == real, 'the confirmed address is not first'
PY
echo "ok: poisoned addresses held apart, the victim reached"
