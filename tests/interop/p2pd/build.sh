#!/usr/bin/env bash
# Prints the path of the real go-libp2p-daemon's p2pd, at the release go.mod
# pins (v0.9.2), building it only when the cache has none for these files: the
# binary lives in ${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}/p2pd-<sha256
# of go.mod, go.sum and *.go>/p2pd. The modules come from Go's own module cache
# (scripts/deps.sh downloads them); go.sum pins every one.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C
command -v go >/dev/null ||
    { echo "p2pd: Go is not installed (the real p2pd needs Go $(sed -n 's/^go //p' go.mod) or later)" >&2; exit 1; }
key=$(sha256sum go.mod go.sum *.go | sha256sum | cut -d' ' -f1)
dir=${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}/p2pd-$key
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9 # tests that start at once build it once
if [ ! -x "$dir/p2pd" ]; then
    tmp=$dir/p2pd.$$
    trap 'rm -f "$tmp"' EXIT
    GOFLAGS=-mod=readonly nice go build -trimpath -buildvcs=false -o "$tmp" \
        github.com/libp2p/go-libp2p-daemon/p2pd >&2 ||
        { echo "p2pd: go build in tests/interop/p2pd failed" >&2; exit 1; }
    mv -f "$tmp" "$dir/p2pd" # atomic: a concurrent run sees the old state or the whole binary
fi
echo "$dir/p2pd"
