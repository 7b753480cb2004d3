#!/usr/bin/env bash
# Installs what is needed, builds, and shows what cp2p does, part by part,
# with the programs' own output: ping between two peers, two peers finding
# each other with mDNS, three DHT peers where a record and a provider
# record put on the first are read on the third, a gossipsub chat of
# three peers in a line, and a peer reached through a circuit relay, then
# directly after a hole punch. Ends with one line per part
# and exits non-zero if any part failed, so it doubles as a smoke test.
#
# usage: scripts/demo.sh [--only PART]... [--build DIR] [--help]
#   --only PART   run only that part (repeatable): ping, mdns, dht, pubsub, relay
#   --build DIR   use the programs already built in DIR (no install, no build)
set -uo pipefail
cd "$(dirname "$0")/.."
ALL=(ping mdns dht pubsub relay)
ONLY=()
BUILD=
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
    --only)
        [[ " ${ALL[*]} " == *" ${2:-} "* ]] || { echo "demo: no part '${2:-}' (parts: ${ALL[*]})" >&2; exit 2; }
        ONLY+=("$2"); shift 2 ;;
    --build) BUILD=${2:?--build needs a directory}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#ONLY[@]} -gt 0 ] || ONLY=("${ALL[@]}")
if [ -z "$BUILD" ]; then
    scripts/deps.sh >/dev/null || { echo "demo: installing dependencies failed" >&2; exit 1; }
    echo "building..." >&2
    scripts/build.sh build || { echo "demo: the build failed" >&2; exit 1; }
    BUILD=build
