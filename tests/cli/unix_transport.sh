# The Unix domain socket transport (/unix/<path>): cp2p ping and the DHT over
# it; a socket file left by a host that was killed is taken over, one still
# listened on is not; a path longer than the kernel's limit is a clear error.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
SHOW_ON_FAIL=(all)
S=$TMP/s # socket paths stay short: sun_path holds 107 bytes

# ping
"$CP2P" ping --listen "/unix$S.ping" >"$TMP/p.out" 2>"$TMP/p.err" &
PIDS+=($!)
P_PID=$!
P=$(wait_line "$TMP/p.out" "^Listening on /unix$S.ping/p2p/" 10 | cut -d' ' -f3)
[ -S "$S.ping" ] || fail "no socket file at $S.ping"
timeout 20 "$CP2P" ping --count 3 "$P" >"$TMP/q.out" 2>"$TMP/q.err" || fail "ping over /unix exited with $?"
[ "$(grep -c "^ping ${P##*/p2p/} rtt=" "$TMP/q.out")" -eq 3 ] || fail "not 3 pings over /unix"

# A second listener on a live socket is refused; the first one still answers.
rc=0
timeout 10 "$CP2P" ping --listen "/unix$S.ping" >"$TMP/dup.out" 2>"$TMP/dup.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second listener on a live socket: exit $rc"
grep -qi "in use\|exists" "$TMP/dup.err" || fail "no clear error for a socket in use"
timeout 20 "$CP2P" ping --count 1 "$P" >"$TMP/q2.out" 2>&1 || fail "the first listener stopped answering"

# Closed on purpose: the file goes. Killed: the file stays, and the next
# listener takes it over.
kill -TERM "$P_PID"; wait "$P_PID" || true
[ ! -e "$S.ping" ] || fail "a closed listener left its socket file"
"$CP2P" ping --listen "/unix$S.ping" >"$TMP/k.out" 2>&1 &
K_PID=$!
wait_line "$TMP/k.out" "^Listening on /unix" 10 >/dev/null
kill -KILL "$K_PID"; wait "$K_PID" 2>/dev/null || true
[ -S "$S.ping" ] || fail "a killed listener's socket file is gone (the takeover is not tested)"
"$CP2P" ping --listen "/unix$S.ping" >"$TMP/r.out" 2>"$TMP/r.err" &
PIDS+=($!)
R=$(wait_line "$TMP/r.out" "^Listening on /unix$S.ping/p2p/" 10 | cut -d' ' -f3)
timeout 20 "$CP2P" ping --count 1 "$R" >"$TMP/q3.out" 2>&1 || fail "ping after taking over a stale socket"

# Too long a path, and a directory that does not exist.
long=/tmp/$(printf 'x%.0s' $(seq 1 120))
rc=0
timeout 10 "$CP2P" ping --listen "/unix$long" >"$TMP/long.out" 2>"$TMP/long.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a 125-byte socket path: exit $rc"
grep -q "at most 107" "$TMP/long.err" || fail "no clear error for a long socket path"
rc=0
timeout 10 "$CP2P" ping --count 1 "/unix$TMP/nowhere/x.sock/p2p/${R##*/p2p/}" >"$TMP/nw.out" 2>"$TMP/nw.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a dial to a missing socket: exit $rc"
grep -q "unreachable" "$TMP/nw.err" || fail "no clear error for a missing socket"

# The DHT: A serves, B puts and provides, C (client) reads both and finds B's
# /unix address through the DHT.
CID=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy
"$CP2P" dht --listen "/unix$S.a" --serve </dev/null >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
A=$(wait_line "$TMP/a.out" "^Listening on /unix$S.a/p2p/" 10 | cut -d' ' -f3)
mkfifo "$TMP/b.in"
"$CP2P" dht --listen "/unix$S.b" --bootstrap "$A" --quorum 1 <"$TMP/b.in" >"$TMP/b.out" 2>"$TMP/b.err" &
PIDS+=($!)
exec 3>"$TMP/b.in"
printf '%s\n' "PUT greeting hello over unix" "PUT_PROVIDER $CID" >&3
wait_line "$TMP/b.out" '^Successfully put provider record' 30 >/dev/null
grep -qF 'Successfully put record "greeting"' "$TMP/b.out" || fail "B's PUT over /unix"
B_ID=$(sed -n 's/^Local peer id: //p' "$TMP/b.out")
printf '%s\n' "GET greeting" "GET_PROVIDERS $CID" "FIND_PEER $B_ID" |
    timeout 60 "$CP2P" dht --client --listen "/unix$S.c" --bootstrap "$A" --quorum 1 \
        >"$TMP/c.out" 2>"$TMP/c.err" || fail "C exited with $?"
grep -qxF 'Got record "greeting" "hello over unix"' "$TMP/c.out" || fail "C's GET over /unix"
grep -qxF "Peer $B_ID provides key \"$CID\"" "$TMP/c.out" || fail "C's GET_PROVIDERS over /unix"
grep -qxF "Peer $B_ID has address /unix$S.b" "$TMP/c.out" || fail "C did not find B's /unix address"
exec 3>&-
echo "unix transport: ping, stale socket takeover, DHT put/get/providers/find-peer: ok"
