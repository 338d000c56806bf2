"""The operator stopped and started at random points, many times, while peers reconcile.

A random point is a random number of API calls after the start (seeded), so that stops land
between a Secret's create and the status that reports it, between one peer's Secrets, inside
kopf's own bookkeeping. After every cycle the Secrets are read; the first value of each is
remembered, and no later read may differ: a restart must never make a new token or key.

A stop never waits out kopf's 5 s hung-task timeout (`runner.reap_leftovers`), so the issue's
100 restarts fit the tier (docs/benchmarks.md has the runtime).
"""

import random

import pytest
from tests.harness.reliability import (
    CERTS,
    PEERS,
    Secrets,
    count,
    is_true,
    peer_spec,
    secret_bytes,
    seed,
    stored,
)
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

# The most API calls a cycle lets the operator make before stopping it: roughly one peer's
# first reconcile, so that most stops land mid-way through some peer's writes.
MAX_CALLS_PER_CYCLE = 40
DEFAULT_RESTARTS = 100


def remember_first(first: Secrets, current: Secrets) -> None:
    """Record Secrets seen for the first time; fail on any byte that differs from its first value."""
    for name, data in current.items():
        if name not in first:
            first[name] = data
            continue
        for key, value in data.items():
            if key in first[name]:
                assert value == first[name][key], f"Secret {name} key {key} changed across a restart"
            else:
                first[name][key] = value


@pytest.mark.slow
def test_a_restart_storm_converges_and_never_changes_a_token_or_key(site_factory: SiteFactory) -> None:
    total = count("RELIABILITY_STORM_PEERS", 50)
    restarts = count("RELIABILITY_RESTARTS", DEFAULT_RESTARTS)
    rng = random.Random(seed())
    site = site_factory("eu", operator=False, peer_check_interval=1.0)
    sandbox = site.sandbox
    for number in range(total):
        site.create(CERTS, f"c{number:02d}", {"subject": f"c{number:02d}"})
        site.create(PEERS, f"p{number:02d}", peer_spec(f"c{number:02d}"))

    first: Secrets = {}
    for _ in range(restarts):
        site.start_operator()
        target = sandbox.call(lambda: len(sandbox.api.calls)) + rng.randint(0, MAX_CALLS_PER_CYCLE)
        # Calls keep coming while anything is unconverged (and from the 1 s periodic checks after).
        wait_for(lambda: sandbox.call(lambda: len(sandbox.api.calls)) >= target, timeout=30)  # noqa: B023
        site.stop_operator()
        remember_first(first, secret_bytes(sandbox))

    site.start_operator()

    def converged() -> bool:
        certs = stored(sandbox, CERTS)
        peers = stored(sandbox, PEERS)
        return all(is_true(obj, "Ready") for obj in certs) and all(
            is_true(obj, "CredentialsReady") for obj in peers
        )

    wait_for(converged, timeout=90, interval=0.5, message="convergence after the storm")
    final = secret_bytes(sandbox)
    remember_first(first, final)
    assert len(final) == 4 * total, "every cert has one Secret and every peer three, no more"
