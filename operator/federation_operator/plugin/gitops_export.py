"""`kubectl federation export PEER --gitops DIR`: the remote's files, split by where they may live.

The plain export prints one bundle with tokens in it, for `kubectl apply` over a secure channel.
A Git repository is the wrong place for that bundle: whatever is committed is copied to every
clone, forever. So `--gitops DIR` writes:

- `<name>.federationpeer.yaml`, safe to commit: our certificate pinned by PEM, `inbound` as the
  `secretHash` of the token we present (a hash reveals nothing usable), `outbound` as a
  `secretRef` to a Secret that is not in this file; with `--server-ca`, also the ConfigMap holding
  our server's CA that its `serverTrust` names (public, like the certificate);
- `<name>-outbound.secret.yaml`, the one plaintext: our inbound token as the remote's outbound
  token, for the remote's secret tool (SealedSecrets, SOPS, External Secrets; docs/gitops.md),
  written with mode 0600;
- `.gitignore` naming that file, so that `git add DIR` leaves it out.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from federation_operator.domain import api, objects, tokens
from federation_operator.domain.tokens import SecretText

OUTBOUND_SUFFIX: Final = "-outbound"
OUTBOUND_KEY: Final = "token"
PEER_FILE_SUFFIX: Final = ".federationpeer.yaml"
SECRET_FILE_SUFFIX: Final = ".secret.yaml"
_SECRET_HEADER: Final = (
    "# NOT FOR GIT: the token the remote presents to us, in plaintext. Seal or encrypt it with your\n"
    "# secret tool (kubeseal, sops) or load it into your secret manager, then delete this file.\n"
    "# docs/gitops.md, 'Git-safe export'.\n"
)


@dataclass(frozen=True)
class GitopsFiles:
    """File name -> text. `secret` is None when our inbound token survives only as a hash."""

    peer: tuple[str, str]
    secret: tuple[str, str] | None


def build_gitops_files(
    *,
    remote_name: str,
    endpoint: str,
    certificate_pem: str,
    remote_inbound: SecretText,
    remote_outbound: SecretText | None,
    client_certificate: str | None = None,
    server_ca: tuple[str, str, str] | None = None,
    remote_namespace: str | None = None,
) -> GitopsFiles:
    """The remote's files. Pure. `remote_inbound` is our outbound token (only its hash is written),
    `remote_outbound` our inbound token (only in the Secret file; None: only its hash exists here).
    `server_ca` is (ConfigMap name, key, PEM) of our server's CA, for the peer's `serverTrust`."""
    secret_name = remote_name + OUTBOUND_SUFFIX
    metadata: dict[str, Any] = {"name": remote_name}
    if remote_namespace:
        metadata["namespace"] = remote_namespace
    spec: dict[str, Any] = {
        "endpoint": endpoint,
        "remoteCertificates": [{"pem": certificate_pem}],
        # What the remote checks inbound is what we present: only its hash goes to Git.
        "inbound": {"secretHash": tokens.hash_token(remote_inbound)},
        "outbound": {"secretRef": {"name": secret_name, "key": OUTBOUND_KEY}},
    }
    if client_certificate:
        spec["clientCertificateRef"] = {"name": client_certificate}
    documents: list[dict[str, Any]] = []
    if server_ca is not None:
        ca_name, ca_key, ca_pem = server_ca
        spec["serverTrust"] = {"caBundleRef": {"kind": "ConfigMap", "name": ca_name, "key": ca_key}}
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {**metadata, "name": ca_name},
                "data": {ca_key: ca_pem},
            }
        )
    documents.append(
        {"apiVersion": api.API_VERSION, "kind": api.PEER_KIND, "metadata": metadata, "spec": spec}
    )
    peer_file = (remote_name + PEER_FILE_SUFFIX, yaml.safe_dump_all(documents, sort_keys=False))
    if remote_outbound is None:
        return GitopsFiles(peer=peer_file, secret=None)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {**metadata, "name": secret_name},
        "data": objects.encode_secret_data({OUTBOUND_KEY: remote_outbound.reveal().encode("ascii")}),
    }
    return GitopsFiles(
        peer=peer_file,
        secret=(secret_name + SECRET_FILE_SUFFIX, _SECRET_HEADER + yaml.safe_dump(secret, sort_keys=False)),
    )


def write_gitops_files(directory: Path, files: GitopsFiles) -> list[Path]:
    """Write the files into `directory` (created if missing); the Secret file is 0600 from the start."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [_write(directory / files.peer[0], files.peer[1], mode=0o644)]
    if files.secret is not None:
        name, text = files.secret
        written.append(_write(directory / name, text, mode=0o600))
        written.append(_ignore(directory / ".gitignore", name))
    return written


def _write(path: Path, text: str, *, mode: int) -> Path:
    # O_CREAT with the mode, then chmod: a pre-existing file keeps no looser mode than asked.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)
    return path


def _ignore(path: Path, name: str) -> Path:
    lines = path.read_text().splitlines() if path.exists() else []
    if f"/{name}" not in lines:
        lines.append(f"/{name}")
        path.write_text("\n".join(lines) + "\n")
    return path
