#!/usr/bin/env bash
# The whole test suite: lint, format, types, layering, CRD copies, then pytest (unit, integration,
# e2e-when-possible). This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# One command a line: under `set -e` a failure before the last `&&` of a list does not stop the script.
echo "== ruff";        ruff check .
echo "== format";      ruff format --check .
echo "== mypy";        mypy
echo "== mypy hack";   mypy --strict hack/*.py  # the benchmarks are not run in CI: type-check them
echo "== layering";    lint-imports
echo "== crd copies";  python hack/sync-crds.py --check
echo "== locks";       python hack/lock.py --check
# -rs: every skip with its reason. Two workers by default (most tests wait on sockets and
# threads, so two nearly halve the time even on two cores); a module stays on one worker, so its
# module-scoped fixtures are made once. TEST_WORKERS=0 (or `-n 0` among the arguments) runs serially.
echo "== pytest";      python -m pytest -rs -n "${TEST_WORKERS:-2}" --dist loadscope "$@"
