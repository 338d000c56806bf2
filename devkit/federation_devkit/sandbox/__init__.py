"""In-memory Kubernetes API emulation for development, tests and demos: not a cluster.

`SandboxAPI` (emulator.py) is the server, `Sandbox`/`SandboxThread` (server.py) serve it on
loopback, `validation.validate_object` checks manifests against our CRDs offline. See emulator.py
for what it emulates faithfully and where it does not.
"""

from federation_devkit.sandbox.emulator import SandboxAPI
from federation_devkit.sandbox.faults import Call, FaultRule, Faults
from federation_devkit.sandbox.server import Sandbox, SandboxThread
from federation_devkit.sandbox.validation import FieldError, validate_object

__all__ = [
    "Call",
    "FaultRule",
    "Faults",
    "FieldError",
    "Sandbox",
    "SandboxAPI",
    "SandboxThread",
    "validate_object",
]
