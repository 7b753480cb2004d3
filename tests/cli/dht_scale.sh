# Scale: PROCS processes of PER cp2p DHT nodes on loopback (200 by default).
# 100 records are put from random nodes and read from random nodes; then a
# third of the nodes are stopped at random and every record is read again.
# Prints the lookup hops and latency percentiles of the reads.
# ctest: run-serial
source "$(dirname "$0")/lib/common.sh"
CP2P=$BUILD/cp2p
PROCS=${DHT_SCALE_PROCS:-4}
PER=${DHT_SCALE_PER:-50}
RECORDS=${DHT_SCALE_RECORDS:-100}
TOTAL=$((PROCS * PER))

wait_count() { # FILE REGEX COUNT SECONDS
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [ "$(grep -cE "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
        sleep 0.1
    done
    fail "$1: fewer than $3 lines matching '$2'"
}

start() { # INDEX [BOOTSTRAP]
    mkfifo "$TMP/in$1"
    "$CP2P" dht --listen /ip4/127.0.0.1/tcp/0 --peers "$PER" --quorum 3 \
        ${2:+--bootstrap "$2"} <"$TMP/in$1" >"$TMP/out$1" 2>"$TMP/err$1" &
    PIDS+=($!)
    eval "exec {fd}>\"$TMP/in$1\""
    FDS[$1]=$fd
}

declare -a FDS
start 0
wait_count "$TMP/out0" '^Listening on ' 1 30
HUB=$(grep -m1 '^Listening on ' "$TMP/out0" | cut -d' ' -f3)
for ((p = 1; p < PROCS; p++)); do start "$p" "$HUB"; done
for ((p = 0; p < PROCS; p++)); do wait_count "$TMP/out$p" '^Listening on ' 1 30; done
# Commands run as soon as they are read, bootstrap or not. A put made while
# the nodes are still finding each other (slow under load: every node's first
# lookups dial and handshake with dozens of peers at once) goes to the closest
# peers known then, which need not be the closest ones a later get finds.
if ((PER > 1)); then
    for ((p = 0; p < PROCS; p++)); do wait_count "$TMP/err$p" 'every node bootstrapped' 1 120; done
fi

send() { echo "$2" >&"${FDS[$1]}"; }
declare -A STOPPED
random_node() { # sets RP RN to a node not stopped
    while :; do
        RP=$((RANDOM % PROCS)); RN=$((RANDOM % PER))
        [ -z "${STOPPED[$RP.$RN]:-}" ] && return
    done
}
count() { local n=0 p; for ((p = 0; p < PROCS; p++)); do n=$((n + $(grep -cE "$1" "$TMP/out$p" || true))); done; echo "$n"; }
wait_total() { # REGEX COUNT SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [ "$(count "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    fail "only $(count "$1") of $2 lines matching '$1'"
}

for ((r = 0; r < RECORDS; r++)); do random_node; send $RP "@$RN PUT rec$r value-$r"; done
wait_total '^(Successfully|Failed to) put record' "$RECORDS" 120
[ "$(count '^Successfully put record')" -eq "$RECORDS" ] ||
    fail "some puts failed: $(cat "$TMP"/out* | grep '^Failed to put record' | head -5)"

read_all() { # ROUND: read every record from random live nodes
    for ((r = 0; r < RECORDS; r++)); do random_node; send $RP "@$RN GET rec$r"; done
    wait_total '^(Got|Failed to get) record' $((RECORDS * $1)) 120
}
pct() { # sorted numbers on stdin -> "p50=.. p90=.. p99=.. max=.."
    awk '{v[NR]=$1} END {printf "p50=%s p90=%s p99=%s max=%s", v[int(NR*0.5)+1], v[int(NR*0.9)+1], v[int(NR*0.99)+1], v[NR]}'
}
report() { # LABEL: the figures of the last round of reads
    local s
    s=$(cat "$TMP"/out* | grep '^stat GET ' | tail -n "$RECORDS" || true)
    [ -n "$s" ] || fail "no stat lines"
    echo "$1: hops $(echo "$s" | sed 's/.*hops=\([0-9]*\).*/\1/' | sort -n | pct);" \
        "latency ms $(echo "$s" | sed 's/.*ms=\([0-9.]*\).*/\1/' | sort -g | pct)"
}
read_all 1
got=$(count '^Got record "rec[0-9]*" "value-[0-9]*"')
[ "$got" -eq "$RECORDS" ] ||
    fail "$got of $RECORDS records found: $(cat "$TMP"/out* | grep '^Failed to get' | head -5)"
report "all $TOTAL nodes up"

for ((s = 0; s < TOTAL / 3; s++)); do random_node; STOPPED[$RP.$RN]=1; send $RP "@$RN STOP"; done
wait_total '^Stopped node' $((TOTAL / 3)) 30
read_all 2
got=$(count '^Got record "rec[0-9]*" "value-[0-9]*"')
[ "$got" -eq $((2 * RECORDS)) ] || fail "$((got - RECORDS)) of $RECORDS records found after" \
    "stopping a third: $(cat "$TMP"/out* | grep '^Failed to get' | head -5)"
report "$((TOTAL - TOTAL / 3)) of $TOTAL nodes up"
echo "PASS dht_scale: $TOTAL nodes, $RECORDS records"
