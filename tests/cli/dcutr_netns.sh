#!/usr/bin/env bash
# ctest: run-serial
# DCUtR hole punching (libp2p specs relay/DCUtR.md) through stateful
# firewalls: three network namespaces on one bridge (the test's own
# 7.0.1.0/24, public-looking, as go-libp2p and js-libp2p punch only with
# public addresses), a cp2p relay, and peers A and B whose firewalls drop
# every new inbound connection, so the spec's unilateral upgrade (B dialling
# A straight away) fails and only a simultaneous open from the listen ports
# gets through: each side's SYN opens its own firewall for the other's.
# Asserts the final connection is direct (the peer's listen address, no
# /p2p-circuit) on both sides and pings go on over it: cp2p with cp2p, and
# with go-libp2p (--hole-punching; relay-listen --hole-punching) as A and as B.
# js-libp2p (@libp2p/dcutr, tests/interop/relay.mjs) dials from any port,
# never from its listen port, so no SYN of its passes a firewall: as B it
# runs without one, and cp2p's dial from A's listen port, through A's
# firewall, reaches js's listener.
INTEROP_PEERS="go js"
. "$(dirname "$0")/../interop/lib.sh"
. "$(dirname "$0")/lib/netns.sh"
SHOW_ON_FAIL=(all)
P=dcn$$
netns_link $P 7.0.1 3
RELAY_NS=${P}h0 B_NS=${P}h1 A_NS=${P}h2
for ns in $A_NS $B_NS; do
    ip netns exec $ns nft -f - <<'NFT'
table inet fw {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        tcp flags syn ct state new drop
    }
}
NFT
done
n=0

ip netns exec $RELAY_NS "$CP2P" relay --listen /ip4/7.0.1.1/tcp/0 --limit-data 1000000000 >"$TMP/relay.out" 2>"$TMP/relay.err" &
PIDS+=($!)
RELAY=$(wait_line "$TMP/relay.out" '^Listening on /ip4/7.0.1.1/' | cut -d' ' -f3)

b_cp2p() {
    ip netns exec $B_NS "$CP2P" ping --listen /ip4/7.0.1.2/tcp/0 --relay "$RELAY" --timeout 1 \
        >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
    PIDS+=($!)
    CIRCUIT=$(wait_line "$TMP/b$n.out" '^Listening on .*/p2p-circuit/p2p/' 15 | cut -d' ' -f3)
    B_TCP=$(grep -m1 '^Listening on /ip4/7.0.1.2/tcp/' "$TMP/b$n.out" | cut -d' ' -f3)
}

echo "== B cp2p, A cp2p"
n=$((n + 1))
b_cp2p
timeout 60 ip netns exec $A_NS "$CP2P" ping --listen /ip4/7.0.1.3/tcp/0 --count 10 --interval 0.5 "$CIRCUIT" \
    >"$TMP/a$n.out" 2>"$TMP/a$n.err" || fail "cp2p A: the pings did not all come back"
grep -q '^relayed connection .*/p2p-circuit$' "$TMP/a$n.out" || fail "cp2p A: the first connection is not relayed"
grep -qx "direct connection $B_TCP" "$TMP/a$n.out" || fail "cp2p A: no direct connection to $B_TCP"
after=$(sed -n '/^direct connection/,$p' "$TMP/a$n.out" | grep -c '^ping ' || true)
[ "$after" -ge 3 ] || fail "cp2p A: $after pings after the punch, 3 or more expected"
A_TCP=$(grep -m1 '^Listening on /ip4/7.0.1.3/tcp/' "$TMP/a$n.out" | cut -d' ' -f3)
wait_line "$TMP/b$n.out" "^direct connection $A_TCP$" 5 >/dev/null || fail "cp2p B: no direct connection to $A_TCP"

echo "== B cp2p, A go"
n=$((n + 1))
b_cp2p
# go pings back to back on its first stream, the relayed one, for a few
# seconds (the relay lets that much data through); that stream dies with the
# circuit after the punch's grace period.
timeout 60 ip netns exec $A_NS "$GO_PEER" --listen /ip4/7.0.1.3/tcp/0 --hole-punching --relay-client \
    --dial "$CIRCUIT" --ping 40000 >"$TMP/a$n.out" 2>"$TMP/a$n.err" || true
