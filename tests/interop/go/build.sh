#!/usr/bin/env bash
# Prints the path of the go-libp2p interop peer (main.go here), building it
# only when the cache has none for these sources: the binary lives in
# ${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}/go-<sha256 of go.mod, go.sum
# and *.go>/peer. The modules come from Go's own module cache
# (scripts/deps.sh downloads them); go.sum pins every one.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C
command -v go >/dev/null ||
    { echo "go-peer: Go is not installed (the go-libp2p peer needs Go $(sed -n 's/^go //p' go.mod) or later)" >&2; exit 1; }
key=$(sha256sum go.mod go.sum *.go | sha256sum | cut -d' ' -f1)
dir=${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}/go-$key
if [ ! -x "$dir/peer" ]; then
    mkdir -p "$dir"
    tmp=$dir/peer.$$
    trap 'rm -f "$tmp"' EXIT
    GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false -o "$tmp" . >&2 ||
        { echo "go-peer: go build in tests/interop/go failed" >&2; exit 1; }
    mv -f "$tmp" "$dir/peer" # atomic: a concurrent run sees the old state or the whole binary
fi
echo "$dir/peer"
