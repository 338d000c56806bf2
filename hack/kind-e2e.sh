#!/usr/bin/env bash
# Two real clusters, one federated link: the end-to-end proof that needs Docker.
#
# Creates kind clusters fed-eu and fed-us, installs Envoy Gateway and our chart on each, fronts
# each federation server with an HTTPS Gateway (NodePort on the shared `kind` Docker network,
# names resolved by a CoreDNS hosts block), issues a FederationCert per side, creates the EU peer,
# exports it with `kubectl federation export`, applies it on US, and waits until
# `kubectl get federationpeers` shows Reachable on both sides.
#
# Needs: docker (running), kind, kubectl, openssl, python3 with this repository installed
# (`pip install -e .`, for `kubectl-federation`), requirements/runtime.lock (for the image).
# Env: KEEP_CLUSTERS=1 keeps the clusters afterwards (default: deleted on exit);
#      E2E_TIMEOUT (seconds, default 300) bounds each wait;
#      KIND_NODE_IMAGE (e.g. kindest/node:v1.34.11@sha256:...) picks the Kubernetes version
#      (default: the kind release's default image).
set -euo pipefail

readonly SITES=(eu us)
readonly NAMESPACE=federation
readonly RELEASE_NAMESPACE=federation-system
readonly IMAGE_REPOSITORY=ghcr.io/ampora/federation-operator
readonly IMAGE_TAG=e2e
readonly ENVOY_GATEWAY_CHART=oci://docker.io/envoyproxy/gateway-helm
readonly ENVOY_GATEWAY_VERSION=v1.9.0
readonly TIMEOUT="${E2E_TIMEOUT:-300}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kind-e2e.XXXXXX")"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }
ctx() { printf 'kind-fed-%s' "$1"; }
kc() { local site="$1"; shift; kubectl --context "$(ctx "${site}")" "$@"; }
host_of() { printf 'federation.%s.test' "$1"; }

cleanup() {
    local status=$?
    if [[ "${status}" -ne 0 ]]; then
        for site in "${SITES[@]}"; do
            kubectl --context "$(ctx "${site}")" get federationcerts,federationpeers -A -o wide 2>/dev/null || true
            kubectl --context "$(ctx "${site}")" -n "${RELEASE_NAMESPACE}" logs deploy/federation-federation-operator-operator --tail=50 2>/dev/null || true
        done
    fi
    if [[ "${KEEP_CLUSTERS:-0}" != "1" ]]; then
        for site in "${SITES[@]}"; do kind delete cluster --name "fed-${site}" >/dev/null 2>&1 || true; done
    else
        printf 'kind-e2e: clusters kept (contexts %s, %s)\n' "$(ctx eu)" "$(ctx us)"
    fi
    rm -rf "${work}"
    exit "${status}"
}
trap cleanup EXIT

# Polls `$@` until it prints exactly "$expected" or the timeout passes.
wait_for_output() {
    local expected="$1" what="$2"; shift 2
    local deadline=$((SECONDS + TIMEOUT)) got=""
    while ((SECONDS < deadline)); do
        got="$("$@" 2>/dev/null || true)"
        [[ "${got}" == "${expected}" ]] && return 0
        sleep 3
    done
    die "timed out after ${TIMEOUT}s waiting for ${what} (last: '${got}')"
}

step "checking prerequisites"
for tool in docker kind kubectl openssl python3; do
    command -v "${tool}" >/dev/null || die "'${tool}' is not on PATH"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable ('docker info' failed)"
command -v kubectl-federation >/dev/null || die "kubectl-federation is not on PATH: pip install -e . (in a venv) first"
[[ -f "${repo_root}/requirements/runtime.lock" ]] || die "requirements/runtime.lock is missing: the image installs from it"
helm="$("${repo_root}/hack/install-helm.sh")"

step "building ${IMAGE_REPOSITORY}:${IMAGE_TAG}"
docker build --tag "${IMAGE_REPOSITORY}:${IMAGE_TAG}" "${repo_root}"

step "issuing a lab CA and a server certificate per site (the Gateways' HTTPS listeners)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=federation e2e lab CA" -keyout "${work}/ca.key" -out "${work}/ca.crt" 2>/dev/null
for site in "${SITES[@]}"; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=$(host_of "${site}")" -keyout "${work}/${site}.key" -out "${work}/${site}.csr" 2>/dev/null
    openssl x509 -req -in "${work}/${site}.csr" -CA "${work}/ca.crt" -CAkey "${work}/ca.key" \
        -CAcreateserial -days 2 -extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$(host_of "${site}")") \
        -out "${work}/${site}.crt" 2>/dev/null
done

