#!/usr/bin/env python3
"""Copy the CRDs from crds/ (the source of truth) to the places that ship them.

The Helm chart installs them from its crds/ folder and the sandbox registers them from the
package's data, so both need byte-identical copies. `--check` fails when a copy differs: CI runs it.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "crds"
TARGETS = (
    ROOT / "charts" / "federation-operator" / "crds",
    ROOT / "operator" / "federation_operator" / "crds",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a copy differs instead of writing")
    args = parser.parse_args()
    stale: list[str] = []
    for source in sorted(SOURCE.glob("*.yaml")):
        for target_dir in TARGETS:
            target = target_dir / source.name
            if target.exists() and target.read_bytes() == source.read_bytes():
                continue
            if args.check:
                stale.append(str(target.relative_to(ROOT)))
            else:
                target_dir.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read_bytes())
                print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("CRD copies differ from crds/ (run hack/sync-crds.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
