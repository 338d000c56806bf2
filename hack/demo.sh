#!/usr/bin/env bash
# The README's main job: two linked sites (EU, US) in sandboxes, end to end, no cluster needed.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/bootstrap.sh
exec .venv/bin/federation-operator demo "$@"
