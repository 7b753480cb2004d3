#!/usr/bin/env bash
# The libp2p transport-interop matrix, run here without Docker:
#   tests/interop/transport/run.sh [--netns] [BUILD_DIR]      (default: build)
# Starts its own redis-server, then for every dialer x listener in {cp2p,
# go, rust} x security {noise, tls} x muxer {yamux, and mplex where both
# sides have it: cp2p only} x transport {tcp} runs the listener and the
# dialer as the suite's runner would: each process gets only the suite's
# environment, the listener is stopped with SIGTERM once its dialer is done.
# A cell passes when the dialer exits 0 with nothing but the result on
# stdout, its numbers parse and are > 0, and the listener exits 0. Cells
# with noise speak the test-plans names (transport, is_dialer, ..., key
# listenerAddr, a JSON result), cells with tls the unified-testing ones
# (TRANSPORT, IS_DIALER, ..., TEST_KEY, a YAML result), so every pair of
# implementations is run with both. Prints the matrix; exits 1 if a cell
# failed.
#
# Where: by default all on loopback (Redis on a free 127.0.0.1 port, the
# listener on ip=127.0.0.1). --netns (root) lays the processes out as the
# suite's containers are: Redis, the listener and the dialer each in a
# network namespace of its own on one bridge (made here, in a namespace of
# its own too), the listener on 0.0.0.0 and so publishing its eth0 address,
# and Redis reached by the name "redis" (the test-plans default, redis:6379;
# an /etc/netns/<ns>/hosts entry, which ip netns exec mounts as /etc/hosts).
#
# The apps: $BUILD/cp2p-transport-interop (cp2p_transport_interop.c here),
# "peer transport-interop" of tests/interop/go and the transport-interop
# binary of tests/interop/rust, both built and cached by their build.sh.
# CELL_TIMEOUT (30 s) is each cell's test_timeout_seconds.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETNS=0
[ "${1:-}" != --netns ] || { NETNS=1; shift; }
set -- "${1:-$HERE/../../../build}"
INTEROP_PEERS="go rust"
. "$HERE/../lib.sh"

APP=$BUILD/cp2p-transport-interop
[ -x "$APP" ] || fail "$APP not built (it needs hiredis: scripts/deps.sh installs libhiredis-dev)"
RUST_TI=$(dirname "$RUST_PEER")/transport-interop
[ -x "$RUST_TI" ] || fail "$RUST_TI not built (tests/interop/rust/build.sh)"
command -v redis-server >/dev/null || fail "redis-server is not installed (scripts/deps.sh installs it)"
command -v redis-cli >/dev/null || fail "redis-cli is not installed (Debian's redis-tools)"
CELL_TIMEOUT=${CELL_TIMEOUT:-30}

declare -A CMD=([cp2p]="$APP" [go]="$GO_PEER transport-interop" [rust]="$RUST_TI")
declare -A MUXERS=([cp2p]="yamux mplex" [go]="yamux" [rust]="yamux")
IMPLS=(cp2p go rust)

# Our own Redis, with nothing saved; RUN_R, RUN_L and RUN_D run a command
# where Redis, the listener and the dialer are.
RUN_R=() RUN_L=() RUN_D=()
if [ $NETNS = 0 ]; then
    REDIS_PORT=$(free_port)
    REDIS_BIND=127.0.0.1
    REDIS_ADDR=127.0.0.1:$REDIS_PORT
    LISTEN_IP=127.0.0.1
