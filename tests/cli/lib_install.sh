#!/usr/bin/env bash
# The library as a C programmer meets it (issue #15): install into a
# temporary prefix, build examples/ out of tree three ways (the README's
# `cc ... $(pkg-config --cflags --libs cp2p)`, the static library through
# `pkg-config --static`, and CMake's find_package(cp2p)), and run each
# program: ping a server, chat through a protocol of our own, put and get a
# DHT record, and a pubsub message through a line of three hosts. Then move
# the prefix: pkg-config and CMake still find it. The installed headers
# compile alone under -std=c99 -pedantic.
source "$(dirname "$0")/lib/common.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
EX=$SRC/examples
for t in cc pkg-config cmake; do command -v $t >/dev/null || fail "$t is needed"; done
# A sanitizer build's library needs the same runtime in the programs.
FLAGS="-Wall -Wextra -Wno-unused-parameter -Werror"
if grep -q '^CP2P_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    FLAGS="$FLAGS -fsanitize=address,undefined"
fi

P=$TMP/prefix
cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" || { cat "$TMP/install.log"; fail "install failed"; }
LIBDIR=$(dirname "$(find "$P" -name cp2p.pc)")/..
export PKG_CONFIG_PATH=$(cd "$LIBDIR/pkgconfig" && pwd)

echo "== the installed headers, each alone, under -std=c99 -pedantic"
for h in "$P"/include/cp2p/*.h; do
    printf '#include <cp2p/%s>\nint x;\n' "$(basename "$h")" |
        cc -std=c99 -D_XOPEN_SOURCE=700 -pedantic -Wall -Werror -fsyntax-only \
            $(pkg-config --cflags cp2p) -x c - 2>"$TMP/h.err" ||
        { cat "$TMP/h.err"; fail "$(basename "$h") does not compile alone"; }
done

# run_examples DIR WHAT: the three programs of DIR do their jobs.
run_examples() {
    local d=$1 what=$2 addr
    # the last run's files go first: the shell truncates them in the new
    # process, after wait_line may have read the old "listening on" line
    rm -f "$TMP/ps.out" "$TMP/cs.out"
    "$d/ping" >"$TMP/ps.out" 2>"$TMP/ps.err" &
    local srv=$!
    PIDS+=($srv)
    addr=$(wait_line "$TMP/ps.out" '^listening on ' | cut -d' ' -f3)
    timeout 20 "$d/ping" "$addr" >"$TMP/pc.out" 2>&1 || { cat "$TMP/pc.out"; fail "$what: ping failed"; }
    [ "$(grep -c '^pong: ' "$TMP/pc.out")" = 3 ] || { cat "$TMP/pc.out"; fail "$what: not 3 pongs"; }
    kill -TERM $srv; wait $srv || fail "$what: the ping server did not exit 0 on SIGTERM"

    "$d/chat" >"$TMP/cs.out" 2>"$TMP/cs.err" &
    srv=$!
    PIDS+=($srv)
    addr=$(wait_line "$TMP/cs.out" '^listening on ' | cut -d' ' -f3)
    head -c 300000 /dev/urandom | base64 >"$TMP/chat.in" # many chunks: backpressure at work
    timeout 20 "$d/chat" "$addr" <"$TMP/chat.in" >"$TMP/chat.out" 2>"$TMP/cc.err" ||
        { cat "$TMP/cc.err"; fail "$what: chat failed"; }
    cmp -s "$TMP/chat.in" "$TMP/chat.out" || fail "$what: chat did not come back intact"
    grep -q ': ' "$TMP/cs.out" || fail "$what: the chat server printed nothing"
    kill -TERM $srv; wait $srv || fail "$what: the chat server did not exit 0 on SIGTERM"

    timeout 30 "$d/dht" >"$TMP/dht.out" 2>&1 || { cat "$TMP/dht.out"; fail "$what: dht failed"; }
    grep -q '^a got /example/greeting = hello from c$' "$TMP/dht.out" || fail "$what: dht printed $(cat "$TMP/dht.out")"
    timeout 30 "$d/pubsub" >"$TMP/pubsub.out" 2>&1 || { cat "$TMP/pubsub.out"; fail "$what: pubsub failed"; }
    grep -q '^a got "hello from c" from 12D3KooW.* on example$' "$TMP/pubsub.out" ||
        fail "$what: pubsub printed $(cat "$TMP/pubsub.out")"
    echo "ok: $what"
}

echo "== cc \$(pkg-config --cflags --libs cp2p)"
mkdir -p "$TMP/pc"
for ex in ping chat dht pubsub; do
    cc $FLAGS -o "$TMP/pc/$ex" "$EX/$ex.c" $(pkg-config --cflags --libs cp2p) ||
        fail "$ex does not build with pkg-config"
done
LD_LIBRARY_PATH=$(cd "$LIBDIR" && pwd) run_examples "$TMP/pc" "shared, pkg-config"

echo "== the static library, pkg-config --static"
mkdir -p "$TMP/static"
for ex in ping chat dht pubsub; do
    cc $FLAGS -o "$TMP/static/$ex" "$EX/$ex.c" $(pkg-config --cflags cp2p) \
        $(pkg-config --static --libs cp2p | sed 's/-lcp2p\b/-l:libcp2p.a/') ||
        fail "$ex does not link statically with pkg-config --static"
done
! ldd "$TMP/static/ping" | grep -q libcp2p || fail "the static build uses libcp2p.so"
run_examples "$TMP/static" "static, pkg-config --static"

echo "== CMake find_package(cp2p), after moving the prefix"
mv "$P" "$TMP/moved"
P=$TMP/moved
LIBDIR=$(dirname "$(find "$P" -name cp2p.pc)")/..
export PKG_CONFIG_PATH=$(cd "$LIBDIR/pkgconfig" && pwd)
[ "$(pkg-config --variable=includedir cp2p | xargs realpath)" = "$(realpath "$P/include")" ] ||
    fail "pkg-config does not follow the moved prefix: $(pkg-config --variable=includedir cp2p)"
cmake -S "$EX" -B "$TMP/exb" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_FLAGS="$FLAGS" \
    >"$TMP/cmake.log" 2>&1 || { cat "$TMP/cmake.log"; fail "find_package(cp2p) failed"; }
cmake --build "$TMP/exb" >>"$TMP/cmake.log" 2>&1 || { cat "$TMP/cmake.log"; fail "the CMake build failed"; }
run_examples "$TMP/exb" "shared, CMake find_package"
cmake -S "$EX" -B "$TMP/exs" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_C_FLAGS="$FLAGS" \
    -DCP2P_EXAMPLES_STATIC=ON >"$TMP/cmake.log" 2>&1 && cmake --build "$TMP/exs" >>"$TMP/cmake.log" 2>&1 ||
    { cat "$TMP/cmake.log"; fail "the static CMake build failed"; }
run_examples "$TMP/exs" "static, CMake find_package"
