# Shared by the script tests: sourced with the build directory as $1. Sets
# BUILD, TMP (removed at exit) and PIDS (killed at exit); gives fail, wait_line
# and start_cp2pd.
set -euo pipefail

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)

SHOW_ON_FAIL=() # files in $TMP to print when a check fails; (all): every .out and .err
show() {
    [ "${1:-}" = all ] && set -- $(cd "$TMP" && ls -- *.out *.err 2>/dev/null)
    for f in "$@"; do echo "--- $f:" >&2; cat "$TMP/$f" >&2 2>/dev/null || true; done
}
fail() { show "${SHOW_ON_FAIL[@]}"; echo "FAIL: $*" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
# A script with more to undo (namespaces...) defines cleanup_more.
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if declare -F cleanup_more >/dev/null; then cleanup_more; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# wait_line FILE REGEX [SECONDS]: print the first matching line once it appears.
wait_line() {
    local i
    for ((i = 0; i < ${3:-20} * 10; i++)); do
        if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "--- $1:" >&2; cat "$1" >&2 || true
    fail "no line matching '$2' in $1"
}

# start_cp2pd NAME ARGS...: cp2pd with a TCP control socket and a host on
# loopback; sets CTL (control port), ID and DAEMON_PID.
start_cp2pd() {
    local name=$1; shift
    "$BUILD/cp2pd" -listen /ip4/127.0.0.1/tcp/0 -hostAddrs=/ip4/127.0.0.1/tcp/0 "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    DAEMON_PID=$!
    wait_line "$TMP/$name.out" '^Peer Addrs:' 5 >/dev/null || { cat "$TMP/$name.err"; fail "$name did not start"; }
    CTL=$(sed -n 's#^Control socket: /ip4/127.0.0.1/tcp/##p' "$TMP/$name.out")
    ID=$(sed -n 's/^Peer ID: //p' "$TMP/$name.out")
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# proc_kb PID FIELD: a size from /proc/PID/status in kB (VmRSS, VmHWM ...).
proc_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
# default) before reuse: tests that measure resident memory keep it small,
# so that what they see is cp2p's.
small_quarantine() { [ -z "${ASAN_OPTIONS:-}" ] || export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=8"; }
