"""The heartbeat's default worker pool is sized by the CPUs the operator may use, not the host's."""

import os
from pathlib import Path

import pytest

from federation_operator.adapters import cpus
from federation_operator.controller.scheduler import default_workers
from tests.harness.heartbeat import scrape
from tests.harness.net import free_port
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: the host's count and the usable one agree")
def test_an_operator_with_a_one_cpu_quota_runs_the_workers_of_one_cpu(
    site_factory: SiteFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")  # a Pod's limits.cpu: 1
    monkeypatch.setattr(cpus, "CPU_MAX", cpu_max)
    port = free_port()
    site_factory("eu", metrics_port=port, metrics_host="127.0.0.1")

    def workers() -> float | None:
        try:
            return scrape(port).get("federation_heartbeat_workers")
        except OSError:
            return None  # the listener is not up yet

    assert wait_for(workers, message="the operator's /metrics") == default_workers(1)
