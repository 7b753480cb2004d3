#!/bin/bash
# cp2p keygen / cp2p id against the js-libp2p key fixtures, round trips of every
# key type, js-libp2p reading cp2p's keys, and one-line errors. $1 = build dir.
set -u
BUILD=$(cd "$1" && pwd)
CP2P=$BUILD/cp2p
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/../fixtures/keys
INTEROP=$HERE/../interop
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# 1. IDs of the js-generated fixtures, both forms.
while read -r file b58 cid; do
    case $file in '#'*|'') continue ;; esac
    got=$("$CP2P" id --key "$FIX/$file" | head -n1)
    [ "$got" = "$b58" ] || fail "id $file: got '$got', want '$b58'"
    got=$("$CP2P" id --key "$FIX/$file" --cid | head -n1)
    [ "$got" = "$cid" ] || fail "id --cid $file: got '$got', want '$cid'"
done < "$FIX/expected.txt"

# 2. keygen of every type: printed ID = `cp2p id`, file mode 0600, no overwrite.
for t in ed25519 secp256k1 ecdsa rsa; do
    k=$TMP/$t.key
    printed=$("$CP2P" keygen --type $t --out "$k") || { fail "keygen $t"; continue; }
    got=$("$CP2P" id --key "$k" | head -n1)
    [ -n "$printed" ] && [ "$printed" = "$got" ] || fail "keygen $t printed '$printed', id says '$got'"
    [ "$(stat -c %a "$k")" = 600 ] || fail "keygen $t: mode $(stat -c %a "$k")"
    "$CP2P" id --key "$k" | sed -n 2p | grep -qi "^Public key type: $t" || fail "id $t: no type line"
done
cp "$TMP/ed25519.key" "$TMP/before"
if "$CP2P" keygen --out "$TMP/ed25519.key" 2>/dev/null; then fail "keygen overwrote a key"; fi
cmp -s "$TMP/before" "$TMP/ed25519.key" || fail "refused keygen still changed the file"
"$CP2P" keygen --force --out "$TMP/ed25519.key" >/dev/null || fail "keygen --force"
cmp -s "$TMP/before" "$TMP/ed25519.key" && fail "keygen --force did not write a new key"
printed=$("$CP2P" keygen --type rsa --bits 3072 --out "$TMP/rsa3072.key") || fail "keygen rsa 3072"

# 3. js-libp2p reads cp2p's keys and derives the same peer ID (the spec's, for ECDSA).
if [ ! -d "$INTEROP/node_modules" ]; then
    fail "tests/interop/node_modules is missing: run 'cd tests/interop && npm ci'"
else
    for t in ed25519 secp256k1 ecdsa rsa rsa3072; do
        k=$TMP/$t.key
        want=$("$CP2P" id --key "$k" | head -n1)
        read -r js spec < <(cd "$INTEROP" && node --import ./polyfill.mjs "$FIX/jskeys.mjs" id "$k") \
            || { fail "js could not load cp2p's $t key"; continue; }
        [ "$spec" = "$want" ] || fail "js $t: spec ID '$spec', cp2p '$want'"
        [ "$t" = ecdsa ] || [ "$js" = "$want" ] || fail "js $t: peer ID '$js', cp2p '$want'"
    done
fi

# 4. Errors: one line on stderr, "cp2p: ...", non-zero exit (1 runtime, 2 usage).
expect_error() { # <want exit> <description> <args...>
    local want=$1 what=$2; shift 2
    "$CP2P" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ $rc = "$want" ] || fail "$what: exit $rc, want $want"
    [ "$(wc -l < "$TMP/err")" = 1 ] && grep -q '^cp2p: .*: ' "$TMP/err" || fail "$what: stderr '$(cat "$TMP/err")'"
    [ -s "$TMP/out" ] && fail "$what: wrote to stdout"
}
head -c 100 /dev/urandom > "$TMP/garbage"
: > "$TMP/empty"
expect_error 1 "missing file" id --key "$TMP/nope"
expect_error 1 "garbage file" id --key "$TMP/garbage"
expect_error 1 "empty file" id --key "$TMP/empty"
expect_error 1 "unknown type" keygen --type dsa --out "$TMP/x.key"
[ -e "$TMP/x.key" ] && fail "unknown type left a file"
expect_error 2 "no --key" id
expect_error 2 "no --out" keygen
expect_error 2 "bad option" id --bogus
expect_error 2 "bad bits" keygen --type rsa --bits 1024 --out "$TMP/y.key"
"$CP2P" id --help | grep -q -- '--key' || fail "id --help"
"$CP2P" keygen --help | grep -q -- '--type' || fail "keygen --help"

[ $fails = 0 ] && echo "keys.sh: all passed" || { echo "keys.sh: $fails failure(s)"; exit 1; }
