"""kopf decorators only: which events reach which handler. The work is in `handlers/`.

One module per concern; `register` is called once per operator instance (see runner.py), so
every decorator names the registry explicitly and has an explicit `id`.
"""

import kopf

from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.controller.registration import certs, heartbeat, ingress, memory, metrics, peers


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    # The credential Secrets from the operator's watch: the credentials passes keep it, the
    # heartbeat reads its outbound tokens from it.
    secrets = SecretCache()
    certs.register(registry, config)
    peers.register(registry, config, secrets=secrets)
    heartbeat.register(registry, config, secrets=secrets)
    metrics.register(registry, config)
    ingress.register(registry, config)
    memory.register(registry, config)