else
    P=cp2pti$$
    . "$HERE/../../cli/lib/netns.sh"
    netns_link "$P" 10.80.0 3 # h0 Redis 10.80.0.1, h1 the listener, h2 the dialer
    HOSTS_DIRS=()
    cleanup_more() {
        netns_cleanup
        for d in "${HOSTS_DIRS[@]}"; do rm -rf "$d"; done
        rmdir /etc/netns 2>/dev/null || true
    }
    for i in 1 2; do
        mkdir -p "/etc/netns/${P}h$i"
        HOSTS_DIRS+=("/etc/netns/${P}h$i")
        printf '127.0.0.1 localhost\n10.80.0.1 redis\n' >"/etc/netns/${P}h$i/hosts"
    done
    RUN_R=(ip netns exec "${P}h0") RUN_L=(ip netns exec "${P}h1") RUN_D=(ip netns exec "${P}h2")
    REDIS_PORT=6379
    REDIS_BIND=0.0.0.0
    REDIS_ADDR=redis:6379
    LISTEN_IP=0.0.0.0
fi
"${RUN_R[@]}" redis-server --port "$REDIS_PORT" --bind "$REDIS_BIND" --protected-mode no --save '' \
    --appendonly no --dir "$TMP" --loglevel warning >"$TMP/redis.out" 2>&1 &
