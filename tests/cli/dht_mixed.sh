#!/usr/bin/env bash
# ctest: run-serial
# One Kademlia network of four implementations on loopback, /ipfs/kad/1.0.0:
# a cp2p dht server, the go-libp2p-kad-dht peer (tests/interop/go/dht.go), the
# rust-libp2p kad peer (tests/interop/rust/src/dht.rs) and the js-libp2p
# kad-dht peer (tests/interop/dht.mjs), all driven by the same stdin lines.
# Every implementation writes, and each of the other three reads what it
# wrote; every cell (writer -> reader) is checked and the failed ones named:
# - FIND_PEER: each finds each other's listen address.
# - records under /test/ (all four take any value there: cp2p with
#   --namespace test, go and js with a validator of their own for "test",
#   rust has no validators): written by each, read by each other one.
# - providers: each announces its own CID; each other one finds it, naming
#   the writer's peer id.
# - records without a namespace ("from-cp2p-plain"): cp2p and rust take any
#   key; go-libp2p-kad-dht and js-libp2p take only keys under a namespace
#   they have a validator for. Where they cannot take part, their refusal is
#   the cell: go refuses to write one; js writes one (it checks only what it
#   receives), which cp2p and rust read; go and js refuse to store cp2p's
#   (cp2p's PUT sees exactly 2 of its 3 peers refuse it and rust take it) and
#   read none. cp2p and rust read each other's.
# Each phase ends with a line none of them knows ("END"), which each answers
# with its "Expected: ..." line, so that a phase's results are all in.
INTEROP_PEERS="js go rust"
. "$(dirname "$0")/../interop/lib.sh"

declare -A CID=(
    [cp2p]=bafkreiav7rcuozdj7ocentqoo72n7enn6qeg2gvrpspaftsrh2bqlmyduu
    [go]=bafkreiapo2bigzuwqjsuij7ldvpwjza45dwp655clqaigjg2xdfcfrlmzm
    [rust]=bafkreiaiyfyhmcrco4uanplp6w4jveq7usyzu4fhsqaee46joimqpacq6a
    [js]=bafkreiflts54qjovrsxheuzbstcykfllqnpubdtzlh7lvo56hssx6svg5m
)
WRITERS=(cp2p go rust js)
NODES=() # every node started, in order
declare -A ADDR ID TCP FD PID
SHOW_ON_FAIL=(all)
T0=$SECONDS

