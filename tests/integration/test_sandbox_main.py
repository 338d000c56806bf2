"""`federation-operator sandbox`: starts, writes a working kubeconfig, says what it is, stops cleanly."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from tests.harness.waiting import wait_for

# The subcommand's own entry points, as cli.py calls them, without importing every other command.
LAUNCH = (
    "import argparse, sys\n"
    "from federation_devkit import sandbox_command as main\n"
    "parser = argparse.ArgumentParser()\n"
    "main.configure(parser)\n"
    "sys.exit(main.main(parser.parse_args(sys.argv[1:])))\n"
)


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_sandbox_command_serves_until_sigterm(tmp_path: Path, verbose: bool) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            "demo",
            "--no-operator",
            *(["--verbose"] if verbose else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(kubeconfig.exists, message="kubeconfig written")
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        namespaces = wait_for(
            lambda: [ns.metadata.name for ns in k8s_client.CoreV1Api(api).list_namespace().items],
            message="API answering",
        )
        assert "demo" in namespaces
        api.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert "in-memory emulation, not a cluster" in output
    assert f"export KUBECONFIG={kubeconfig}" in output
    # One line per API call only when asked for.
    assert ('"GET /api/v1/namespaces' in output) == verbose, output


def test_help_says_it_is_not_a_cluster() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LAUNCH, "--help"], capture_output=True, text=True, check=False
    )
    assert "--no-operator" in result.stdout
    from federation_devkit import sandbox_command as main

    assert "NOT a Kubernetes cluster" in (main.__doc__ or "")
