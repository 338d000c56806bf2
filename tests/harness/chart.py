"""The Helm chart rendered by a real helm (hack/install-helm.sh finds or installs one).

`render` is cached per (values file, --set assignments): the chart tests and the RBAC proof render
the same few shapes many times.
"""

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "federation-operator"
RELEASE_NAMESPACE = "federation-system"

Doc = dict[str, Any]


@functools.cache
def helm_binary() -> str | None:
    result = subprocess.run(
        [str(ROOT / "hack" / "install-helm.sh")], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, cwd=ROOT)


# The values without a default: the edge needs the public host (the schema requires it), and a
# header mode (the default provider's) the proxy's addresses.
REQUIRED_SETS = ("ingress.host=federation.example.com", "server.trustedProxies={10.244.0.0/16}")


def template_args(*, values: Path | None, sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", "fed", str(CHART), "--namespace", RELEASE_NAMESPACE, "--include-crds"]
    if values is not None:
        args += ["--values", str(values)]
    for assignment in (*REQUIRED_SETS, *sets):
        args += ["--set", assignment]
    return args


@functools.cache
def render(helm: str, values: Path | None, sets: tuple[str, ...] = ()) -> tuple[Doc, ...]:
    result = run_helm(helm, *template_args(values=values, sets=sets))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)
