"""kopf decorators only: which events reach which handler. The work is in `handlers/`.

One module per concern; `register` is called once per operator instance (see runner.py), so
every decorator names the registry explicitly and has an explicit `id`.
"""

import kopf

from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.registration import certs, heartbeat, ingress, metrics, peers


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    certs.register(registry, config)
    peers.register(registry, config)
    heartbeat.register(registry, config)
    metrics.register(registry, config)
    ingress.register(registry, config)