fi
CP2P=$BUILD/cp2p
[ -x "$CP2P" ] || { echo "demo: $CP2P not built" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# await FILE REGEX [SECONDS]: the first matching line, once it is there.
await() {
    local i
    for ((i = 0; i < ${3:-15} * 10; i++)); do
        grep -m1 -E "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# run_bg NAME CMD...: start CMD with its output in $TMP/NAME.out.
run_bg() {
    local name=$1; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
}
# show NAME: a program's output so far, indented under its name.
show() { sed "s/^/  [$1] /" "$TMP/$1.out"; }
title() { printf '\n== %s\n   %s\n' "$1" "$2"; }

part_ping() {
    title "ping" "Two peers on loopback: B dials A by its multiaddr, and A answers its pings over Noise and yamux."
    run_bg a "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0
    local addr
    addr=$(await "$TMP/a.out" '^Listening on ' | cut -d' ' -f3) || return 1
    show a
    echo "  \$ cp2p ping $addr --count 3"
    "$CP2P" ping "$addr" --count 3 --interval 0.5 2>&1 | sed 's/^/  [b] /'
    [ "${PIPESTATUS[0]}" = 0 ]
}

part_mdns() {
    title "mdns" "Two peers that know nothing of each other find each other with multicast DNS (here on loopback)."
    run_bg m1 "$CP2P" mdns --loopback --listen /ip4/127.0.0.1/tcp/0
    run_bg m2 "$CP2P" mdns --loopback --listen /ip4/127.0.0.1/tcp/0
    local id1 id2
    id1=$(await "$TMP/m1.out" '^Local peer id: ' | cut -d' ' -f4) || return 1
    id2=$(await "$TMP/m2.out" '^Local peer id: ' | cut -d' ' -f4) || return 1
    local ok=0
    await "$TMP/m1.out" "^discovered $id2 " >/dev/null && await "$TMP/m2.out" "^discovered $id1 " >/dev/null && ok=1
    show m1
    show m2
    [ $ok = 1 ]
}

part_dht() {
    title "dht" "Three Kademlia peers: a record and a provider record put on the first are read on the third, which knows only the second."
    local dht=("$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --quorum 1)
    mkfifo "$TMP/d1.in"
    "${dht[@]}" --serve <"$TMP/d1.in" >"$TMP/d1.out" 2>"$TMP/d1.err" &
    PIDS+=($!)
    exec 7>"$TMP/d1.in" # its stdin stays open: it runs until we stop it
    local a1 a2 id1
    a1=$(await "$TMP/d1.out" '^Listening on ' | cut -d' ' -f3) || return 1
    id1=${a1##*/p2p/}
    run_bg d2 "${dht[@]}" --serve --bootstrap "$a1" </dev/null
    a2=$(await "$TMP/d2.out" '^Listening on ' | cut -d' ' -f3) || return 1
    await "$TMP/d2.err" 'bootstrap done' >/dev/null || return 1
    show d1
    echo "  [d1] < PUT k1 hello from the first peer"
    echo "  [d1] < PUT_PROVIDER k1"
    local before
    before=$(wc -l <"$TMP/d1.out")
    printf '%s\n' "PUT k1 hello from the first peer" "PUT_PROVIDER k1" >&7
    await "$TMP/d1.out" '^(Successfully|Failed to) put provider record' >/dev/null || return 1
    tail -n +$((before + 1)) "$TMP/d1.out" | sed "s/^/  [d1] /"
    echo "  [d3] < GET k1"
    echo "  [d3] < GET_PROVIDERS k1"
    printf '%s\n' "GET k1" "GET_PROVIDERS k1" |
        timeout 60 "${dht[@]}" --bootstrap "$a2" >"$TMP/d3.out" 2>"$TMP/d3.err"
    show d3
    exec 7>&-
    grep -qxF 'Got record "k1" "hello from the first peer"' "$TMP/d3.out" &&
        grep -qxF "Peer $id1 provides key \"k1\"" "$TMP/d3.out"
}

part_pubsub() {
    title "pubsub" "A gossipsub chat in a line A - B - C: what A says reaches C through B, and the other way round."
    local p=("$CP2P" pubsub --topic chat --listen /ip4/127.0.0.1/tcp/0) x prev="" ida idc
    for x in a b c; do
        mkfifo "$TMP/$x.in"
        "${p[@]}" ${prev:+--dial "$prev"} <"$TMP/$x.in" >"$TMP/$x.out" 2>"$TMP/$x.err" &
        PIDS+=($!)
        case $x in a) exec 7>"$TMP/a.in" ;; b) exec 8>"$TMP/b.in" ;; c) exec 9>"$TMP/c.in" ;; esac
        prev=$(await "$TMP/$x.out" '^Listening on ' | cut -d' ' -f3) || return 1
    done
    ida=$(await "$TMP/a.out" '^Local peer id: ' | cut -d' ' -f4)
    idc=$(await "$TMP/c.out" '^Local peer id: ' | cut -d' ' -f4)
    await "$TMP/c.out" '^subscribed ' >/dev/null || return 1
    sleep 1.5 # a heartbeat: the mesh forms
    echo "  [a] < hello from A"
    echo "hello from A" >&7
    echo "  [c] < hello from C"
    echo "hello from C" >&9
    local ok=0
    await "$TMP/c.out" "^Got message: 'hello from A' .* from peer: $ida\$" >/dev/null &&
        await "$TMP/a.out" "^Got message: 'hello from C' .* from peer: $idc\$" >/dev/null && ok=1
    show a
    show c
    exec 7>&- 8>&- 9>&-
    [ $ok = 1 ]
}

part_relay() {
    title "relay" "R relays; A reserves on R and listens through it; B dials A's /p2p-circuit address, and DCUtR moves them to a direct connection (on loopback the punch always works)."
    run_bg r "$CP2P" relay --listen /ip4/127.0.0.1/tcp/0
    local r a
    r=$(await "$TMP/r.out" '^Listening on ' | cut -d' ' -f3) || return 1
    show r
    run_bg a "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 --relay "$r" --punch-private
    a=$(await "$TMP/a.out" '^Listening on .*/p2p-circuit/p2p/' | cut -d' ' -f3) || return 1
    show a
    echo "  \$ cp2p ping --listen /ip4/127.0.0.1/tcp/0 $a --count 4 --punch-private"
    "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 "$a" --count 4 --interval 0.5 --punch-private >"$TMP/b.out" 2>"$TMP/b.err"
    local rc=$?
    show b
    [ $rc = 0 ] && grep -q '^direct connection ' "$TMP/b.out"
}

results=()
failed=0
for part in "${ONLY[@]}"; do
    if "part_$part"; then
        results+=("$part: ok")
    else
        results+=("$part: FAILED")
        failed=$((failed + 1))
        for f in "$TMP"/*.err; do [ -s "$f" ] && sed "s/^/  [$(basename "$f" .err) stderr] /" "$f"; done
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    rm -f "$TMP"/*
done
echo
echo "== summary"
printf '%s\n' "${results[@]}"
exit $((failed > 0))
