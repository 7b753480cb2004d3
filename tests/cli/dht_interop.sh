# cp2p dht and js-libp2p kad-dht in one network: records put by cp2p are read
# by js and the other way round; providers announced by either (CID keys) are
# found by the other. Keys live under /test/, which both sides accept as is.
source "$(dirname "$0")/../interop/lib.sh" "$1"

CID1=bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy
CID2=bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4
DHT=("$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --namespace test --quorum 1)

# A cp2p server, then a js server bootstrapping from it.
"${DHT[@]}" --serve </dev/null >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
A=$(wait_line "$TMP/a.out" '^Listening on ' | cut -d' ' -f3)
mkfifo "$TMP/js.in"
(cd "$INTEROP" && exec node --import ./polyfill.mjs dht.mjs --bootstrap "$A") \
    <"$TMP/js.in" >"$TMP/js.out" 2>"$TMP/js.err" &
PIDS+=($!)
exec 7>"$TMP/js.in" # opening both ends of the fifo lets node start
J=$(wait_line "$TMP/js.out" '^Listening on ' 30 | cut -d' ' -f3)
J_ID=${J##*/p2p/}

# cp2p writes a record and a provider record.
printf '%s\n' "PUT /test/from-cp2p made in C" "PUT_PROVIDER $CID1" |
    timeout 60 "${DHT[@]}" --bootstrap "$A" --bootstrap "$J" >"$TMP/b.out" 2>"$TMP/b.err" ||
    { show b.out b.err; fail "cp2p writer exited with $?"; }
B_ID=$(sed -n 's/^Local peer id: //p' "$TMP/b.out")
grep -qxF 'Successfully put record "/test/from-cp2p"' "$TMP/b.out" || { show b.out b.err; fail "cp2p put"; }
grep -qxF "Successfully put provider record \"$CID1\"" "$TMP/b.out" || { show b.out; fail "cp2p provide"; }

# js reads them, then writes its own.
printf '%s\n' "GET /test/from-cp2p" "GET_PROVIDERS $CID1" "PUT /test/from-js made in js" \
    "PUT_PROVIDER $CID2" >&7
wait_line "$TMP/js.out" '^(Got|Failed to get) record "/test/from-cp2p"' 60 >/dev/null
grep -qxF 'Got record "/test/from-cp2p" "made in C"' "$TMP/js.out" || { show js.out js.err; fail "js did not read the cp2p record"; }
wait_line "$TMP/js.out" "^Peer $B_ID provides key \"$CID1\"" 60 >/dev/null
wait_line "$TMP/js.out" '^Successfully put provider record' 60 >/dev/null
grep -qxF 'Successfully put record "/test/from-js"' "$TMP/js.out" || { show js.out js.err; fail "js put"; }

# A new cp2p node reads what js wrote.
printf '%s\n' "GET /test/from-js" "GET_PROVIDERS $CID2" |
    timeout 60 "${DHT[@]}" --bootstrap "$J" >"$TMP/c.out" 2>"$TMP/c.err" ||
    { show c.out c.err; fail "cp2p reader exited with $?"; }
grep -qxF 'Got record "/test/from-js" "made in js"' "$TMP/c.out" || { show c.out c.err; fail "cp2p did not read the js record"; }
grep -qxF "Peer $J_ID provides key \"$CID2\"" "$TMP/c.out" || { show c.out c.err; fail "cp2p did not find the js provider"; }
exec 7>&-
echo "PASS dht_interop"
