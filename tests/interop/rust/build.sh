#!/usr/bin/env bash
# Prints the path of the rust-libp2p interop peer (src/main.rs here), building
# it only when the cache has none for these sources: the binary lives in
# ${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}/rust-<sha256 of Cargo.toml,
# Cargo.lock and every src/**/*.rs>/peer, beside the crate's other binaries
# (each [[bin]] of Cargo.toml, under its own name). Cargo builds in the shared target directory
# .../rust-target, so a change to main.rs recompiles main.rs only. The crates
# come from cargo's own registry cache (scripts/deps.sh fetches them);
# Cargo.lock pins every one.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C
command -v cargo >/dev/null ||
    { echo "rust-peer: cargo is not installed (the rust-libp2p peer needs Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or later; see rustup.rs)" >&2; exit 1; }
cache=${CP2P_INTEROP_CACHE:-$HOME/.cache/cp2p-interop}
key=$(find src -name '*.rs' | sort | xargs sha256sum Cargo.toml Cargo.lock | sha256sum | cut -d' ' -f1)
dir=$cache/rust-$key
if [ ! -x "$dir/peer" ]; then
    mkdir -p "$dir"
    tmp=$dir/peer.$$
    trap 'rm -f "$tmp"' EXIT
    export CARGO_TARGET_DIR=$cache/rust-target
    # Worktrees (git worktree add) share this target directory, and cargo
    # takes their copies of this crate for one package: after another
    # worktree's build it may find ours fresh and leave that one's binary in
    # release/. So, under one lock across builds: forget this crate's
    # artifacts (the dependencies stay built), build, copy.
    (
        flock 9
        cargo clean --release -p cp2p-interop-peer >/dev/null 2>&1 || true
        cargo build --release --locked >&2 ||
            { echo "rust-peer: cargo build in tests/interop/rust failed" >&2; exit 1; }
        for bin in $(awk '/^\[\[bin\]\]/ {b = 1} b && /^name *=/ {gsub(/"/, "", $3); print $3; b = 0}' Cargo.toml); do
            [ "$bin" = peer ] || { cp "$CARGO_TARGET_DIR/release/$bin" "$dir/$bin.$$" && mv -f "$dir/$bin.$$" "$dir/$bin"; }
        done
        cp "$CARGO_TARGET_DIR/release/peer" "$tmp"
    ) 9>"$cache/rust-build.lock" || exit 1
    mv -f "$tmp" "$dir/peer" # atomic: a concurrent run sees the old state or the whole binary
fi
echo "$dir/peer"
