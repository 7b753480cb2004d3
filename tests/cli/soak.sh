#!/usr/bin/env bash
# The short soak (issue #13): bench/soak for SOAK_SECONDS (default 90) — peers
# that come and go, put and get records, a js peer, and one hostile peer in
# turn — fails if an acknowledged record is lost, memory grows or descriptors
# leak. The hour-long run is bench/soak as it is (bench/soak.png).
# ctest: run-serial
source "$(dirname "$0")/lib/common.sh"
small_quarantine
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
"$ROOT/bench/soak" --seconds "${SOAK_SECONDS:-90}" --build "$BUILD" --out "$TMP/soak" ||
    fail "the soak failed (see above)"
[ -s "$TMP/soak/soak.png" ] || fail "no picture drawn"
echo PASS
