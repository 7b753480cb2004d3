#!/usr/bin/env bash
# Store quotas and open keys (issue #14). One peer floods a cp2p dht node
# with records: past its quota they are refused and counted, while another
# peer's records are still taken and everything stored is still served.
# Keys without a namespace belong to nobody: `cp2p dht` takes them (the
# original demo's behaviour), cp2pd refuses them unless -dhtOpenKeys.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
Q=40 # the victim's records per peer

MPORT=$(free_port)
mkfifo "$TMP/victim.in"
"$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --records-per-peer $Q --metrics 127.0.0.1:$MPORT \
    --serve <"$TMP/victim.in" >"$TMP/victim.out" 2>"$TMP/victim.err" &
PIDS+=($!)
exec 3>"$TMP/victim.in"
VICTIM=$(wait_line "$TMP/victim.out" '^Listening on ' | cut -d' ' -f3)
SHOW_ON_FAIL=(victim.err flood.err honest.err)

echo "== one peer floods"
for i in $(seq 1 200); do echo "PUT flood$i x"; done |
    "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$VICTIM" --quorum 1 \
        >"$TMP/flood.out" 2>"$TMP/flood.err" || true
ok=$(grep -c '^Successfully put record' "$TMP/flood.out" || true)
refused=$(grep -c '^Failed to put record .*refused' "$TMP/flood.out" || true)
echo "flooder: $ok stored, $refused refused"
[ "$ok" = $Q ] || fail "the flooder stored $ok records, its quota is $Q"
[ "$refused" = $((200 - Q)) ] || fail "$refused of the flood refused"

echo "== another peer still stores, and the stored records are served"
printf 'PUT honest fine\nGET honest\nGET flood1\n' |
    "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$VICTIM" --quorum 1 \
        >"$TMP/honest.out" 2>"$TMP/honest.err" || fail "the honest peer failed"
grep -q '^Successfully put record "honest"' "$TMP/honest.out" || fail "the honest put was refused"
grep -q 'fine' "$TMP/honest.out" || fail "the honest record is not served"
grep -q '"flood1".*x\|x$' "$TMP/honest.out" || fail "a record stored before the flood is not served"
curl -s "http://127.0.0.1:$MPORT/metrics" >"$TMP/metrics" || fail "no /metrics"
n=$(awk '/^cp2p_dht_quota_refused_total/ {print $2}' "$TMP/metrics")
[ "${n:-0}" -ge $((200 - Q)) ] || fail "cp2p_dht_quota_refused_total is ${n:-none}"
lines=$(wc -l <"$TMP/victim.err")
echo "victim logged $lines lines for the flood"

echo "== open keys: cp2pd refuses them unless -dhtOpenKeys"
start_cp2pd closed -dht
CLOSED=$(sed -n 's#^\(/ip4/127\.0\.0\.1/tcp/[0-9]*\)$#\1#p' "$TMP/closed.out" | head -1)/p2p/$ID
printf 'PUT plain v\nPUT /test/x v\n' | "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 \
    --bootstrap "$CLOSED" --quorum 1 --namespace test >"$TMP/closed.client" 2>&1 || true
grep -q '^Failed to put record "plain": refused' "$TMP/closed.client" ||
    { cat "$TMP/closed.client"; fail "cp2pd took a key without a namespace"; }
start_cp2pd open -dht -dhtOpenKeys
OPEN=$(sed -n 's#^\(/ip4/127\.0\.0\.1/tcp/[0-9]*\)$#\1#p' "$TMP/open.out" | head -1)/p2p/$ID
printf 'PUT plain v\n' | "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$OPEN" \
    --quorum 1 >"$TMP/open.client" 2>&1 || true
grep -q '^Successfully put record "plain"' "$TMP/open.client" ||
    { cat "$TMP/open.client"; fail "cp2pd -dhtOpenKeys refused a key without a namespace"; }
"$CP2P" dht --help | grep -q -- '--no-open-keys' || fail "--help does not say how to refuse open keys"
echo "ok: quotas hold, open keys are a choice"
