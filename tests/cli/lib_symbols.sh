#!/usr/bin/env bash
# The shared library exports exactly the public API (issue #15): every symbol
# libcp2p.so exports is a function a header in include/cp2p/ declares with
# CP2P_API, and every such function is exported. Internal modules (cp2p_swarm_*,
# cp2p_kad_msg_*, test hooks) and the protobuf-c code stay inside.
source "$(dirname "$0")/lib/common.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SO=$BUILD/libcp2p.so
[ -f "$SO" ] || fail "$SO not built"
command -v nm >/dev/null || fail "nm (binutils) is needed"

nm -D --defined-only "$SO" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u >"$TMP/exported"
# The names after CP2P_API, declarations that may span lines.
ls "$SRC"/include/cp2p/*.h | grep -v '/export\.h$' | xargs cat | tr '\n' ' ' |
    grep -o 'CP2P_API [^(;#]*(' | sed -E 's/.*[^a-z0-9_](cp2p_[a-z0-9_]+)[[:space:]]*\($/\1/' |
    grep '^cp2p_' | sort -u >"$TMP/declared"
n=$(wc -l <"$TMP/declared")
[ "$n" -gt 150 ] || fail "only $n CP2P_API declarations found: is the parse broken?"

extra=$(comm -23 "$TMP/exported" "$TMP/declared")
[ -z "$extra" ] || fail "exported but declared by no public header: $(echo $extra | head -c 2000)"
missing=$(comm -13 "$TMP/exported" "$TMP/declared")
[ -z "$missing" ] || fail "declared CP2P_API but not exported (not defined?): $missing"
# Undeclared internals a program could collide with, spelled out.
for sym in kad__message__unpack noise__handshake_payload__pack cp2p_swarm_new cp2p_noise_set_nonces; do
    ! grep -qx "$sym" "$TMP/exported" || fail "$sym is exported"
done
soname=$(objdump -p "$SO" | awk '$1 == "SONAME" {print $2}')
[[ $soname == libcp2p.so.[0-9]* ]] || fail "no versioned soname: '$soname'"
echo "ok: $n public functions exported, nothing else; soname $soname"
