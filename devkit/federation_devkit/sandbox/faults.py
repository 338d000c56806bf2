"""Fault injection and call recording for the sandbox API: what later tests need to be honest.

A real API server fails: 500s during upgrades, 409s on races, 429s under load, requests that hang,
watch streams that drop or fall behind the writes. Resilience tests switch those on here, per verb
and resource, with a probability; they are off by default. `Call` records (verb, group, resource, subresource,
namespace, and the caller's User-Agent) of every resource request, so a test can derive the RBAC
rules the operator needs from what it actually did. Pure: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

TIMEOUT: Final = 0  # a FaultRule status meaning "hang, then 504", as a stuck API server would


@dataclass(frozen=True)
class Call:
    """One resource request, in RBAC's terms (`verb` is get/list/watch/create/update/patch/delete/...).

    `user_agent` tells the callers apart (the sandbox has no authentication to say who called);
    it is left out of equality so that a test can look a call up by its RBAC terms alone."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    user_agent: str = field(default="", compare=False)


@dataclass
class FaultRule:
    """Fail requests of `verb` on `resource` (`"*"` = any) with `status`, with `probability`."""

    verb: str = "*"
    resource: str = "*"
    status: int = 500
    probability: float = 1.0

    def applies(self, *, verb: str, resource: str) -> bool:
        return self.verb in ("*", verb) and self.resource in ("*", resource)


@dataclass
class Faults:
    """The fault switchboard of one SandboxAPI; empty = a well-behaved server."""

    rules: list[FaultRule] = field(default_factory=list)
    # Per watch event about to be sent: the chance that the stream is cut instead.
    watch_drop_probability: float = 0.0
    # How long a TIMEOUT fault holds a request before answering 504.
    hang_seconds: float = 30.0
    # Per resource (plural, `"*"` = any): how long each watch event of it is held after its write
    # before it is sent, in order, as a watch stream that falls behind delivers it (a busy API
    # server, or a client that reads its stream late). The write's own reply is not held.
    watch_delays: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)

    def add(
        self, *, verb: str = "*", resource: str = "*", status: int = 500, probability: float = 1.0
    ) -> FaultRule:
        rule = FaultRule(verb=verb, resource=resource, status=status, probability=probability)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()
        self.watch_drop_probability = 0.0
        self.watch_delays.clear()

    def pick(self, *, verb: str, resource: str) -> FaultRule | None:
        """The first rule that applies and fires this time, if any."""
        for rule in self.rules:
            if rule.applies(verb=verb, resource=resource) and self.rng.random() < rule.probability:
                return rule
        return None

    def drop_watch(self) -> bool:
        return self.watch_drop_probability > 0 and self.rng.random() < self.watch_drop_probability

    def watch_delay(self, resource: str) -> float:
        """Seconds a watch event of `resource` waits after its write (0: sent at once)."""
        return self.watch_delays.get(resource, self.watch_delays.get("*", 0.0))
