#!/usr/bin/env bash
# cp2p perf with the libp2p perf runner's command line and JSON lines, against
# a local `cp2p perf --run-server`; then perf interop with js-libp2p both ways
# (bench/js/perf.mjs, a /perf/1.0.0 peer on the js-libp2p of tests/interop).
. "$(dirname "$0")/../interop/lib.sh"
ROOT=$(cd "$INTEROP/../.." && pwd)

# json_check FILE: every line is one of the runner's JSON objects; prints the final one.
json_check() {
    node -e '
        const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")
        let final = null
        for (const l of lines) {
            const o = JSON.parse(l)
            const keys = Object.keys(o).sort().join(",")
            if (keys !== "downloadBytes,timeSeconds,type,uploadBytes") throw new Error("keys " + keys)
            if (!["intermediary", "final"].includes(o.type)) throw new Error("type " + o.type)
            if (!(o.timeSeconds > 0) || !Number.isInteger(o.uploadBytes) || !Number.isInteger(o.downloadBytes)) throw new Error(l)
            if (o.type === "final") { if (final) throw new Error("two final lines"); final = o }
        }
        if (final) console.log(`final up=${final.uploadBytes} down=${final.downloadBytes}`)
    ' "$1"
}

# start_server NAME CMD...: a perf server on 127.0.0.1:0; sets SRV_PORT, SRV_PID.
start_server() {
    local name=$1; shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    SRV_PID=$!
    local ma
    ma=$(wait_line "$TMP/$name.out" '^/ip4/127\.0\.0\.1/tcp/[0-9]+/p2p/')
    [[ $ma == */p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN ]] ||
        fail "$name: not the runner's fixed identity: $ma"
    SRV_PORT=$(echo "$ma" | cut -d/ -f5)
}

echo "== usage"
"$CP2P" perf --help | grep -q -- '--upload-bytes' || fail "--help does not describe the options"
for bad in "" "--server-address 127.0.0.1" "--server-address 127.0.0.1:1 --transport quic-v1" \
           "--server-address 127.0.0.1:1 --upload-bytes -5" "--server-address 127.0.0.1:1 --bogus 1"; do
    rc=0; "$CP2P" perf $bad >/dev/null 2>"$TMP/usage.err" || rc=$?
    [ "$rc" = 2 ] || fail "'cp2p perf $bad' exited $rc, want 2"
    [ "$(wc -l <"$TMP/usage.err")" = 1 ] || fail "'cp2p perf $bad': want one line on stderr"
done

echo "== cp2p client, cp2p server"
start_server srv "$CP2P" perf --run-server --server-address 127.0.0.1:0
"$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --transport tcp --upload-bytes 10000000 \
    --download-bytes 20000003 >"$TMP/c1.out" 2>"$TMP/c1.err" || { show c1.out c1.err; fail "client failed"; }
[ "$(json_check "$TMP/c1.out")" = "final up=10000000 down=20000003" ] || { show c1.out; fail "wrong final line"; }
"$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --upload-bytes 0 --download-bytes 0 >"$TMP/c0.out" ||
    fail "empty run failed"
[ "$(json_check "$TMP/c0.out")" = "final up=0 down=0" ] || { show c0.out; fail "wrong final line (0, 0)"; }
"$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --upload-bytes 1000 --download-bytes 3000 \
    --streams 16 >"$TMP/c16.out" || fail "16 streams failed"
[ "$(json_check "$TMP/c16.out")" = "final up=16000 down=48000" ] || { show c16.out; fail "wrong 16-stream totals"; }

echo "== the runner's timer variant: download max uint64 under timeout, one line a second"
rc=0
timeout 2.5 "$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --upload-bytes 0 \
    --download-bytes 18446744073709551615 >"$TMP/t.out" 2>"$TMP/t.err" || rc=$?
[ "$rc" = 124 ] || { show t.out t.err; fail "the endless download exited $rc before the timeout"; }
json_check "$TMP/t.out" >/dev/null || { show t.out; fail "bad JSON"; }
n=$(grep -c '"type":"intermediary"' "$TMP/t.out" || true)
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || { show t.out; fail "want 1 to 3 intermediary lines in 2.5 s, got $n"; }
grep -q '"downloadBytes":[1-9]' "$TMP/t.out" || { show t.out; fail "intermediary lines count no bytes"; }
kill -0 "$SRV_PID" || fail "the server died"

echo "== unreachable server"
rc=0; "$CP2P" perf --server-address 127.0.0.1:1 --upload-bytes 1 >"$TMP/u.out" 2>"$TMP/u.err" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot reach" "$TMP/u.err" || { show u.err; fail "unreachable: exit $rc"; }

# The js peer runs from a copy beside a link to tests/interop's node_modules,
# the js-libp2p that every interop test uses.
mkdir "$TMP/js"
cp "$ROOT/bench/js/perf.mjs" "$TMP/js/"
ln -s "$INTEROP/node_modules" "$TMP/js/node_modules"
jsperf() { node "$TMP/js/perf.mjs" "$@"; }

echo "== js client, cp2p server"
jsperf --server-address "127.0.0.1:$SRV_PORT" --transport tcp --upload-bytes 3000001 \
    --download-bytes 5000002 >"$TMP/j1.out" 2>"$TMP/j1.err" || { show j1.out j1.err; fail "js client failed"; }
[ "$(json_check "$TMP/j1.out")" = "final up=3000001 down=5000002" ] || { show j1.out; fail "js: wrong final line"; }
kill -INT "$SRV_PID"
wait "$SRV_PID" || fail "the cp2p server did not exit cleanly on SIGINT"

echo "== cp2p client, js server"
start_server jsrv node "$TMP/js/perf.mjs" --run-server --server-address 127.0.0.1:0
"$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --upload-bytes 4000003 --download-bytes 6000004 \
    >"$TMP/c2.out" 2>"$TMP/c2.err" || { show c2.out c2.err jsrv.err; fail "cp2p client vs js failed"; }
[ "$(json_check "$TMP/c2.out")" = "final up=4000003 down=6000004" ] || { show c2.out; fail "vs js: wrong final line"; }
"$CP2P" perf --server-address "127.0.0.1:$SRV_PORT" --upload-bytes 100 --download-bytes 200 --streams 8 \
    >"$TMP/c3.out" 2>"$TMP/c3.err" || { show c3.out c3.err; fail "8 streams vs js failed"; }
[ "$(json_check "$TMP/c3.out")" = "final up=800 down=1600" ] || { show c3.out; fail "vs js: wrong totals"; }
echo PASS
