#!/usr/bin/env bash
# ctest: run-serial
# The libp2p transport-interop contract (tests/interop/transport): the
# matrix of cp2p, go-libp2p and rust-libp2p dialers and listeners over tcp x
# {noise, tls} x {yamux, mplex where both have it}, test-plans names in
# some cells and unified-testing names in the others (run.sh), twice: all
# on loopback, and laid out as the suite's containers are, each process in
# a network namespace of its own with the listener on 0.0.0.0 and Redis
# found by name (run.sh --netns; skipped unless root). Then what must fail,
# and how: values the apps cannot run exit 2 with a line saying why, before
# any Redis; an unreachable Redis, a listener that never comes, a listener
# nobody stops and a muxer the other side lacks exit 1.
INTEROP_PEERS="go rust"
. "$(dirname "$0")/../interop/lib.sh"
RUN=$INTEROP/transport/run.sh
APP=$BUILD/cp2p-transport-interop
RUST_TI=$(dirname "$RUST_PEER")/transport-interop
[ -x "$APP" ] || fail "$APP not built (it needs hiredis: scripts/deps.sh installs libhiredis-dev)"

echo "== matrix on loopback"
bash "$RUN" "$BUILD" || fail "the matrix on loopback failed"
echo "== matrix in network namespaces"
if [ "$(id -u)" = 0 ]; then
    bash "$RUN" --netns "$BUILD" || fail "the matrix in network namespaces failed"
else
    echo "SKIP: needs root and ip netns"
fi

echo "== what the apps refuse (exit 2)"
# expect_rc RC REGEX ENV... -- CMD...: CMD, given only ENV, exits RC and says REGEX on stderr.
expect_rc() {
    local want=$1 re=$2 env=() rc=0; shift 2
    while [ "$1" != -- ]; do env+=("$1"); shift; done; shift
    env -i PATH="$PATH" HOME="$HOME" ${ASAN_OPTIONS:+ASAN_OPTIONS=$ASAN_OPTIONS} "${env[@]}" \
        timeout 20 "$@" >"$TMP/x.out" 2>"$TMP/x.err" || rc=$?
    [ $rc = "$want" ] && grep -qE "$re" "$TMP/x.err" && [ ! -s "$TMP/x.out" ] ||
        { cat "$TMP/x.out" "$TMP/x.err" >&2; fail "${env[*]} $*: rc $rc (want $want, '$re' on stderr, nothing on stdout)"; }
}
OK=(transport=tcp security=noise muxer=yamux is_dialer=true redis_addr=127.0.0.1:1)
for t in quic-v1 ws wss webtransport webrtc-direct; do
    expect_rc 2 "transport $t is not supported by cp2p yet" transport=$t is_dialer=true -- "$APP"
    expect_rc 2 "TRANSPORT=$t: this peer runs tcp only" TRANSPORT=$t IS_DIALER=true -- "$GO_PEER" transport-interop
    expect_rc 2 "TRANSPORT=$t: this peer runs tcp only" TRANSPORT=$t IS_DIALER=true -- "$RUST_TI"
done
expect_rc 2 "unknown transport 'udp'" "${OK[@]}" transport=udp -- "$APP"
expect_rc 2 "TRANSPORT \(or transport\) is not set" is_dialer=true -- "$APP"
expect_rc 2 "unknown muxer 'spdy'" "${OK[@]}" muxer=spdy -- "$APP"
expect_rc 2 "SECURE_CHANNEL \(or security\) is not set" transport=tcp muxer=yamux is_dialer=true -- "$APP"
expect_rc 2 "unknown secure channel 'ssl'" "${OK[@]}" SECURE_CHANNEL=ssl -- "$APP"
expect_rc 2 "IS_DIALER=yes: true or false expected" "${OK[@]}" IS_DIALER=yes -- "$APP"
expect_rc 2 "test_timeout_seconds=soon" "${OK[@]}" test_timeout_seconds=soon -- "$APP"
expect_rc 2 "bad Redis address" "${OK[@]}" redis_addr=redis:http -- "$APP"
expect_rc 2 "muxer=\"mplex\": yamux expected" "${OK[@]}" muxer=mplex -- "$GO_PEER" transport-interop
expect_rc 2 "muxer=\"mplex\": yamux expected" "${OK[@]}" muxer=mplex -- "$RUST_TI"

echo "== what fails at run time (exit 1)"
for app in "$APP" "$GO_PEER transport-interop" "$RUST_TI"; do
    # shellcheck disable=SC2086 # "peer transport-interop" splits on purpose
    expect_rc 1 "(Redis at 127.0.0.1:1 unreachable)" "${OK[@]}" test_timeout_seconds=1 -- $app
done
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
R=(transport=tcp security=noise muxer=yamux ip=127.0.0.1 redis_addr=127.0.0.1:$REDIS_PORT)
expect_rc 1 "BLPOP listenerAddr: no listener address within 1 s" "${R[@]}" is_dialer=true test_timeout_seconds=2 -- "$APP"
expect_rc 1 "BLPOP t1_listener_multiaddr: no listener address" "${R[@]}" is_dialer=true test_timeout_seconds=2 TEST_KEY=t1 -- "$RUST_TI"
expect_rc 1 "listener: timed out after 1 s" "${R[@]}" is_dialer=false test_timeout_seconds=1 -- "$APP"
redis-cli -p "$REDIS_PORT" del listenerAddr >/dev/null
# A cp2p dialer that wants mplex against a go listener (yamux only): the dial fails.
env -i PATH="$PATH" HOME="$HOME" "${R[@]}" is_dialer=false "$GO_PEER" transport-interop >/dev/null 2>"$TMP/go-l.err" &
PIDS+=($!)
expect_rc 1 "dial failed" "${R[@]}" muxer=mplex is_dialer=true test_timeout_seconds=10 -- "$APP"

echo PASS