for site in "${SITES[@]}"; do
    step "[${site}] kind cluster fed-${site}"
    if ! kind get clusters 2>/dev/null | grep -qx "fed-${site}"; then
        kind create cluster --name "fed-${site}" --wait 120s ${KIND_NODE_IMAGE:+--image "${KIND_NODE_IMAGE}"}
    fi
    kind load docker-image --name "fed-${site}" "${IMAGE_REPOSITORY}:${IMAGE_TAG}"

    step "[${site}] Envoy Gateway ${ENVOY_GATEWAY_VERSION}"
    "${helm}" upgrade --install eg "${ENVOY_GATEWAY_CHART}" --version "${ENVOY_GATEWAY_VERSION}" \
        --kube-context "$(ctx "${site}")" --namespace envoy-gateway-system --create-namespace --wait --timeout 5m
    kc "${site}" wait --for=condition=Available deployment/envoy-gateway -n envoy-gateway-system --timeout=300s

    step "[${site}] federation-operator chart"
    "${helm}" upgrade --install federation "${repo_root}/charts/federation-operator" \
        --kube-context "$(ctx "${site}")" --namespace "${RELEASE_NAMESPACE}" --create-namespace \
        --set site="${site}" \
        --set image.repository="${IMAGE_REPOSITORY}" --set image.tag="${IMAGE_TAG}" --set image.pullPolicy=Never \
        --set ingress.provider=envoy-gateway --set ingress.gateway.name=federation \
        --set ingress.host="$(host_of "${site}")" \
        --set 'server.trustedProxies={10.244.0.0/16}' \
        --wait --timeout 5m

    step "[${site}] namespace ${NAMESPACE}: HTTPS Gateway on a NodePort, lab CA, server certificate"
    kc "${site}" create namespace "${NAMESPACE}" --dry-run=client -o yaml | kc "${site}" apply -f -
    kc "${site}" -n "${NAMESPACE}" create secret tls federation-server-tls \
        --cert "${work}/${site}.crt" --key "${work}/${site}.key" --dry-run=client -o yaml | kc "${site}" apply -f -
    kc "${site}" -n "${NAMESPACE}" create configmap federation-e2e-ca --from-file=ca.crt="${work}/ca.crt" \
        --dry-run=client -o yaml | kc "${site}" apply -f -
    kc "${site}" apply -f - <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: eg
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata:
  name: nodeport
  namespace: ${NAMESPACE}
spec:
  provider:
    type: Kubernetes
    kubernetes:
      envoyService:
        type: NodePort
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: federation
  namespace: ${NAMESPACE}
spec:
  gatewayClassName: eg
  infrastructure:
    parametersRef:
      group: gateway.envoyproxy.io
      kind: EnvoyProxy
      name: nodeport
  listeners:
    - name: https
      protocol: HTTPS
      port: 443
      hostname: $(host_of "${site}")
      tls:
        mode: Terminate
        certificateRefs:
          - name: federation-server-tls
      allowedRoutes:
        namespaces:
          from: Same
EOF
    kc "${site}" -n "${NAMESPACE}" wait --for=condition=Programmed gateway/federation --timeout="${TIMEOUT}s"
done

step "resolving each site's federation host to its node on the kind network"
declare -A endpoint
declare -A node_ip
for site in "${SITES[@]}"; do
    node_ip[${site}]="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "fed-${site}-control-plane")"
    port="$(kc "${site}" -n envoy-gateway-system get service \
        -l "gateway.envoyproxy.io/owning-gateway-name=federation,gateway.envoyproxy.io/owning-gateway-namespace=${NAMESPACE}" \
        -o jsonpath='{.items[0].spec.ports[?(@.port==443)].nodePort}')"
    [[ -n "${node_ip[${site}]}" && -n "${port}" ]] || die "[${site}] could not find the node IP or the Gateway's NodePort"
    endpoint[${site}]="https://$(host_of "${site}"):${port}"
    printf '  %s -> %s (%s)\n' "${site}" "${endpoint[${site}]}" "${node_ip[${site}]}"
done
for site in "${SITES[@]}"; do
    corefile="$(kc "${site}" -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}')"
    [[ "${corefile}" == *"federation.eu.test"* ]] && continue
    # A hosts block ahead of the kubernetes plugin; fallthrough keeps every other name as it was.
    COREFILE="${corefile}" python3 - "${node_ip[eu]} $(host_of eu)" "${node_ip[us]} $(host_of us)" \
        >"${work}/Corefile.${site}" <<'PY'
