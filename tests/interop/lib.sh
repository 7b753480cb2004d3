# Shared by tests/cli/interop_*.sh: start cp2p, js-libp2p, go-libp2p and
# rust-libp2p peers and check their output. Sourced with the build directory
# as $1. The other side needed is INTEROP_PEERS, set before sourcing: "js"
# (the default), "go", "rust", or several ("js go").
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib/common.sh"
INTEROP=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CP2P=$BUILD/cp2p
MUXERS=${CP2P_INTEROP_MUXERS:-"yamux mplex"}

[ -x "$CP2P" ] || fail "$CP2P not built"
# A missing other side is a failure, not a skip: a skipped interop test looks green.
for _peer in ${INTEROP_PEERS:-js}; do
    case $_peer in
    js)
        [ -f "$INTEROP/node_modules/libp2p/package.json" ] ||
            fail "js-libp2p is not installed: run 'npm ci' in tests/interop"
        command -v node >/dev/null || fail "node is not installed (node 20 or later is needed)" ;;
    go)
        # Built once per content of tests/interop/go (go/build.sh caches it).
        GO_PEER=$(bash "$INTEROP/go/build.sh") || fail "the go-libp2p peer could not be built (tests/interop/go/build.sh)" ;;
    rust)
        # Built once per content of tests/interop/rust (rust/build.sh caches it).
        RUST_PEER=$(bash "$INTEROP/rust/build.sh") || fail "the rust-libp2p peer could not be built (tests/interop/rust/build.sh)" ;;
    *) fail "INTEROP_PEERS: unknown peer $_peer" ;;
    esac
done

js() { (cd "$INTEROP" && exec node --import ./polyfill.mjs peer.mjs "$@"); }

# start_js NAME ARGS...: a js peer listening on loopback; sets JS_ADDR and JS_ID.
start_js() {
    local name=$1; shift
    (cd "$INTEROP" && exec node --import ./polyfill.mjs peer.mjs --listen /ip4/127.0.0.1/tcp/0 "$@") \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    JS_PID=$!
    JS_ADDR=$(wait_line "$TMP/$name.out" '^listening ' | cut -d' ' -f2)
    JS_ID=${JS_ADDR##*/p2p/}
}

# start_cp2p NAME ARGS...: cp2p ping listening on loopback; sets CP2P_ADDR, CP2P_ID, CP2P_PID.
start_cp2p() {
    local name=$1; shift
    "$CP2P" ping --listen /ip4/127.0.0.1/tcp/0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    CP2P_PID=$!
    CP2P_ADDR=$(wait_line "$TMP/$name.out" '^Listening on ' | cut -d' ' -f3)
    CP2P_ID=${CP2P_ADDR##*/p2p/}
}

# field LINE KEY: the value of KEY=... in LINE ("" if absent).
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# has LINE KEY ITEM: KEY's comma-separated list in LINE includes ITEM.
has() { [[ ",$(field "$1" "$2")," == *",$3,"* ]]; }

# check_identified WHO LINE AGENT_PREFIX LISTEN_ADDR PROTOCOL...: an
# "identified" line as cp2p and the go and rust peers print it: the agent
# version, every listed protocol, the listen address and a signed peer record
# with a sequence number (NO_RECORD=1 in the environment: record=none instead).
check_identified() {
    local who=$1 line=$2 agent=$3 addr=$4 p; shift 4
    [ -n "$line" ] || fail "$who: no identify"
    [[ $(field "$line" agent) == "$agent"* ]] || fail "$who: agent $(field "$line" agent), not $agent..."
    for p in "$@"; do has "$line" protocols "$p" || fail "$who: protocol $p missing"; done
    has "$line" addrs "$addr" || fail "$who: listen address $addr missing"
    if [ -n "${NO_RECORD:-}" ]; then
        [ "$(field "$line" record)" = none ] || fail "$who: record=$(field "$line" record), none expected"
    else
        [[ $(field "$line" record) =~ ^[0-9]+$ ]] || fail "$who: no signed peer record (record=$(field "$line" record))"
    fi
}

# rtts FILE REGEX: the rtt values of FILE's ping lines, comma-separated; fails
# unless $PINGS (set by the test) of them.
rtts() {
    local n
    n=$(grep -cE "$2" "$1" || true)
    [ "$n" = $PINGS ] || { cat "$1" >&2; fail "expected $PINGS ping replies, got $n"; }
    grep -E "$2" "$1" | sed 's/.*rtt=\([0-9.]*\) ms$/\1/' | paste -sd, -
}

# peak_rss_kib PID: the process's peak resident set so far (VmHWM), in KiB.
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# run_measured OUT ERR CMD...: run CMD, polling its peak RSS; sets RC and PEAK_KIB.
run_measured() {
    local out=$1 err=$2; shift 2
    "$@" >"$out" 2>"$err" &
    local pid=$! k
    PEAK_KIB=0
    while kill -0 "$pid" 2>/dev/null; do
        k=$(peak_rss_kib "$pid"); [ "${k:-0}" -gt "$PEAK_KIB" ] && PEAK_KIB=$k
        sleep 0.2
    done
    RC=0; wait "$pid" || RC=$?
}

