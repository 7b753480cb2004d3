#!/usr/bin/env bash
# scripts/demo.sh as a smoke test: every part runs and says ok, one part
# runs alone with --only, --help lists the parts, a bad part is a usage error.
source "$(dirname "$0")/lib/common.sh"
DEMO=$(cd "$(dirname "$0")/../.." && pwd)/scripts/demo.sh
SHOW_ON_FAIL=(demo.out)
timeout 120 bash "$DEMO" --build "$BUILD" >"$TMP/demo.out" 2>&1 || fail "the demo failed"
for part in ping mdns dht; do
    grep -qx "$part: ok" "$TMP/demo.out" || fail "part $part did not say ok"
done
grep -q '^  \[d3\] Got record "k1" "hello from the first peer"$' "$TMP/demo.out" || fail "the dht part did not show the record read on the third peer"
timeout 60 bash "$DEMO" --build "$BUILD" --only dht >"$TMP/demo.out" 2>&1 || fail "--only dht failed"
[ "$(sed -n '/^== summary/,$p' "$TMP/demo.out" | tail -n +2)" = "dht: ok" ] || fail "--only dht ran other parts"
bash "$DEMO" --help | grep -q -- '--only PART' || fail "--help does not list --only"
rc=0; bash "$DEMO" --build "$BUILD" --only nothing >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "a bad part exited $rc, not 2"
echo PASS