A_ID=$(grep -m1 '^peer-id ' "$TMP/a$n.out" | cut -d' ' -f2)
line=$(wait_line "$TMP/b$n.out" "^direct connection .*/p2p/$A_ID$" 5)
# from go's listen port: go-libp2p reuses it, and only that gets through
A_TCP=$(grep -m1 '^listening /ip4/7.0.1.3/tcp/' "$TMP/a$n.out" | cut -d' ' -f2)
[ "$line" = "direct connection $A_TCP" ] || fail "cp2p B: $line, not from A's listen address $A_TCP"
grep -q "^connected ${B_TCP##*/p2p/} transport=tcp " "$TMP/a$n.out" || fail "go A: no direct connection"

echo "== B go, A cp2p"
n=$((n + 1))
ip netns exec $B_NS "$GO_PEER" relay-listen --relay "$RELAY" --listen /ip4/7.0.1.2/tcp/0 --hole-punching \
    >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
PIDS+=($!)
CIRCUIT=$(wait_line "$TMP/b$n.out" '^listening .*/p2p-circuit/p2p/' 15 | cut -d' ' -f2)
B_TCP=$(grep -m1 '^listening /ip4/7.0.1.2/tcp/' "$TMP/b$n.out" | cut -d' ' -f2)
# go starts its hole puncher once it sees a public address of its own (it
# looks after 250 ms, then backs off): a relayed connection before that is
# never punched.
sleep 1.5
# go's B first dials A straight away and gives up after 10 s (its
# directDialTimeout): the pings last longer than that.
timeout 60 ip netns exec $A_NS "$CP2P" ping --listen /ip4/7.0.1.3/tcp/0 --count 40 --interval 0.5 "$CIRCUIT" \
    >"$TMP/a$n.out" 2>"$TMP/a$n.err" || fail "cp2p A: the pings did not all come back"
grep -qx "direct connection $B_TCP" "$TMP/a$n.out" || fail "cp2p A: no direct connection to $B_TCP"
A_ID=$(grep -m1 '^Local peer id: ' "$TMP/a$n.out" | cut -d' ' -f4)
# (go says transport=tcp for the relayed connection too: the second one is the punched one)
[ "$(grep -c "^connected $A_ID " "$TMP/b$n.out")" -ge 2 ] || fail "go B: no direct connection"
after=$(sed -n '/^direct connection/,$p' "$TMP/a$n.out" | grep -c '^ping ' || true)
[ "$after" -ge 3 ] || fail "cp2p A: $after pings after the punch, 3 or more expected"

echo "== B js (no firewall), A cp2p"
n=$((n + 1))
ip netns exec $B_NS nft flush ruleset
(cd "$INTEROP" && exec ip netns exec $B_NS node --import ./polyfill.mjs relay.mjs listen --relay "$RELAY" \
    --tcp /ip4/7.0.1.2/tcp/4002 --dcutr) >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
PIDS+=($!)
CIRCUIT=$(wait_line "$TMP/b$n.out" '^listening .*/p2p-circuit/p2p/' 20 | cut -d' ' -f2)
B_TCP=$(wait_line "$TMP/b$n.out" '^listening /ip4/7.0.1.2/tcp/' 5 | cut -d' ' -f2)
timeout 60 ip netns exec $A_NS "$CP2P" ping --listen /ip4/7.0.1.3/tcp/0 --count 30 --interval 0.5 "$CIRCUIT" \
    >"$TMP/a$n.out" 2>"$TMP/a$n.err" || fail "cp2p A: the pings did not all come back"
grep -qx "direct connection $B_TCP" "$TMP/a$n.out" || fail "cp2p A: no direct connection to $B_TCP"
A_TCP=$(grep -m1 '^Listening on /ip4/7.0.1.3/tcp/' "$TMP/a$n.out" | cut -d' ' -f3)
A_ID=${A_TCP##*/p2p/}
grep -q "^connected $A_ID limited=false addr=${A_TCP%/p2p/*}" "$TMP/b$n.out" || fail "js B: no direct connection from A's listen port"
after=$(sed -n '/^direct connection/,$p' "$TMP/a$n.out" | grep -c '^ping ' || true)
[ "$after" -ge 3 ] || fail "cp2p A: $after pings after the punch, 3 or more expected"

echo PASS