PIDS+=($!)
rcli() { "${RUN_R[@]}" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
for _ in $(seq 50); do [ "$(rcli ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
[ "$(rcli ping 2>/dev/null)" = PONG ] || { cat "$TMP/redis.out" >&2; fail "redis-server did not start"; }

# What the suite passes, and nothing else: names and values of one style.
# Sanitizer and log settings pass through for the ASan run and debugging.
cell_env() { # STYLE IS_DIALER SECURITY MUXER TEST_KEY DEBUG: sets E
    E=(PATH="$PATH" HOME="$HOME")
    local v
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS CP2P_LOG RUST_LOG GOLOG_LOG_LEVEL; do
        [ -z "${!v:-}" ] || E+=("$v=${!v}")
    done
    if [ "$1" = legacy ]; then
        E+=(transport=tcp security="$3" muxer="$4" is_dialer="$2" ip="$LISTEN_IP"
            test_timeout_seconds="$CELL_TIMEOUT")
        # Unset, the test-plans default (redis:6379) must do: --netns shows it.
        [ "$REDIS_ADDR" = redis:6379 ] || E+=(redis_addr="$REDIS_ADDR")
    else
        E+=(TRANSPORT=tcp SECURE_CHANNEL="$3" MUXER="$4" IS_DIALER="$2" LISTENER_IP="$LISTEN_IP"
            REDIS_ADDR="$REDIS_ADDR" TEST_TIMEOUT_SECS="$CELL_TIMEOUT" TEST_KEY="$5" DEBUG="$6")
    fi
}

# check_result STYLE FILE: prints "HANDSHAKE PING" (ms) if FILE is exactly
# the result the style's runner reads, with both numbers > 0.
check_result() {
    python3 - "$@" <<'EOF'
import json, re, sys
style, path = sys.argv[1], sys.argv[2]
lines = [l for l in open(path).read().splitlines() if l.strip()]
def bad(why):
    sys.exit("result: %s: %r" % (why, lines))
if style == "legacy":
    # test-plans' compose-stdout-helper.ts: the first {...} holding both keys.
    if len(lines) != 1:
        bad("one JSON line expected")
    r = json.loads(lines[0])
    keys = ("handshakePlusOneRTTMillis", "pingRTTMilllis")
else:
    # unified-testing's run-single-test.sh keeps these lines and hands them to yq.
    lines = [l for l in lines if not l.startswith("#")]
    if len(lines) != 4 or lines[0] != "latency:" or lines[3] != "  unit: ms":
        bad("latency:, handshake_plus_one_rtt, ping_rtt and unit: ms expected")
    r = {}
    for l in lines[1:3]:
        m = re.fullmatch(r"  (handshake_plus_one_rtt|ping_rtt): (\S+)", l)
        if not m:
            bad("bad line %r" % l)
        r[m.group(1)] = float(m.group(2))
    keys = ("handshake_plus_one_rtt", "ping_rtt")
vals = [r.get(k) for k in keys]
if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in vals):
    bad("%s must be numbers > 0" % ", ".join(keys))
print("%.3f %.3f" % tuple(vals))
EOF
}

ROWS=()
PASSED=0 FAILED=0
T_START=$(date +%s%N)
run_cell() { # DIALER LISTENER SECURITY MUXER
    local d=$1 l=$2 sec=$3 mux=$4 style key name slug lpid rc lrc res debug why=""
    [ "$sec" = noise ] && style=legacy || style=unified
    name="$d x $l (tcp, $sec, $mux)"
    key=$(echo "$name" | sha256sum | cut -c1-8) # as unified-testing's compute_test_key
    slug=$d-$l-$sec-$mux
    rcli del listenerAddr "${key}_listener_multiaddr" >/dev/null # a failed cell's leftovers
    # DEBUG=true in the mplex cells (read in the unified one): cp2p's debug logs, on
    # stderr, must leave stdout alone.
    debug=false
    [ "$mux" = yamux ] || debug=true
    cell_env $style false "$sec" "$mux" "$key" $debug
    # shellcheck disable=SC2086 # the command's words split on purpose ("peer transport-interop")
    "${RUN_L[@]}" env -i "${E[@]}" ${CMD[$l]} >"$TMP/$slug.l.out" 2>"$TMP/$slug.l.err" &
    lpid=$!
    PIDS+=($lpid)
    rc=0
    cell_env $style true "$sec" "$mux" "$key" $debug
    # shellcheck disable=SC2086
    "${RUN_D[@]}" env -i "${E[@]}" timeout $((CELL_TIMEOUT + 10)) ${CMD[$d]} >"$TMP/$slug.d.out" 2>"$TMP/$slug.d.err" || rc=$?
    kill -TERM "$lpid" 2>/dev/null || true
    lrc=0; wait "$lpid" || lrc=$?
    if [ $rc != 0 ]; then
        why="dialer exited $rc"
    elif ! res=$(check_result $style "$TMP/$slug.d.out" 2>"$TMP/$slug.check"); then
        why=$(cat "$TMP/$slug.check")
    elif [ $lrc != 0 ]; then
        why="listener exited $lrc"
    fi
    if [ -z "$why" ]; then
        PASSED=$((PASSED + 1))
        read -r hs ping <<<"$res"
        ROWS+=("$(printf '%-6s %-8s %-9s %-8s %-6s %-8s %-6s %11s %9s' "$d" "$l" tcp "$sec" "$mux" "$style" pass "$hs" "$ping")")
    else
        FAILED=$((FAILED + 1))
        ROWS+=("$(printf '%-6s %-8s %-9s %-8s %-6s %-8s %-6s %s' "$d" "$l" tcp "$sec" "$mux" "$style" FAIL "$why")")
        {
            echo "== FAIL: $name ($style names): $why"
            for f in d.out d.err l.out l.err; do echo "--- $f:"; cat "$TMP/$slug.$f"; done
        } >&2
    fi
}

for sec in noise tls; do
    for d in "${IMPLS[@]}"; do
        for l in "${IMPLS[@]}"; do
            for mux in ${MUXERS[$d]}; do
                [[ " ${MUXERS[$l]} " == *" $mux "* ]] || continue
                run_cell "$d" "$l" "$sec" "$mux"
            done
        done
    done
done

ms=$((($(date +%s%N) - T_START) / 1000000))
where="all on loopback, Redis at $REDIS_ADDR"
[ $NETNS = 0 ] || where="Redis, listener (on 0.0.0.0) and dialer in network namespaces of their own, Redis at $REDIS_ADDR"
echo "libp2p transport-interop without Docker ($where); handshake+rtt and ping rtt in ms"
printf '%-6s %-8s %-9s %-8s %-6s %-8s %-6s %11s %9s\n' dialer listener transport security muxer names result handshake+rtt "ping rtt"
printf '%s\n' "${ROWS[@]}"
printf '%d passed, %d failed in %d.%d s\n' $PASSED $FAILED $((ms / 1000)) $((ms % 1000 / 100))
[ $FAILED = 0 ]
