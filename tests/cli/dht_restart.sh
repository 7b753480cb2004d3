# A peer restarted on its --datastore: a PUT it acknowledged survives kill -9
# (the commit came before the acknowledgement), and its saved routing table
# keeps the peers' addresses, so with no --bootstrap it still reaches them
# and reads a record that only they hold.
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
SHOW_ON_FAIL=(all)
expect() { grep -qxF "$2" "$TMP/$1" || fail "$1 lacks: $2"; }

# A: a hub with no datastore. B: a server with a datastore that knows A.
"$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --serve </dev/null >"$TMP/a.out" 2>"$TMP/a.err" &
PIDS+=($!)
wait_line "$TMP/a.out" '^Listening on /ip4/127.0.0.1/tcp/[0-9]+/p2p/' 30 >/dev/null
A=$(grep -m1 '^Listening on ' "$TMP/a.out" | cut -d' ' -f3)
"$CP2P" keygen --out "$TMP/b.key" >/dev/null
mkfifo "$TMP/b.in"
"$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --key "$TMP/b.key" --datastore "$TMP/store" \
    --bootstrap "$A" --serve <"$TMP/b.in" >"$TMP/b.out" 2>"$TMP/b.err" &
B_PID=$!
PIDS+=($B_PID)
exec {BIN}>"$TMP/b.in"
wait_line "$TMP/b.err" 'bootstrap done' 30 >/dev/null

# A client puts at both (quorum 2): B's acknowledgement means B committed.
# B dies by SIGKILL the moment the client reports it.
echo "PUT kept acknowledged-value" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$A" --client --quorum 2 \
        >"$TMP/c.out" 2>"$TMP/c.err" || fail "client exited with $?"
expect c.out 'Successfully put record "kept"'
kill -KILL "$B_PID"
wait "$B_PID" 2>/dev/null || true
exec {BIN}>&-

# While B is down a record goes to A alone.
echo "PUT elsewhere only-on-a" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$A" --client --quorum 1 \
        >"$TMP/d.out" 2>"$TMP/d.err" || fail "client exited with $?"
expect d.out 'Successfully put record "elsewhere"'

# B again: same key and datastore, no --bootstrap, no mDNS: A's address
# comes from the saved table.
echo "GET elsewhere" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --key "$TMP/b.key" \
        --datastore "$TMP/store" --quorum 1 >"$TMP/b2.out" 2>"$TMP/b2.err" || fail "restart failed"
expect b2.out 'Got record "elsewhere" "only-on-a"'

# With A gone too, B's own copy is the only one left.
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
echo "GET kept" |
    timeout 60 "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --key "$TMP/b.key" \
        --datastore "$TMP/store" --quorum 1 >"$TMP/b3.out" 2>"$TMP/b3.err" || fail "restart failed"
expect b3.out 'Got record "kept" "acknowledged-value"'
echo "PASS dht_restart"
