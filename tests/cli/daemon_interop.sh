#!/usr/bin/env bash
# The public @libp2p/interop suite (connect, streams, DHT) with cp2pd as "go"
# and js-libp2p + @libp2p/daemon-server as "js". Cases for transports cp2p lacks
# are skipped by the suite; every other case must pass.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
INTEROP=$(cd "$(dirname "$0")/../interop" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$INTEROP/node_modules/@libp2p/interop/package.json" ] ||
    fail "@libp2p/interop is not installed: run 'npm ci' in tests/interop"
[ -x "$BUILD/cp2pd" ] || fail "$BUILD/cp2pd not built"
cd "$INTEROP/daemon"
CP2PD=$BUILD/cp2pd MOCHA_REPORTER=${MOCHA_REPORTER:-dot} node --import ../polyfill.mjs run.mjs "${CP2P_INTEROP_GREP:-}"
