#!/usr/bin/env bash
# ctest: run-serial
# cp2p pubsub with go-libp2p-pubsub and rust-libp2p's gossipsub (the peers'
# `peer pubsub` modes): a line cp2p A - X - cp2p B, so that what A publishes
# reaches B only through X's router and the other way round; X is go over
# gossipsub (meshsub/1.2.0, signed messages, go's message ids), go over
# floodsub, and rust over gossipsub (rust-libp2p has no floodsub router).
# Every message is checked at every other node, by text, author and id (the
# same id at each).
INTEROP_PEERS="js go rust"
JS_PUBSUB=(node --import ./polyfill.mjs pubsub.mjs)
js_pubsub() { (cd "$INTEROP" && exec "${JS_PUBSUB[@]}" "$@"); }
. "$(dirname "$0")/../interop/lib.sh"

rc=0; "$CP2P" pubsub >"$TMP/usage.out" 2>&1 || rc=$?
[ $rc = 2 ] && grep -q -- '--topic is needed' "$TMP/usage.out" || fail "cp2p pubsub without --topic: rc $rc"
"$CP2P" pubsub --help | grep -q -- '--router' || fail "cp2p pubsub --help"

# got FILE TEXT AUTHOR: FILE has the message TEXT from AUTHOR; prints its id.
got() {
    local line
    line=$(wait_line "$TMP/$1" "^Got message: '$2' with id: [0-9a-f]+ from peer: $3\$" 15) ||
        { show all; fail "$1: no message '$2' from $3"; }
    sed 's/.* with id: \([0-9a-f]*\) from.*/\1/' <<<"$line"
}

