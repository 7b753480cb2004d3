#!/usr/bin/env bash
# The metrics port cannot be starved (issue #14, finding 8): 80 clients from
# one address each send one byte of a request and open again when closed,
# more than the 64 slots. Meanwhile /healthz, probed every second as the
# StatefulSet's liveness probe does (2 s timeout), answers every time within
# 2 s, and /metrics still answers; the slow clients gave way (evicted, counted
# in cp2p_metrics_evicted_total, logged).
# ctest: run-serial
source "$(dirname "$0")/lib/common.sh"
HOSTILE=(/usr/bin/python3 "$(dirname "$0")/lib/hostile.py")
/usr/bin/python3 -c 'import cryptography' 2>/dev/null ||
    fail "python3-cryptography is not installed (scripts/deps.sh installs it)"
SHOW_ON_FAIL=(probe.out loris.out loris.err)

M=$(free_port)
CP2P_LOG=info start_cp2pd d -metricsAddr 127.0.0.1:$M
SHOW_ON_FAIL+=(d.err)

# probe PORT SECONDS: GET /healthz once a second (and /metrics every third
# second), each a new connection with a 2 s timeout; one line per request;
# fails if any request failed or took 2 s or more.
probe() {
    python3 - "$@" <<'EOF'
import http.client, sys, time
port, seconds = int(sys.argv[1]), int(sys.argv[2])
bad = 0
for i in range(seconds):
    start = time.monotonic()
    for path in ['/healthz'] + (['/metrics'] if i % 3 == 2 else []):
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            c.request('GET', path)
            r = c.getresponse()
            body = r.read()
            c.close()
            ok = r.status == 200 and (body == b'ok\n' if path == '/healthz' else b'\ncp2p_info{' in body)
            what = f'{r.status}, {len(body)} bytes'
        except Exception as e:
            ok, what = False, repr(e)
        ms = (time.monotonic() - t0) * 1000
        ok = ok and ms < 2000
        bad += not ok
        print(f'{"ok" if ok else "FAIL"} {path} {ms:.0f} ms: {what}', flush=True)
    time.sleep(max(0.0, 1 - (time.monotonic() - start)))
sys.exit(1 if bad else 0)
EOF
}

probe "$M" 1 >"$TMP/probe.out" || fail "/healthz does not answer before the attack"

"${HOSTILE[@]}" loris 127.0.0.1 "$M" 13 80 >"$TMP/loris.out" 2>"$TMP/loris.err" &
ATTACKER=$!
PIDS+=($ATTACKER)
sleep 1.5 # every slot taken, and more clients waiting for one
probe "$M" 10 >"$TMP/probe.out" || fail "a probe failed while the slots were under attack"
echo "probes under attack: $(grep -c '^ok /healthz' "$TMP/probe.out") /healthz, $(grep -c '^ok /metrics' "$TMP/probe.out") /metrics;" \
    "slowest $(sed -E 's/.* ([0-9]+) ms.*/\1/' "$TMP/probe.out" | sort -n | tail -1) ms"
wait "$ATTACKER"
echo "attacker: $(cat "$TMP/loris.out")"
opened=$(sed -E 's/.* on ([0-9]+) connections/\1/' "$TMP/loris.out")
[ "$opened" -gt 160 ] || fail "the slow clients were hardly ever closed ($opened connections)"

metrics=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$M/metrics', timeout=5).read().decode())")
evicted=$(sed -n 's/^cp2p_metrics_evicted_total //p' <<<"$metrics")
[ "${evicted:-0}" -gt 0 ] || fail "no evictions counted: $(grep '^cp2p_metrics' <<<"$metrics")"
echo "evicted: $evicted"
grep -q 'gave way to a newer client' "$TMP/d.err" || fail "no log line for the evicted clients"
[ "$(grep -c 'gave way to a newer client' "$TMP/d.err")" -le 20 ] || fail "the eviction log is not rate-limited"
echo PASS
