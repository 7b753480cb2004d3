#!/usr/bin/env bash
# Every Kubernetes manifest in deploy/ validates against the Kubernetes API
# schema (kubernetes-models, made from the official OpenAPI document) with no
# unknown field, and the pods resolve against what deploy/Dockerfile puts in
# the image (and so do the rust twins tests/cluster/run adds); the
# NetworkPolicy opens the libp2p port to all and the metrics port only to the
# monitoring; broken copies are refused (the checks bite).
# The runtime image's package list is read off this build's binaries.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CLUSTER=$SRC/tests/cluster
K8S=$SRC/deploy/kubernetes
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (node 20 or later)"
"$CLUSTER/npm-ci" "$BUILD"
validate() { node "$CLUSTER/manifests.mjs" validate --dockerfile "$SRC/deploy/Dockerfile" "$@"; }

echo "== the manifests"
out=$(validate "$K8S" "$K8S"/scenarios/*.yaml) || { echo "$out"; fail "a manifest does not validate"; }
echo "$out"
objects=$(cat "$K8S"/*.yaml "$K8S"/scenarios/*.yaml | grep -c '^kind: ' || true)
objects=$((objects - 1)) # kustomization.yaml is not an API object
[ "$(grep -c '^ok ' <<<"$out")" = "$objects" ] || fail "expected $objects objects validated"
# The rust twins tests/cluster/run adds (tests/cluster/rust.mjs) are Pods that validate too.
out=$(validate --rust "$K8S" "$K8S"/scenarios/*.yaml) || { echo "$out"; fail "a rust twin does not validate"; }
grep '^ok rust twin' <<<"$out"
[ "$(grep -c '^ok rust twin' <<<"$out")" = 4 ] || fail "expected 4 rust twins validated"
if command -v kubectl >/dev/null; then
    # What kubectl apply -k would send, when kubectl is here to render it.
    kubectl kustomize "$K8S" >"$TMP/rendered.yaml"
    validate "$TMP/rendered.yaml" >/dev/null || fail "the kustomize rendering does not validate"
fi

echo "== broken manifests are refused"
broken() { # description, sed expression, file: the edited copy must fail
    sed "$2" "$3" >"$TMP/broken.yaml"
    cmp -s "$3" "$TMP/broken.yaml" && fail "the edit for '$1' changed nothing"
    if validate "$TMP/broken.yaml" >"$TMP/out" 2>&1; then cat "$TMP/out"; fail "accepted: $1"; fi
    echo "refused: $1: $(grep -m1 -E 'FAIL|manifests:' "$TMP/out")"
}
broken "a misspelt field" 's/readinessProbe:/readinesProbe:/' "$K8S/statefulset.yaml"
broken "a port as a string" 's/containerPort: 4001/containerPort: "4001"/' "$K8S/statefulset.yaml"
broken "a bad quantity" 's/memory: 512Mi/memory: lots/' "$K8S/statefulset.yaml"
broken "an unknown kind" 's/^kind: StatefulSet/kind: StatefulSett/' "$K8S/statefulset.yaml"
broken "a field in the wrong place" 's/^  serviceName: cp2p/  serviceName: cp2p\n  hostNetwork: true/' "$K8S/statefulset.yaml"
broken "a probe on a port that is not there" '0,/port: metrics/s//port: metricz/' "$K8S/statefulset.yaml"
broken "a program the image does not have" 's|/usr/local/bin/cp2p-entrypoint|/usr/local/bin/cp2p-start|' "$K8S/statefulset.yaml"
broken "running as root" 's/runAsUser: 10001/runAsUser: 0/' "$K8S/scenarios/ping.yaml"
broken "an enum value that does not exist" 's/imagePullPolicy: IfNotPresent/imagePullPolicy: Sometimes/' "$K8S/scenarios/mdns.yaml"
broken "a misspelt NetworkPolicy field" 's/namespaceSelector:/namespacesSelector:/' "$K8S/networkpolicy.yaml"

echo "== the NetworkPolicy: libp2p open to all, metrics only to the monitoring"
netpol() { node "$CLUSTER/manifests.mjs" netpol "$@"; }
netpol "$K8S" || fail "the NetworkPolicy does not keep the metrics port to the monitoring"
policy_broken() { # description, sed expression, file in deploy/kubernetes: the edited copy must fail
    rm -rf "$TMP/k8s"
    cp -r "$K8S" "$TMP/k8s"
    sed -i "$2" "$TMP/k8s/$3"
    cmp -s "$K8S/$3" "$TMP/k8s/$3" && fail "the edit for '$1' changed nothing"
    if netpol "$TMP/k8s" >"$TMP/out" 2>&1; then cat "$TMP/out"; fail "accepted: $1"; fi
    echo "refused: $1: $(grep -m1 'manifests:' "$TMP/out")"
}
policy_broken "no NetworkPolicy" '/networkpolicy.yaml/d' kustomization.yaml
policy_broken "a policy for other pods" 's|^      app.kubernetes.io/name: cp2p$|      app.kubernetes.io/name: cp2p-dht|' networkpolicy.yaml
policy_broken "a policy for egress only" 's/- Ingress/- Egress/' networkpolicy.yaml
policy_broken "the metrics port open to all" 's/^        - port: p2p$/&\n        - port: metrics/' networkpolicy.yaml
policy_broken "the metrics port open to any pod of the namespace" '/^          podSelector:$/,/prometheus$/d' networkpolicy.yaml
policy_broken "the metrics port open to another namespace" 's|metadata.name: monitoring|metadata.name: default|' networkpolicy.yaml
policy_broken "the libp2p port closed" 's/- port: p2p/- port: 4002/' networkpolicy.yaml

echo "== the image"
grep -q '^RUN scripts/deps.sh' "$SRC/deploy/Dockerfile" && grep -q 'scripts/build.sh build' "$SRC/deploy/Dockerfile" ||
    fail "deploy/Dockerfile must build with scripts/deps.sh and scripts/build.sh"
pkgs=$("$SRC/deploy/runtime-packages.sh" "$BUILD/cp2p" "$BUILD/cp2pd") || fail "runtime-packages.sh failed"
for p in libuv1 libssl3 libprotobuf-c1 liblmdb0; do
    grep -qx "$p" <<<"$pkgs" || fail "runtime-packages.sh misses $p: $(echo $pkgs)"
done
echo "runtime packages: $(echo $pkgs)"
sh -n "$SRC/deploy/entrypoint.sh" || fail "deploy/entrypoint.sh: syntax"
[ -x "$SRC/deploy/entrypoint.sh" ] || fail "deploy/entrypoint.sh is not executable (COPY keeps the mode)"
if command -v hadolint >/dev/null; then hadolint "$SRC/deploy/Dockerfile"; fi
echo PASS