import os, sys
corefile = os.environ["COREFILE"]
entries = "".join(f"       {entry}\n" for entry in sys.argv[1:])
block = "hosts {\n" + entries + "       fallthrough\n    }\n    ready"
assert "\n    ready\n" in corefile, "unexpected CoreDNS Corefile layout"
print(corefile.replace("\n    ready\n", "\n    " + block + "\n", 1))
PY
    kc "${site}" -n kube-system create configmap coredns --from-file=Corefile="${work}/Corefile.${site}" \
        --dry-run=client -o yaml | kc "${site}" apply -f -
    kc "${site}" -n kube-system rollout restart deployment/coredns
    kc "${site}" -n kube-system rollout status deployment/coredns --timeout="${TIMEOUT}s"
done

declare -A client_pem
for site in "${SITES[@]}"; do
    step "[${site}] FederationCert ${site}-client"
    kc "${site}" -n "${NAMESPACE}" apply -f - <<EOF
apiVersion: federation.ampora.io/v1alpha1
kind: FederationCert
metadata:
  name: ${site}-client
spec:
  subject: ${site}-federation
EOF
    kc "${site}" -n "${NAMESPACE}" wait --for=condition=Ready "federationcert/${site}-client" --timeout="${TIMEOUT}s"
    client_pem[${site}]="$(kc "${site}" -n "${NAMESPACE}" get federationcert "${site}-client" -o jsonpath='{.status.certificate}')"
    [[ "${client_pem[${site}]}" == *"BEGIN CERTIFICATE"* ]] || die "[${site}] FederationCert has no status.certificate"
done

step "[eu] FederationPeer us (pins US's client certificate; trusts the lab CA for US's server)"
python3 - "${endpoint[us]}" "${client_pem[us]}" >"${work}/eu-peer.json" <<'PY'
import json, sys
endpoint, pem = sys.argv[1], sys.argv[2]
print(json.dumps({
    "apiVersion": "federation.ampora.io/v1alpha1",
    "kind": "FederationPeer",
    "metadata": {"name": "us"},
    "spec": {
        "endpoint": endpoint,
        "remoteCertificates": [{"pem": pem}],
        "clientCertificateRef": {"name": "eu-client"},
        "serverTrust": {"caBundleRef": {"kind": "ConfigMap", "name": "federation-e2e-ca"}},
    },
}))
PY
kc eu -n "${NAMESPACE}" apply -f "${work}/eu-peer.json"
wait_for_output "True" "EU's peer credentials" \
    kc eu -n "${NAMESPACE}" get federationpeer us -o 'jsonpath={.status.conditions[?(@.type=="CredentialsReady")].status}'

step "[eu] kubectl federation export us -> [us] apply"
# The plugin reads the kubeconfig like kubectl does; give it EU's alone.
kind get kubeconfig --name fed-eu >"${work}/eu.kubeconfig"
KUBECONFIG="${work}/eu.kubeconfig" kubectl federation export us -n "${NAMESPACE}" --name eu \
    --endpoint "${endpoint[eu]}" >"${work}/for-us.yaml"
kc us -n "${NAMESPACE}" apply -f "${work}/for-us.yaml"
# The bundle cannot know which FederationCert the other side presents, nor how it trusts our
# server certificate: those are the receiving side's own choices.
kc us -n "${NAMESPACE}" patch federationpeer eu --type merge -p \
    '{"spec":{"clientCertificateRef":{"name":"us-client"},"serverTrust":{"caBundleRef":{"kind":"ConfigMap","name":"federation-e2e-ca"}}}}'

step "waiting for Reachable on both sides (timeout ${TIMEOUT}s each)"
wait_for_output "Reachable" "EU -> US reachability" \
    kc eu -n "${NAMESPACE}" get federationpeer us -o 'jsonpath={.status.reachability}'
wait_for_output "Reachable" "US -> EU reachability" \
    kc us -n "${NAMESPACE}" get federationpeer eu -o 'jsonpath={.status.reachability}'

for site in "${SITES[@]}"; do
    step "[${site}] kubectl get federationpeers -o wide"
    kc "${site}" -n "${NAMESPACE}" get federationpeers -o wide
done
eu_out="$(kc eu -n "${NAMESPACE}" get federationpeer us -o 'jsonpath={.status.outbound.fingerprint}')"
us_in="$(kc us -n "${NAMESPACE}" get federationpeer eu -o 'jsonpath={.status.inbound.fingerprint}')"
[[ -n "${eu_out}" && "${eu_out}" == "${us_in}" ]] || die "EU outbound fingerprint '${eu_out}' != US inbound '${us_in}'"
printf '\nkind-e2e: PASS: both sides Reachable; EU outbound fingerprint %s = US inbound fingerprint\n' "${eu_out}"