round() {
    local router=$1 n=$2 X=$3
    mkfifo "$TMP/a$n.in" "$TMP/g$n.in" "$TMP/b$n.in"
    "$CP2P" pubsub --topic chat --router "$router" --listen /ip4/127.0.0.1/tcp/0 \
        <"$TMP/a$n.in" >"$TMP/a$n.out" 2>"$TMP/a$n.err" &
    PIDS+=($!)
    exec 7>"$TMP/a$n.in"
    local A; A=$(wait_line "$TMP/a$n.out" '^Listening on ' | cut -d' ' -f3)
    local xargs=(--topic chat --dial "$A")
    [ "$X" = "$GO_PEER" ] || [ "$X" = js ] && xargs+=(--router "$router")
    local run=("$X" pubsub)
    [ "$X" = js ] && run=(js_pubsub)
    "${run[@]}" "${xargs[@]}" \
        <"$TMP/g$n.in" >"$TMP/g$n.out" 2>"$TMP/g$n.err" &
    PIDS+=($!)
    exec 8>"$TMP/g$n.in"
    local G; G=$(wait_line "$TMP/g$n.out" '^listening ' | cut -d' ' -f2)
    "$CP2P" pubsub --topic chat --router "$router" --listen /ip4/127.0.0.1/tcp/0 --dial "$G" \
        <"$TMP/b$n.in" >"$TMP/b$n.out" 2>"$TMP/b$n.err" &
    PIDS+=($!)
    exec 9>"$TMP/b$n.in"
    local A_ID=${A##*/p2p/} G_ID=${G##*/p2p/} B_ID
    B_ID=$(wait_line "$TMP/b$n.out" '^Local peer id: ' | cut -d' ' -f4)
    # Everyone sees the subscriptions of its neighbours.
    wait_line "$TMP/g$n.out" "^subscribed $A_ID chat\$" 10 >/dev/null || { show all; fail "$router: $X did not see A subscribe"; }
    wait_line "$TMP/g$n.out" "^subscribed $B_ID chat\$" 10 >/dev/null || { show all; fail "$router: $X did not see B subscribe"; }
    wait_line "$TMP/a$n.out" "^subscribed $G_ID chat\$" 10 >/dev/null || { show all; fail "$router: A did not see $X subscribe"; }
    # A mesh needs a heartbeat (gossipsub's first after 100 ms, then 1 s).
    sleep 1.5
    echo "from cp2p A over $router" >&7
    local i1 i2 i3
    i1=$(got "g$n.out" "from cp2p A over $router" "$A_ID")
    i2=$(got "b$n.out" "from cp2p A over $router" "$A_ID")
    [ "$i1" = "$i2" ] || fail "$router: one message, two ids: $i1 (go) and $i2 (cp2p)"
    echo "from cp2p B over $router" >&9
    got "g$n.out" "from cp2p B over $router" "$B_ID" >/dev/null
    got "a$n.out" "from cp2p B over $router" "$B_ID" >/dev/null
    echo "from go over $router" >&8
    i1=$(got "a$n.out" "from go over $router" "$G_ID")
    i3=$(got "b$n.out" "from go over $router" "$G_ID")
    [ "$i1" = "$i3" ] || fail "$router: go's message has two ids at A and B"
    # Each message once: no duplicates delivered.
    for f in a$n.out b$n.out g$n.out; do
        local dup; dup=$(grep '^Got message' "$TMP/$f" | sort | uniq -d)
        [ -z "$dup" ] || fail "$router: $f delivered twice: $dup"
    done
    exec 7>&- 8>&- 9>&-
    echo "ok $router"
}

# One mixed mesh: a chain cp2p A - js J (gossipsub) - go G - rust R - cp2p B,
# with a js floodsub peer F on A: each one publishes, every other one gets
# it (through routers of other implementations, and gossipsub <-> floodsub
# at A), with one id everywhere.
mixed() {
    local n=m x prev="" name
    start_node() { # NAME CMD...: start it dialling $prev; sets ADDR_<NAME>, ID_<NAME>
        local nm=$1; shift
        mkfifo "$TMP/$nm.in"
        local dial=(); [ -n "$prev" ] && dial=(--dial "$prev")
        "$@" --topic chat "${dial[@]}" <"$TMP/$nm.in" >"$TMP/$nm.out" 2>"$TMP/$nm.err" &
        PIDS+=($!)
        local fdv; exec {fdv}>"$TMP/$nm.in" # a writer lets the reader start
        printf -v "FD_$nm" %s "$fdv"
        local a; a=$(wait_line "$TMP/$nm.out" '^(Listening on|listening) /ip4/127.0.0.1/tcp/[0-9]+/p2p/' 30 | sed 's/.* //') ||
            { show all; fail "mixed: $nm did not start"; }
        printf -v "ADDR_$nm" %s "$a"
        printf -v "ID_$nm" %s "${a##*/p2p/}"
    }
    start_node A "$CP2P" pubsub --listen /ip4/127.0.0.1/tcp/0
    prev=$ADDR_A; start_node J js_pubsub --router gossipsub
    prev=$ADDR_J; start_node G "$GO_PEER" pubsub
    prev=$ADDR_G; start_node R "$RUST_PEER" pubsub
    prev=$ADDR_R; start_node B "$CP2P" pubsub --listen /ip4/127.0.0.1/tcp/0
    prev=$ADDR_A; start_node F js_pubsub --router floodsub
    local all="A J G R B F" fd
    sleep 3 # subscriptions travel, meshes form (a heartbeat or two)
    for name in $all; do eval "fd=\$FD_$name"; echo "mixed from $name" >&"$fd"; sleep 0.2; done
    for name in $all; do
        local from_id; eval "from_id=\$ID_$name"
        local first=""
        for x in $all; do
            [ "$x" = "$name" ] && continue
            local line id
            line=$(wait_line "$TMP/$x.out" "^Got message: 'mixed from $name' with id: [0-9a-f]+ from peer: $from_id\$" 15) ||
                { show all; fail "mixed: $x did not get $name's message"; }
            id=$(sed 's/.* with id: \([0-9a-f]*\) from.*/\1/' <<<"$line")
            [ -z "$first" ] || [ "$id" = "$first" ] || fail "mixed: $name's message has two ids ($first, $id at $x)"
            first=$id
        done
    done
    for name in $all; do eval "fd=\$FD_$name"; exec {fd}>&-; done
    echo "ok mixed mesh: cp2p, js gossipsub, go, rust, cp2p, js floodsub"
}

mixed
round gossipsub 1 "$GO_PEER"
round floodsub 2 "$GO_PEER"
round gossipsub 3 "$RUST_PEER"
round gossipsub 4 js
round floodsub 5 js
echo PASS
