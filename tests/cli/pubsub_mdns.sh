#!/usr/bin/env bash
# The chat of rust-libp2p's example with no address typed: two `cp2p pubsub
# --mdns --topic chat` in two network namespaces on one link find each other
# by mDNS, connect, and each prints the other's line.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
P=cp2pps$$
source "$(dirname "$0")/lib/netns.sh"
[ -x "$CP2P" ] || fail "$CP2P not built"
netns_link "$P" 10.83.0 2

mkfifo "$TMP/a.in" "$TMP/b.in"
for x in a b; do
    i=0; [ $x = b ] && i=1
    ip netns exec ${P}h$i "$CP2P" pubsub --mdns --topic chat <"$TMP/$x.in" >"$TMP/$x.out" 2>"$TMP/$x.err" &
    PIDS+=($!)
done
exec 7>"$TMP/a.in" 8>"$TMP/b.in"
A_ID=$(wait_line "$TMP/a.out" '^Local peer id: ' | cut -d' ' -f4)
B_ID=$(wait_line "$TMP/b.out" '^Local peer id: ' | cut -d' ' -f4)
wait_line "$TMP/a.out" "^subscribed $B_ID chat\$" 20 >/dev/null || { show all; fail "a never met b"; }
wait_line "$TMP/b.out" "^subscribed $A_ID chat\$" 20 >/dev/null || { show all; fail "b never met a"; }
sleep 1.5 # a heartbeat: the mesh forms
echo "hello from a" >&7
echo "hello from b" >&8
wait_line "$TMP/b.out" "^Got message: 'hello from a' with id: [0-9a-f]+ from peer: $A_ID\$" 10 >/dev/null ||
    { show all; fail "b did not get a's line"; }
wait_line "$TMP/a.out" "^Got message: 'hello from b' with id: [0-9a-f]+ from peer: $B_ID\$" 10 >/dev/null ||
    { show all; fail "a did not get b's line"; }
exec 7>&- 8>&-
echo PASS
