"""The plugin's connection: the kubeconfig (and context) a user's kubectl would use.

Shared flags (`--kubeconfig`, `--context`, `-n`) are defined once here so every subcommand reads
the same cluster the same way kubectl does: `-n` wins, then the context's namespace, then
`default`.
"""

import argparse
from pathlib import Path

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from federation_operator.adapters.k8s.client import PLUGIN_AGENT, Kube


class PluginError(Exception):
    """A failure the user can act on; the message says how. Never holds a token."""


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--namespace", "-n", help="namespace (default: the context's, else default)")


def namespace_of(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    try:
        # The kubernetes client's config loaders carry no annotations.
        contexts, current = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=str(args.kubeconfig) if args.kubeconfig else None
        )
    except (k8s_config.ConfigException, OSError):
        return "default"
    chosen = (
        next((item for item in contexts if item["name"] == args.context), None) if args.context else current
    )
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def connect(args: argparse.Namespace) -> Kube:
    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(args.kubeconfig) if args.kubeconfig else None,
            context=args.context,
            client_configuration=configuration,
        )
    except (k8s_config.ConfigException, OSError) as error:
        raise PluginError(f"cannot load kubeconfig: {error}") from None
    return Kube(k8s_client.ApiClient(configuration=configuration), workers=4, user_agent=PLUGIN_AGENT)
