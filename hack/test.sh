#!/usr/bin/env bash
# The whole test suite: lint, format, types, layering, CRD copies, then pytest (unit, integration,
# e2e-when-possible). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";        ruff check . && ruff format --check .
echo "== mypy";        mypy && mypy --strict hack/*.py  # the benchmarks are not run in CI: type-check them
echo "== layering";    lint-imports
echo "== crd copies";  python hack/sync-crds.py --check
echo "== locks";       python hack/lock.py --check
echo "== pytest";      python -m pytest -rs "$@"  # -rs: every skip with its reason
