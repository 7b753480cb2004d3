#!/usr/bin/env bash
# cp2pd -h against the real p2pd -h (v0.9.2, tests/interop/p2pd, built once
# and cached; one that cannot be built fails the test): both outputs are
# parsed as Go's flag package prints them, and every p2pd flag must be in
# cp2pd with the same type and the same default, but for the differences
# listed in DIFFERENT below with the reason. cp2pd's extra flags are listed.
source "$(dirname "$0")/lib/common.sh"
P2PD=$(bash "$(dirname "$0")/../interop/p2pd/build.sh") || fail "the real p2pd could not be built (tests/interop/p2pd/build.sh)"
command -v python3 >/dev/null || fail "python3 is needed"
"$P2PD" -h >"$TMP/p2pd.help" 2>&1 || true # Go's flag prints usage on stderr, exits 0 (2 before Go 1.x)
"$BUILD/cp2pd" -h >"$TMP/cp2pd.help" 2>&1 || fail "cp2pd -h failed"
grep -q '^  -listen string$' "$TMP/p2pd.help" || fail "p2pd -h printed no flags: $(head -5 "$TMP/p2pd.help")"

python3 - "$TMP/p2pd.help" "$TMP/cp2pd.help" <<'PY'
import re, sys

# flag: (p2pd's default, cp2pd's default, why)
DIFFERENT = {
    'plaintext': ('true', None, 'plaintext does not authenticate and, offered beside noise and tls, '
                  'lets a man in the middle downgrade a connection to it: cp2pd offers it only when asked'),
}

def flags(path):
    """{name: (type, default or None)} from Go flag.PrintDefaults output."""
    out, cur = {}, None
    for line in open(path, encoding='utf-8'):
        line = line.rstrip('\n')
        m = re.match(r'^  -(\S+?)(?: (\w+))?(?:\t(.*))?$', line)
        if m:
            cur = m.group(1)
            out[cur] = [m.group(2) or 'bool', m.group(3) or '']
        elif line.startswith('    \t') and cur:
            out[cur][1] += (' ' if out[cur][1] else '') + line[5:]
        else:
            cur = None
    res = {}
    for name, (typ, usage) in out.items():
        d = re.search(r' \(default ("(?:[^"\\]|\\.)*"|\S+)\)$', usage)
        res[name] = (typ, d.group(1).strip('"') if d else None)
    return res

p2pd, cp2pd = flags(sys.argv[1]), flags(sys.argv[2])
assert len(p2pd) > 30 and len(cp2pd) > 30, (len(p2pd), len(cp2pd))
bad = []
for name, (typ, default) in sorted(p2pd.items()):
    if name not in cp2pd:
        bad.append(f'-{name}: in p2pd, not in cp2pd')
        continue
    ctyp, cdefault = cp2pd[name]
    if ctyp != typ:
        bad.append(f'-{name}: type {typ} in p2pd, {ctyp} in cp2pd')
    want = DIFFERENT.get(name)
    if want:
        if (default, cdefault) != want[:2]:
            bad.append(f'-{name}: listed as different ({want[0]} / {want[1]}), is {default} / {cdefault}: update DIFFERENT')
        else:
            print(f'  -{name}: default {default} in p2pd, {cdefault or "false"} in cp2pd: {want[2]}')
    elif cdefault != default:
        bad.append(f'-{name}: default {default} in p2pd, {cdefault} in cp2pd')
for name in DIFFERENT:
    if name not in p2pd:
        bad.append(f'-{name}: in DIFFERENT but not a p2pd flag')
extra = sorted(set(cp2pd) - set(p2pd))
print(f'{len(p2pd)} p2pd flags compared; cp2pd\'s own ({len(extra)}): ' + ' '.join('-' + e for e in extra))
if bad:
    print('FAIL:\n  ' + '\n  '.join(bad))
    sys.exit(1)
PY
echo "OK: cp2pd -h has every p2pd flag with p2pd's type and default"
