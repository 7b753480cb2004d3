#!/usr/bin/env bash
# Fuzz campaign: builds the libFuzzer targets into build-fuzz/ (as scripts/test.sh
# does) and runs every target for SECONDS each (first argument, or
# CP2P_FUZZ_SECONDS, default 600), on a working corpus kept between runs in
# ${CP2P_FUZZ_WORK:-$HOME/.cache/cp2p-fuzz}/<target>, seeded from tests/fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS] [--only NAME]... [--jobs N] [--minimize]
#
#   --only NAME   run this target only (fuzz_noise or noise); repeatable
#   --jobs N      run N targets at once (default 1)
#   --minimize    do not fuzz: merge (-merge=1) each working corpus and its seeds
#                 into a fresh minimal corpus and copy it to tests/fuzz/corpus/<target>/,
#                 replacing what is there (crash-* regression inputs are kept)
#   --help        print this
#
# One line per target: "fuzz <target>: <executions> executions, <seconds> s, corpus <n> files".
# An input that crashes a target (or runs out of time or memory) is saved in
# <work>/crashes/ and reported as "CRASH <target> <file>"; the script then exits 1.
# Logs are in <work>/logs/, and every result line is appended to <work>/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

secs=${CP2P_FUZZ_SECONDS:-600}
jobs=1
minimize=0
only=()
while [ $# -gt 0 ]; do
    case $1 in
        --only) [ $# -ge 2 ] || { echo "fuzz: --only needs a target name" >&2; exit 2; }
                only+=("fuzz_${2#fuzz_}"); shift 2 ;;
        --jobs) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --jobs needs a number" >&2; exit 2; }
                jobs=$2; shift 2 ;;
        --minimize) minimize=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "fuzz: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) [[ $1 =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: SECONDS must be a number of seconds, at least 1, not $1" >&2; exit 2; }
           secs=$1; shift ;;
    esac
done

work=${CP2P_FUZZ_WORK:-$HOME/.cache/cp2p-fuzz}
dir=build-fuzz
mkdir -p "$work/crashes" "$work/logs"
work=$(cd "$work" && pwd)

CC=clang scripts/build.sh "$dir" -DCP2P_FUZZ=ON -DCP2P_TESTS=OFF || { echo "fuzz: build failed" >&2; exit 1; }

targets=()
for f in "$dir"/tests/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    targets+=("$(basename "$f")")
done
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no fuzz targets were built" >&2; exit 1; }
if [ "${#only[@]}" -gt 0 ]; then
    picked=()
    for name in "${only[@]}"; do
        [ -x "$dir/tests/fuzz/$name" ] || { echo "fuzz: no target $name (have: ${targets[*]})" >&2; exit 2; }
        [[ " ${picked[*]} " == *" $name "* ]] || picked+=("$name")
    done
    targets=("${picked[@]}")
fi

# Runs one target for $secs on its working corpus; prints its line, and a CRASH
# line (returning 1) when libFuzzer stopped on a failing input.
fuzz_one() {
    local name=$1 corpus="$work/$1" log="$work/logs/$1.log" rc=0
    mkdir -p "$corpus"
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
    local start; start=$(date +%s)
    "$dir/tests/fuzz/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/crashes/$name-" "$corpus" >"$log" 2>&1 || rc=$?
    local took=$(($(date +%s) - start))
    local execs; execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    local files; files=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    local line="fuzz $name: ${execs:-?} executions, $took s, corpus $files files"
    echo "$line"
    echo "$(date -u +%FT%TZ) $line" >>"$work/results.txt"
    [ "$rc" -eq 0 ] && return 0
    local art; art=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    echo "CRASH $name ${art:-"(no input saved; exit status $rc, see $log)"}"
    echo "$(date -u +%FT%TZ) CRASH $name ${art:-"exit status $rc"}" >>"$work/results.txt"
    tail -40 "$log" | sed 's/^/    /'
    return 1
}

# Merges the working corpus and the seeds into a fresh minimal corpus that
# replaces tests/fuzz/corpus/<target>/, keeping its crash-* inputs.
minimize_one() {
    local name=$1 corpus="$work/$1" min="$work/$1.min" log="$work/logs/$1.merge.log"
    local seeds="tests/fuzz/corpus/$name"
    mkdir -p "$corpus" "$seeds"
    rm -rf "$min" && mkdir -p "$min"
    if ! "$dir/tests/fuzz/$name" -merge=1 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$work/crashes/$name-" "$min" "$corpus" "$seeds" >"$log" 2>&1; then
        echo "CRASH $name merge failed, see $log"; tail -40 "$log" | sed 's/^/    /'
        return 1
    fi
    local before; before=$(find "$corpus" "$seeds" -maxdepth 1 -type f | wc -l)
    find "$seeds" -maxdepth 1 -type f ! -name 'crash-*' -delete
    cp -r "$min/." "$seeds/"
    rm -rf "$min"
    echo "minimize $name: $before inputs -> $(find "$seeds" -maxdepth 1 -type f | wc -l) files," \
         "$(find "$seeds" -maxdepth 1 -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }') bytes in $seeds"
}

step=fuzz_one
[ "$minimize" -eq 1 ] && step=minimize_one
[ "$minimize" -eq 1 ] || echo "fuzz: ${#targets[@]} targets, $secs s each, $jobs at a time, work in $work"
bad=0 running=0
for name in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || bad=1
        running=$((running - 1))
    fi
    "$step" "$name" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || bad=1
    running=$((running - 1))
done
[ "$bad" -eq 0 ] || { echo "fuzz: some targets failed (inputs in $work/crashes)"; exit 1; }
