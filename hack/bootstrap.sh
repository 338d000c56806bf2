#!/usr/bin/env bash
# Create .venv (Python >= 3.11) with the exact dependency versions that were tested, and install
# this package and its devkit (devkit/: sandbox, local sites, demo; a distribution of its own, kept
# out of the image) into it in editable mode. Idempotent: a second run only checks. The first run takes
# a minute or two; it says what it is doing (on stderr) so nobody wonders whether it hangs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
say() { printf 'bootstrap: %s\n' "$*" >&2; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
  say "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements/dev.lock pyproject.toml devkit/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  started=$SECONDS
  total=$(grep -c '==' requirements/dev.lock)
  say "installing $total locked packages from requirements/dev.lock into .venv (once; about a minute)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  # pip prints a "Collecting" (index) or "Processing" (local wheel) line per package: shown as a
  # running count instead of pip's few hundred lines.
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements/dev.lock \
    | awk -v total="$total" '
        /^(Collecting|Processing) / { n++; name = $2; sub(/.*\//, "", name)
                                      printf "bootstrap: %d/%d %s\n", n, total, name > "/dev/stderr" }
        /^Successfully installed/   { print "bootstrap: installed" > "/dev/stderr" }'
  say "installing federation-operator and federation-devkit themselves (editable)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e . -e ./devkit
  rm -f .venv/.installed-*
  touch "$stamp"
  say "ready in $((SECONDS - started)) s"
fi
