#!/bin/sh
# cp2p-entrypoint: how a cp2p container starts. It makes the identity key on
# the first start (on the volume, so the peer ID survives restarts and
# rescheduling), learns the peer IDs of the bootstrap peers named in
# CP2P_BOOTSTRAP by dialling them (a libp2p bootstrap address needs
# /p2p/<id>, and a StatefulSet knows its peers by name only), then runs:
#
#   cp2p-entrypoint cp2pd FLAGS...          adds -b -bootstrapPeers <found>
#   cp2p-entrypoint cp2p dht OPTIONS...     adds --bootstrap <found> for each
#   cp2p-entrypoint ANYTHING ELSE           runs it as it is
#
# Environment:
#   CP2P_KEY             identity key file, made with `cp2p keygen` if missing
#   CP2P_BOOTSTRAP       comma separated addresses without /p2p, e.g.
#                        /dns4/cp2p-0.cp2p.NS.svc.cluster.local/tcp/4001
#   CP2P_BOOTSTRAP_WAIT  seconds to wait for one of them to answer (default 60)
#   POD_NAME             this pod (default: the host name); addresses naming it are skipped
#
# The first address listed is the seed: a seed pod does not wait for the
# others (they wait for it), it tries each once and starts. Every other pod
# waits until one answers, then starts with all that did; if none does in
# CP2P_BOOTSTRAP_WAIT seconds it starts anyway (its datastore remembers the
# routing table, and peers that find it later fill it in).
set -eu

log() { echo "cp2p-entrypoint: $*" >&2; }

if [ -n "${CP2P_KEY:-}" ] && [ ! -s "$CP2P_KEY" ]; then
    log "no identity key at $CP2P_KEY: making one (the peer ID stays with this volume)"
    cp2p keygen --out "$CP2P_KEY.new" >/dev/null
    mv "$CP2P_KEY.new" "$CP2P_KEY"
fi

me=${POD_NAME:-$(hostname)}
addrs=$(printf '%s' "${CP2P_BOOTSTRAP:-}" | tr ',' ' ')
seed=0
others=""
first=1
for a in $addrs; do
    case "$a" in
    /dns*/"$me"/* | /dns*/"$me".*) [ $first = 1 ] && seed=1 ;;
    *) others="$others $a" ;;
    esac
    first=0
done

# peer_id ADDR: the peer ID the host at ADDR proves in the handshake.
peer_id() {
    cp2p ping --dial "$1" --count 1 --timeout 2 2>/dev/null | sed -n 's/^ping \([^ ]*\) rtt=.*/\1/p'
}

found=""
if [ -n "$others" ]; then
    deadline=$(($(date +%s) + ${CP2P_BOOTSTRAP_WAIT:-60}))
    while :; do
        for a in $others; do
            id=$(peer_id "$a" || true)
            [ -n "$id" ] && found="$found${found:+,}$a/p2p/$id"
        done
        if [ -n "$found" ] || [ $seed = 1 ] || [ "$(date +%s)" -ge "$deadline" ]; then
            break
        fi
        sleep 1
    done
    if [ -n "$found" ]; then
        log "bootstrap peers: $found"
    else
        log "no bootstrap peer answered: starting alone"
    fi
fi

prog=$(basename "${1:-}")
if [ "$prog" = cp2pd ] && [ -n "$found" ]; then
    exec "$@" -b -bootstrapPeers "$found"
elif [ "$prog" = cp2p ] && [ "${2:-}" = dht ] && [ -n "$found" ]; then
    for p in $(printf '%s' "$found" | tr ',' ' '); do
        set -- "$@" --bootstrap "$p"
    done
fi
exec "$@"
