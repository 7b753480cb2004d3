#!/usr/bin/env bash
# ctest: run-serial
# Gossipsub at scale (tests/scale/pubsub_scale.c): 100 cp2p nodes in one
# process, a random topology of degree about 6 over loopback TCP (noise,
# yamux); 1,000 messages from random publishers at 200 a second must reach
# every one of the 100 subscribers. The figures it prints (latency p50/p99,
# duplicates and bytes per delivered message) are reported, not asserted.
source "$(dirname "$0")/lib/common.sh"
small_quarantine
SIM=$BUILD/tests/pubsub_scale
[ -x "$SIM" ] || fail "$SIM not built"
ulimit -n 4096 2>/dev/null || true
"$SIM" --help | grep -q -- '--nodes' || fail "pubsub_scale --help"
rc=0; "$SIM" --nodes 1 >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "pubsub_scale --nodes 1: rc $rc, 2 expected"
rc=0
timeout 280 "$SIM" --nodes "${PUBSUB_NODES:-100}" --degree 6 --messages "${PUBSUB_MESSAGES:-1000}" \
    --rate 200 --seed "${PUBSUB_SEED:-7}" --timeout 60 >"$TMP/sim.out" 2>"$TMP/sim.err" || rc=$?
cat "$TMP/sim.out"
[ $rc = 0 ] || { cat "$TMP/sim.err"; fail "not every message reached every node (rc $rc)"; }
grep -q "delivered 100000 of 100000" "$TMP/sim.out" || [ -n "${PUBSUB_NODES:-}${PUBSUB_MESSAGES:-}" ] ||
    fail "the counts are not the ones asked for"
echo PASS
