#!/usr/bin/env bash
# The library's reference (issue #15): every function a public header
# exports (CP2P_API) has a comment saying what it does, and Doxygen builds
# the HTML reference from the headers without a single warning.
source "$(dirname "$0")/lib/common.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
command -v doxygen >/dev/null || fail "doxygen is not installed (scripts/deps.sh installs it)"

python3 - "$SRC"/include/cp2p/*.h <<'PY' || fail "public functions without a comment"
import sys
bad = []
for p in sys.argv[1:]:
    lines = open(p).read().split('\n')
    for i, l in enumerate(lines):
        if not l.startswith('CP2P_API '):
            continue
        j = i - 1  # a group of declarations may share the comment above it
        while j >= 0 and (lines[j].startswith('CP2P_API ') or
                          (lines[j].startswith(' ') and not lines[j].strip().startswith('*'))):
            j -= 1
        if (j < 0 or not lines[j].rstrip().endswith('*/')) and '/**<' not in l:
            bad.append(f'{p}:{i + 1}: {l}')
print('\n'.join(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

(cd "$SRC" && CP2P_DOCS_OUT=$TMP/docs doxygen docs/Doxyfile) >"$TMP/doxygen.log" 2>&1 ||
    { cat "$TMP/doxygen.log"; fail "doxygen failed (its warnings are errors)"; }
[ ! -s "$TMP/doxygen.log" ] || { cat "$TMP/doxygen.log"; fail "doxygen warned"; }
[ -f "$TMP/docs/html/index.html" ] || fail "no HTML reference"
n=0
for f in $(cat "$SRC"/include/cp2p/*.h | grep -o 'CP2P_API [^(]*(' | grep -o 'cp2p_[a-z0-9_]*($' | tr -d '('); do
    grep -q ">$f()&#160;" "$TMP/docs/html/globals_func"*.html ||
        fail "$f is not in the reference"
    n=$((n + 1))
done
[ "$n" -gt 150 ] || fail "only $n functions checked"
echo "ok: $n public functions documented and in the HTML reference"
