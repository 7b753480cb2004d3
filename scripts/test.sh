#!/usr/bin/env bash
# Installs what is needed, builds, and runs every test of cp2p:
#   1. unit, CLI and js-, go- and rust-libp2p interop tests (ctest) on a normal build;
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the tests of the thread-safe calls (cp2p_host_post, logging) built with
#      ThreadSanitizer;
#   4. every libFuzzer target for a bounded time (CP2P_FUZZ_SECONDS, default 20).
# Run as root on Debian 12. The last line is "N passed, M failed" over the four stages.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
node_dir=$(scripts/deps.sh) || { echo "test: installing dependencies failed" >&2; exit 1; }
export PATH="$node_dir:$PATH"
jobs=$(nproc)

if [ ! -d tests/interop/node_modules ] || [ tests/interop/package-lock.json -nt tests/interop/node_modules ]; then
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error) || { echo "test: npm ci in tests/interop failed" >&2; exit 1; }
fi
# The rust-libp2p peer's first build takes minutes on 2 cores: build it (or
# find it cached) here, so that it does not count against cli_interop_rust's
# 300 s ctest timeout.
bash tests/interop/rust/build.sh >/dev/null ||
    echo "test: the rust-libp2p interop peer did not build; cli_interop_rust will fail" >&2

passed=0; failed=0
stage() { # name, command...
    local name=$1; shift
    echo "=== $name"
    if "$@"; then passed=$((passed + 1)); echo "=== $name: ok"; else failed=$((failed + 1)); echo "=== $name: FAILED"; fi
}

run_suite() { # build dir, cmake args...
    local dir=$1; shift
    scripts/build.sh "$dir" "$@" && (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 600)
}

run_sanitized() {
    (export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
     run_suite build-asan -DCP2P_SANITIZE=ON)
}

run_tsan() {
    local dir=build-tsan t
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCP2P_TSAN=ON >/dev/null &&
        cmake --build "$dir" -j"$jobs" --target test_host_post test_log -- --no-print-directory >/dev/null ||
        return 1
    for t in test_host_post test_log; do
        TSAN_OPTIONS=halt_on_error=1 "$dir/tests/$t" || return 1
    done
}

run_fuzzers() {
    local dir=build-fuzz secs=${CP2P_FUZZ_SECONDS:-20} bad=0 ran=0
    CC=clang scripts/build.sh "$dir" -DCP2P_FUZZ=ON -DCP2P_TESTS=OFF || return 1
    for f in "$dir"/tests/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        local name; name=$(basename "$f")
        local corpus="$dir/corpus/$name"
        mkdir -p "$corpus"
        [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
        ran=$((ran + 1))
        if "$f" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                "$corpus" >"$dir/$name.log" 2>&1; then
            echo "fuzz $name: ok ($(sed -n 's/.*stat::number_of_executed_units: *//p' "$dir/$name.log") runs)"
        else
            echo "fuzz $name: FAILED"; tail -40 "$dir/$name.log"; bad=1
        fi
    done
    [ "$ran" -gt 0 ] || { echo "fuzz: no fuzz targets were built"; return 1; }
    echo "fuzz: $ran targets, $secs s each"
    return $bad
}

stage "unit, cli and interop tests" run_suite build
stage "sanitizers (ASan+UBSan)" run_sanitized
stage "thread sanitizer" run_tsan
stage "fuzz targets" run_fuzzers

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
