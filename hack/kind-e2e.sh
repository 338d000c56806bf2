#!/usr/bin/env bash
# Two real clusters, one federated link: the end-to-end proof that needs Docker, and the proof that
# the README's real-cluster instructions work: this script runs the README's own blocks.
#
# 1. README "plugin-install" block, once (bootstrap, .venv/bin on PATH).
# 2. README "kind-quickstart" block per site, SITE=eu and SITE=us: image build, kind cluster,
#    kind load, Envoy Gateway, our chart.
# 3. Lab wiring the README leaves to the reader: an HTTPS Gateway per site on a NodePort of the
#    shared `kind` Docker network, a lab CA for the Gateways' server certificates, host names
#    resolved by a CoreDNS hosts block, namespace `federation` as each kubeconfig's default.
# 4. README "walkthrough" block, each line on the site its `# on ...` comment names, with the
#    README's prescribed edits for this setting: the example endpoints become the Gateways', and
#    `--server-ca` (the lab CA) is added to `pin` and `export`. Then both sides must be Reachable.
#
# Needs: docker (running), kind, kubectl, openssl, python3 >= 3.11, helm (or hack/install-helm.sh).
# Env: KEEP_CLUSTERS=1 keeps the clusters afterwards (default: deleted on exit);
#      E2E_TIMEOUT (seconds, default 300) bounds each wait;
#      KIND_NODE_IMAGE (e.g. kindest/node:v1.34.11@sha256:...) picks the Kubernetes version
#      (default: the kind release's default image).
set -euo pipefail

readonly SITES=(eu us)
readonly NAMESPACE=federation
readonly RELEASE_NAMESPACE=federation-system
readonly TIMEOUT="${E2E_TIMEOUT:-300}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/kind-e2e.XXXXXX")"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }
ctx() { printf 'kind-fed-%s' "$1"; }
kc() { local site="$1"; shift; kubectl --context "$(ctx "${site}")" "$@"; }
host_of() { printf 'federation.%s.test' "$1"; }

# The body of the README's fenced block between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
readme_block() {
    local text
    text="$(sed -n "/^<!-- $1:begin -->\$/,/^<!-- $1:end -->\$/p" "${repo_root}/README.md" | sed -e '1,2d' -e '$d' | sed -e '$d')"
    [[ -n "${text}" ]] || die "README.md has no '$1' block"
    printf '%s\n' "${text}"
}

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
helm_bin="$("${repo_root}/hack/install-helm.sh")"
PATH="$(dirname "${helm_bin}"):${PATH}"
cd "${repo_root}"

step "README plugin-install"
plugin_install="$(readme_block plugin-install)"
printf '%s\n' "${plugin_install}"
eval "${plugin_install}"
command -v kubectl-federation >/dev/null || die "the README's plugin install left kubectl-federation off PATH"

# The README's `kind create cluster` gets the node image when one is asked for (CI's version
# matrix); every other kind command runs as written.
kind() {
    if [[ "${1:-}" == create && "${2:-}" == cluster && -n "${KIND_NODE_IMAGE:-}" ]]; then
        command kind "$@" --image "${KIND_NODE_IMAGE}"
    else
        command kind "$@"
    fi
}

for site in "${SITES[@]}"; do
    step "[${site}] README kind-quickstart with SITE=${site}"
    quickstart="$(readme_block kind-quickstart)"
    [[ "${quickstart}" == SITE=eu$'\n'* ]] || die "the kind-quickstart block must start with SITE=eu"
    quickstart="SITE=${site}${quickstart#SITE=eu}"
    printf '%s\n' "${quickstart}"
    (eval "${quickstart}")
done

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
    step "[${site}] namespace ${NAMESPACE}: HTTPS Gateway on a NodePort, server certificate"
    kc "${site}" create namespace "${NAMESPACE}" --dry-run=client -o yaml | kc "${site}" apply -f -
    kc "${site}" -n "${NAMESPACE}" create secret tls federation-server-tls \
        --cert "${work}/${site}.crt" --key "${work}/${site}.key" --dry-run=client -o yaml | kc "${site}" apply -f -
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
    # The walkthrough's commands name no namespace: each admin's kubeconfig defaults to this one.
    kind get kubeconfig --name "fed-${site}" >"${work}/${site}.kubeconfig"
    KUBECONFIG="${work}/${site}.kubeconfig" kubectl config set-context --current --namespace "${NAMESPACE}" >/dev/null
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

# The README's walkthrough, line by line, each on its site, with the README's edits for a lab
# CA (the same edits as tests/integration/test_readme_walkthrough.py makes for the sandbox).
handover="${work}/handover"
mkdir -p "${handover}"
ln -s "${repo_root}/examples" "${handover}/examples"
run_on() {
    local site="$1" command="$2"
    command="${command//https:\/\/federation.eu.example.com/${endpoint[eu]}}"
    command="${command//https:\/\/federation.us.example.com/${endpoint[us]}}"
    case "${command}" in
        "kubectl federation pin "*) command="${command} --server-ca ${work}/ca.crt" ;;
        "kubectl federation export "*" > "*) command="${command% > *} --server-ca ${work}/ca.crt > ${command##* > }" ;;
    esac
    printf '[%s] $ %s\n' "${site}" "${command}"
    (cd "${handover}" && KUBECONFIG="${work}/${site}.kubeconfig" bash -euo pipefail -c "${command}")
}
# Continuation lines joined, so each line is one command.
walkthrough="$(readme_block walkthrough | sed -e ':a' -e '/\\$/N; s/\\\n */ /; ta')"
headings="$(grep -c '^# on ' <<<"${walkthrough}")"
[[ "$(grep '^# on ' <<<"${walkthrough}" | tail -n 1)" == "# on each site"* ]] \
    || die "the walkthrough's last section must be '# on each site' (get, check)"

section=0
sites=""
while IFS= read -r line; do
    case "${line}" in
        "# on each site"*) sites="eu us" ;;
        "# on EU"*) sites="eu" ;;
        "# on US"*) sites="us" ;;
        "" | "#"*) continue ;;
        *)
            for site in ${sites}; do run_on "${site}" "${line}"; done
            continue
            ;;
    esac
    section=$((section + 1))
    if ((section == headings)); then
        step "waiting for Reachable on both sides (timeout ${TIMEOUT}s each)"
        wait_for_output "Reachable" "EU -> US reachability" \
            kc eu -n "${NAMESPACE}" get federationpeer us-region -o 'jsonpath={.status.reachability}'
        wait_for_output "Reachable" "US -> EU reachability" \
            kc us -n "${NAMESPACE}" get federationpeer eu-region -o 'jsonpath={.status.reachability}'
    fi
    step "README walkthrough: ${line#\# }"
done <<<"${walkthrough}"

eu_out="$(kc eu -n "${NAMESPACE}" get federationpeer us-region -o 'jsonpath={.status.outbound.fingerprint}')"
us_in="$(kc us -n "${NAMESPACE}" get federationpeer eu-region -o 'jsonpath={.status.inbound.fingerprint}')"
[[ -n "${eu_out}" && "${eu_out}" == "${us_in}" ]] || die "EU outbound fingerprint '${eu_out}' != US inbound '${us_in}'"
printf '\nkind-e2e: PASS: both sides Reachable; EU outbound fingerprint %s = US inbound fingerprint\n' "${eu_out}"
