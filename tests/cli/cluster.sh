#!/usr/bin/env bash
# The Kubernetes scenarios of deploy/kubernetes (ping, mDNS, DHT) on this
# machine, in network namespaces: tests/cluster/run with this build. Needs
# root (CI runs as root); skips otherwise.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
exec bash "$(dirname "$0")/../cluster/run" "$BUILD"
