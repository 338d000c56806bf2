"""The operator serves its own /metrics (the heartbeat's figures) when given a port."""

import re

import httpx

from tests.harness.net import free_port
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for


def test_operator_serves_prometheus_metrics_on_its_port(site_factory: SiteFactory) -> None:
    port = free_port()
    site_factory("eu", metrics_port=port, metrics_host="127.0.0.1")

    def scrape() -> str | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        except httpx.TransportError:
            return None
        return response.text if response.status_code == 200 else None

    text = wait_for(scrape, message="/metrics answering")
    assert "# TYPE federation_" in text
    # kopf's requests at the in-flight gate: the gauges exist from the start, read at each scrape.
    assert re.search(r"^federation_operator_api_requests_waiting \d", text, re.MULTILINE), text
    assert re.search(r"^federation_operator_api_requests_in_flight \d", text, re.MULTILINE), text