# start NAME CMD...: NAME reads its stdin from a fifo (kept open on a file
# descriptor of ours) and writes $TMP/NAME.out; sets ADDR, ID and TCP (the
# listen address without /p2p).
start() {
    local name=$1 fd; shift
    mkfifo "$TMP/$name.in"
    "$@" <"$TMP/$name.in" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    PID[$name]=$!
    exec {fd}>"$TMP/$name.in" # opening the fifo's other end lets the node start
    FD[$name]=$fd
    NODES+=("$name")
    ADDR[$name]=$(wait_line "$TMP/$name.out" '^Listening on /ip4/127\.0\.0\.1/' 30 | cut -d' ' -f3)
    ID[$name]=${ADDR[$name]##*/p2p/}
    TCP[$name]=${ADDR[$name]%/p2p/*}
}
# send NAME LINE...: commands to NAME, one a line.
send() { local name=$1; shift; printf '%s\n' "$@" >&"${FD[$name]}"; }
# end_phase WHAT: every node has answered one more END, so all before it is done.
declare -A ENDS
end_phase() {
    local n i
    for n in "${NODES[@]}"; do send "$n" END; ENDS[$n]=$((${ENDS[$n]:-0} + 1)); done
    for n in "${NODES[@]}"; do
        for ((i = 0; i < 900; i++)); do
            [ "$(grep -c '^Expected: ' "$TMP/$n.out")" -ge "${ENDS[$n]}" ] && break
            sleep 0.1
        done
        [ "$i" -lt 900 ] || fail "$n: $1 did not end within 90 s"
    done
    echo "$1 done after $((SECONDS - T0)) s"
}
FAILED=()
CELLS=0
# cell WHAT NODE LINE: NODE printed LINE (whole), else the cell WHAT failed.
cell() {
    CELLS=$((CELLS + 1))
    grep -qxF -- "$3" "$TMP/$2.out" || FAILED+=("$1: $2 did not print: $3")
}
# cell_re WHAT NODE REGEX: as cell, for a line that differs between implementations.
cell_re() {
    CELLS=$((CELLS + 1))
    grep -qE -- "$3" "$TMP/$2.out" || FAILED+=("$1: $2 printed no line matching: $3")
}

# start_impl NAME IMPL BOOTSTRAP...: a node of IMPL (cp2p, go, rust, js).
start_impl() {
    local name=$1 impl=$2 boot=() b; shift 2
    for b in "$@"; do boot+=(--bootstrap "$b"); done
    case $impl in
    cp2p) start "$name" "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --namespace test --serve "${boot[@]}" ;;
    go) start "$name" "$GO_PEER" dht --listen /ip4/127.0.0.1/tcp/0 --serve "${boot[@]}" ;;
    rust) start "$name" "$RUST_PEER" dht --listen /ip4/127.0.0.1/tcp/0 --serve "${boot[@]}" ;;
    js) start "$name" bash -c 'cd "$0" && exec node --import ./polyfill.mjs dht.mjs "$@"' "$INTEROP" \
        --listen /ip4/127.0.0.1/tcp/0 "${boot[@]}" ;;
    esac
}
# Each node bootstraps from all that started before it: every pair is connected.
start_impl cp2p cp2p
start_impl go go "${ADDR[cp2p]}"
start_impl rust rust "${ADDR[cp2p]}" "${ADDR[go]}"
start_impl js js "${ADDR[cp2p]}" "${ADDR[go]}" "${ADDR[rust]}"
for n in "${NODES[@]}"; do echo "$n: ${ADDR[$n]}"; done

# 0. Each node takes commands once it has bootstrapped: then all are connected.
end_phase bootstrap

# 1. FIND_PEER: each node looks up each other one. A node that has just
# connected may not be in the others' routing tables yet (go checks a new
# peer with a FIND_NODE of its own first): what was not found is asked again,
# in up to 5 rounds a second apart.
for round in 1 2 3 4 5; do
    [ $round = 1 ] || sleep 1
    asked=0
    for r in "${WRITERS[@]}"; do
        for w in "${WRITERS[@]}"; do
            [ "$w" != "$r" ] || continue
            grep -qxF "Peer ${ID[$w]} has address ${TCP[$w]}" "$TMP/$r.out" && continue
            send "$r" "FIND_PEER ${ID[$w]}"
            asked=$((asked + 1))
        done
    done
    [ $asked -gt 0 ] || break
    end_phase "FIND_PEER round $round ($asked lookups)"
done

# 2. Writes: a record under /test/, a record without a namespace, a provider.
for w in "${WRITERS[@]}"; do
    send "$w" "PUT /test/from-$w written by $w" "PUT from-$w-plain plain, by $w" "PUT_PROVIDER ${CID[$w]}"
done
end_phase writes

# 3. Reads: each node reads what each other one wrote. These nodes hold a
# copy of most (each PUT and ADD_PROVIDER went to all three others), so a
# late reader of each implementation, which joins now, reads them too: it
# has none, and takes them from the GET_VALUE and GET_PROVIDERS answers of
# the four stores.
for i in "${WRITERS[@]}"; do
    start_impl "late-$i" "$i" "${ADDR[cp2p]}" "${ADDR[go]}"
done
end_phase "late readers' bootstrap"
for r in "${NODES[@]}"; do
    for w in "${WRITERS[@]}"; do
        [ "$w" = "${r#late-}" ] || send "$r" "GET /test/from-$w" "GET_PROVIDERS ${CID[$w]}"
    done
done
for r in cp2p late-cp2p; do send $r "GET from-rust-plain" "GET from-js-plain"; done
for r in rust late-rust; do send $r "GET from-cp2p-plain" "GET from-js-plain"; done
for r in go late-go; do send $r "GET from-cp2p-plain" "GET from-rust-plain" "GET from-js-plain"; done
for r in js late-js; do send $r "GET from-cp2p-plain" "GET from-rust-plain"; done
end_phase reads

for r in "${WRITERS[@]}"; do
    for w in "${WRITERS[@]}"; do
        [ "$w" != "$r" ] || continue
        cell "FIND_PEER $w -> $r" "$r" "Peer ${ID[$w]} has address ${TCP[$w]}"
        # ... and no other: each listens on one address.
        CELLS=$((CELLS + 1))
        other=$(grep "^Peer ${ID[$w]} has address " "$TMP/$r.out" | grep -vxF "Peer ${ID[$w]} has address ${TCP[$w]}" || true)
        [ -z "$other" ] || FAILED+=("FIND_PEER $w -> $r: addresses $w does not have: $other")
    done
done
for w in "${WRITERS[@]}"; do
    cell "PUT /test/ by $w" "$w" "Successfully put record \"/test/from-$w\""
    cell "PUT_PROVIDER by $w" "$w" "Successfully put provider record \"${CID[$w]}\""
    for r in "${NODES[@]}"; do
        [ "$w" != "${r#late-}" ] || continue
        cell "record /test/ $w -> $r" "$r" "Got record \"/test/from-$w\" \"written by $w\""
        cell "provider $w -> $r" "$r" "Peer ${ID[$w]} provides key \"${CID[$w]}\""
    done
done
# Keys without a namespace. rust and js take the PUT (js checks only what it
# receives, not what it writes), go refuses it before sending it.
cell "PUT plain by rust" rust 'Successfully put record "from-rust-plain"'
cell "PUT plain by js" js 'Successfully put record "from-js-plain"'
cell_re "PUT plain by go (refused)" go '^Failed to put record "from-go-plain": '
# cp2p's PUT reached its 3 peers: rust took it, go and js refused it (cp2p
# needs all 3 by default, so it reports the failure, with the counts).
cell "PUT plain by cp2p: rust takes it, go and js refuse" cp2p \
    'Failed to put record "from-cp2p-plain": too few peers for the quorum: 1 of the 3 needed took it (2 refused, 0 unreachable, 0 timed out)'
# cp2p and rust read each other's and js's plain records (the late readers
# too) ...
for r in cp2p late-cp2p; do
    cell "record plain rust -> $r" $r 'Got record "from-rust-plain" "plain, by rust"'
    cell "record plain js -> $r" $r 'Got record "from-js-plain" "plain, by js"'
done
for r in rust late-rust; do
    cell "record plain cp2p -> $r" $r 'Got record "from-cp2p-plain" "plain, by cp2p"'
    cell "record plain js -> $r" $r 'Got record "from-js-plain" "plain, by js"'
done
# ... go and js read none: they drop a record whose key has no validator.
for r in go late-go; do
    for w in cp2p rust js; do
        cell_re "record plain $w -> $r (refused)" $r "^Failed to get record \"from-$w-plain\": "
    done
done
for r in js late-js; do
    for w in cp2p rust; do
        cell_re "record plain $w -> $r (refused)" $r "^Failed to get record \"from-$w-plain\": "
    done
done

echo "$CELLS cells checked in $((SECONDS - T0)) s"
if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED CELL %s\n' "${FAILED[@]}" >&2
    fail "${#FAILED[@]} of $CELLS cells failed"
fi
# The cp2p nodes stop cleanly on SIGTERM (under the sanitizers a leak or a
# bad access makes the exit code non-zero).
for n in cp2p late-cp2p; do
    kill -TERM "${PID[$n]}"
    for ((i = 0; i < 100; i++)); do kill -0 "${PID[$n]}" 2>/dev/null || break; sleep 0.1; done
    [ $i -lt 100 ] || fail "$n still runs 10 s after SIGTERM"
    rc=0; wait "${PID[$n]}" || rc=$?
    [ $rc = 0 ] || fail "$n exited with $rc on SIGTERM"
done
[ -z "${DHT_MIXED_SHOW:-}" ] || show all
echo "PASS dht_mixed"
