#!/usr/bin/env bash
# Private networks (pnet PSK v1): cp2p, js-libp2p (@libp2p/pnet) and
# go-libp2p with the same swarm.key ping, identify and echo 1 MiB each way;
# with another key, or none, nobody connects, and a cp2p listener says why
# in its log while it goes on serving its own network. Also: keygen --psk
# and bad key files.
INTEROP_PEERS="js go"
. "$(dirname "$0")/../interop/lib.sh"

"$CP2P" keygen --psk --out "$TMP/k1" || fail "keygen --psk"
"$CP2P" keygen --psk --out "$TMP/k2" || fail "keygen --psk"
[ "$(stat -c %a "$TMP/k1")" = 600 ] || fail "the key file is not mode 0600"
[ "$(head -2 "$TMP/k1" | tr '\n' ' ')" = "/key/swarm/psk/1.0.0/ /base16/ " ] || fail "key file header"
cmp -s "$TMP/k1" "$TMP/k2" && fail "two generated keys are equal"

# A cp2p listener in network k1, serving echo.
start_cp2p c1 --psk "$TMP/k1" --echo

echo "== cp2p with the same key: ping, identify, echo"
"$CP2P" ping --psk "$TMP/k1" --count 2 --interval 0.1 --verbose --echo-streams 1 "$CP2P_ADDR" \
    >"$TMP/cc.out" 2>"$TMP/cc.err" || { show cc.out cc.err c1.err; fail "cp2p to cp2p in one pnet"; }
[ "$(grep -c "^ping $CP2P_ID rtt=" "$TMP/cc.out")" = 2 ] || { show cc.out; fail "cp2p: no pings"; }
grep -q "^echo ok" "$TMP/cc.out" || { show cc.out; fail "cp2p: no echo"; }

echo "== js with the same key dials cp2p, and cp2p dials js"
js --dial "$CP2P_ADDR" --psk "$TMP/k1" --ping 2 --echo-streams 1 --wait-identify \
    >"$TMP/jc.out" 2>"$TMP/jc.err" || { show jc.out jc.err c1.err; fail "js to cp2p in one pnet"; }
[ "$(grep -c '^ping rtt=' "$TMP/jc.out")" = 2 ] && grep -q '^echo ok streams=1 bytes=1048576' "$TMP/jc.out" ||
    { show jc.out; fail "js to cp2p: pings or echo missing"; }
grep -q "^identified $CP2P_ID agent=cp2p" "$TMP/jc.out" || { show jc.out; fail "js did not identify cp2p"; }
start_js j1 --psk "$TMP/k1"
"$CP2P" ping --psk "$TMP/k1" --count 2 --interval 0.1 --echo-streams 1 "$JS_ADDR" \
    >"$TMP/cj.out" 2>"$TMP/cj.err" || { show cj.out cj.err j1.err; fail "cp2p to js in one pnet"; }
[ "$(grep -c "^ping $JS_ID rtt=" "$TMP/cj.out")" = 2 ] && grep -q "^echo ok" "$TMP/cj.out" ||
    { show cj.out; fail "cp2p to js: pings or echo missing"; }

echo "== go with the same key dials cp2p, and cp2p dials go"
"$GO_PEER" --dial "$CP2P_ADDR" --psk "$TMP/k1" --ping 2 --echo-streams 1 --wait-identify \
    >"$TMP/gc.out" 2>&1 || { show gc.out c1.err; fail "go to cp2p in one pnet"; }
[ "$(grep -c '^ping rtt=' "$TMP/gc.out")" = 2 ] && grep -q '^echo ok' "$TMP/gc.out" ||
    { show gc.out; fail "go to cp2p: pings or echo missing"; }
"$GO_PEER" --listen /ip4/127.0.0.1/tcp/0 --psk "$TMP/k1" >"$TMP/g1.out" 2>&1 &
PIDS+=($!)
GO_ADDR=$(wait_line "$TMP/g1.out" '^listening /ip4/127.0.0.1/tcp/' 15 | cut -d' ' -f2)
"$CP2P" ping --psk "$TMP/k1" --count 2 --interval 0.1 --echo-streams 1 "$GO_ADDR" \
    >"$TMP/cg.out" 2>"$TMP/cg.err" || { show cg.out cg.err g1.out; fail "cp2p to go in one pnet"; }
[ "$(grep -c "^ping ${GO_ADDR##*/p2p/} rtt=" "$TMP/cg.out")" = 2 ] && grep -q "^echo ok" "$TMP/cg.out" ||
    { show cg.out; fail "cp2p to go: pings or echo missing"; }

echo "== another key, or none: no connection, either way"
for who in "cp2p k2" "cp2p none" "js k2" "js none" "go k2" "go none"; do
    set -- $who
    key=(); [ "$2" = k2 ] && key=(--psk "$TMP/k2")
    rc=0
    case $1 in
    cp2p) timeout 30 "$CP2P" ping "${key[@]}" --count 1 --timeout 5 "$CP2P_ADDR" >"$TMP/x.out" 2>&1 || rc=$? ;;
    js) timeout 30 bash -c "cd '$INTEROP' && exec node --import ./polyfill.mjs peer.mjs --dial '$CP2P_ADDR' --ping 1 ${key[*]}" \
            >"$TMP/x.out" 2>&1 || rc=$? ;;
    go) timeout 30 "$GO_PEER" --dial "$CP2P_ADDR" --ping 1 "${key[@]}" >"$TMP/x.out" 2>&1 || rc=$? ;;
    esac
    [ $rc -ne 0 ] || { show x.out; fail "$who: connected to a network it is not in"; }
    grep -q '^ping' "$TMP/x.out" && { show x.out; fail "$who: got a ping reply through a pnet it is not in"; }
done
for far in "$JS_ADDR" "$GO_ADDR"; do
    for key in k2 none; do
        args=(); [ $key = k2 ] && args=(--psk "$TMP/k2")
        rc=0; timeout 30 "$CP2P" ping "${args[@]}" --count 1 --timeout 5 "$far" >"$TMP/y.out" 2>&1 || rc=$?
        [ $rc -ne 0 ] || { show y.out; fail "cp2p ($key) reached $far in network k1"; }
    done
done
grep -q 'a peer outside the private network?' "$TMP/c1.err" || { show c1.err; fail "the listener did not say why it refused"; }
# ...and it still serves its own network.
"$CP2P" ping --psk "$TMP/k1" --count 1 "$CP2P_ADDR" >"$TMP/again.out" 2>&1 || { show again.out; fail "the listener stopped serving k1"; }

echo "== bad key files"
printf '/key/swarm/psk/1.0.0/\n/base16/\n1234\n' >"$TMP/short"
for bad in "$TMP/short" "$TMP/missing"; do
    rc=0; "$CP2P" ping --psk "$bad" --listen /ip4/127.0.0.1/tcp/0 >"$TMP/b.out" 2>"$TMP/b.err" || rc=$?
    [ $rc = 1 ] && grep -q 'cannot read private network key' "$TMP/b.err" || { show b.err; fail "bad key $bad: rc $rc"; }
done
rc=0; LIBP2P_FORCE_PNET=1 "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 >"$TMP/f.out" 2>"$TMP/f.err" || rc=$?
[ $rc = 1 ] && grep -q 'LIBP2P_FORCE_PNET' "$TMP/f.err" || { show f.err; fail "LIBP2P_FORCE_PNET=1 without a key: rc $rc"; }
echo PASS
