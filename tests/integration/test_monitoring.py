"""The chart's monitoring: PrometheusRule, operator PodMonitor and Grafana dashboard.

The rule is rendered out of the chart by the real helm, then checked by the real promtool
(`check rules`, and `test rules` with the cases in tests/prometheus/alerts_test.yaml, written
from the alerting contract in docs/operations.md). Every alert links to a runbook that exists.
"""

import functools
import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from federation_devkit import demo
from tests.harness.net import free_port
from tests.harness.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "federation-operator"
DASHBOARD = CHART / "dashboards" / "federation-operator.json"
OPERATIONS = ROOT / "docs" / "operations.md"
RELEASE, NAMESPACE = "fed", "federation-system"
OPERATOR_JOB, SERVER_JOB = f"{RELEASE}-federation-operator-operator", f"{RELEASE}-federation-operator-server"
RUNBOOKS = "https://github.com/ampora/federation-operator/blob/main/docs/operations.md"
# What issue #16 asks the alerts to cover, by the alert that covers it.
REQUIRED_ALERTS = {
    "FederationPeerUnreachable": "critical",
    "FederationPeerDegraded": "warning",
    "FederationCertificateExpiringSoon": "warning",
    "FederationCertificateExpired": "critical",
    "FederationInboundAuthFailures": "warning",
    "FederationOperatorDown": "critical",
    "FederationOperatorReconcileErrors": "warning",
    "FederationHeartbeatSaturated": "warning",
    # Not asked by #16: the heartbeat's status writes waiting on the API server (issue #17).
    "FederationHeartbeatStatusWritesBehind": "warning",
}
MONITORING = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.grafanaDashboard.enabled=true",
)

Doc = dict[str, Any]
pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not on PATH (Debian package `prometheus`; .ci/run installs it)")
    return binary


@functools.cache
def render(helm: str, sets: tuple[str, ...]) -> tuple[Doc, ...]:
    args = [
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        # The values without a default: the public host, and the proxy whose header is believed.
        "--set",
        "ingress.host=f.example",
        "--set",
        "server.trustedProxies={10.244.0.0/16}",
    ]
    for assignment in sets:
        # `--set` gives helm 4 a string for 2.5; a number goes through --set-json.
        flag, _, assignment = assignment.rpartition(" ")
        args += [flag or "--set", assignment]
    result = subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def rule_groups(helm: str) -> list[Doc]:
    (rule,) = of_kind(render(helm, MONITORING), "PrometheusRule")
    groups: list[Doc] = rule["spec"]["groups"]
    return groups


def alerts(helm: str) -> dict[str, Doc]:
    return {rule["alert"]: rule for group in rule_groups(helm) for rule in group["rules"] if "alert" in rule}


def write_rules(helm: str, directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(helm)}, sort_keys=False))
    return path


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lowercase, punctuation dropped, spaces to dashes."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_monitoring_objects_are_off_by_default(helm: str) -> None:
    docs = render(helm, ())
    assert not of_kind(docs, "PrometheusRule")
    assert not of_kind(docs, "PodMonitor")
    assert not [doc for doc in of_kind(docs, "ConfigMap") if "grafana_dashboard" in doc["metadata"]["labels"]]


def test_rendered_rules_pass_promtool_check(helm: str, promtool: str, tmp_path: Path) -> None:
    rules = write_rules(helm, tmp_path)
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts(helm))} rules found" in result.stdout


def test_rendered_rules_pass_the_promtool_unit_tests(helm: str, promtool: str, tmp_path: Path) -> None:
    write_rules(helm, tmp_path)
    cases = tmp_path / "alerts_test.yaml"
    shutil.copy(ROOT / "tests" / "prometheus" / "alerts_test.yaml", cases)
    result = subprocess.run(
        [promtool, "test", "rules", str(cases)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", cases.read_text()))
    assert tested == set(REQUIRED_ALERTS), "every alert has promtool cases"


def test_a_broken_expectation_fails_the_promtool_unit_tests(helm: str, promtool: str, tmp_path: Path) -> None:
    write_rules(helm, tmp_path)
    cases = tmp_path / "alerts_test.yaml"
    text = (ROOT / "tests" / "prometheus" / "alerts_test.yaml").read_text()
    cases.write_text(text.replace("peer: us-region", "peer: eu-region", 1))
    result = subprocess.run(
        [promtool, "test", "rules", str(cases)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode != 0


def test_every_required_alert_exists_with_severity_and_a_runbook_that_exists(helm: str) -> None:
    found = alerts(helm)
    assert set(found) == set(REQUIRED_ALERTS)
    anchors = github_anchors(OPERATIONS.read_text())
    for name, rule in found.items():
        assert rule["labels"]["severity"] == REQUIRED_ALERTS[name]
        assert rule["annotations"]["summary"]
        base, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert base == RUNBOOKS
        assert anchor == name.lower()
        assert anchor in anchors, f"docs/operations.md has no heading for {name}"


def test_rules_select_this_releases_jobs(helm: str) -> None:
    for name, rule in alerts(helm).items():
        jobs = set(re.findall(r'job="([^"]+)"', rule["expr"]))
        assert jobs, name
        assert jobs <= {OPERATOR_JOB, SERVER_JOB}, name


def test_rule_thresholds_and_runbook_base_are_values(helm: str) -> None:
    docs = render(
        helm,
        (
            *MONITORING,
            "--set-json metrics.prometheusRule.authFailuresPerSecond=2.5",
            "metrics.prometheusRule.runbookBaseURL=https://wiki.example/federation",
        ),
    )
    (rule,) = of_kind(docs, "PrometheusRule")
    found = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert found["FederationInboundAuthFailures"]["expr"].rstrip().endswith("> 2.5")
    assert found["FederationPeerUnreachable"]["annotations"]["runbook_url"] == (
        "https://wiki.example/federation#federationpeerunreachable"
    )


def test_the_pod_monitor_scrapes_the_operators_metrics_port_as_the_rules_job(helm: str) -> None:
    docs = render(helm, (*MONITORING, "operator.standby.enabled=true"))
    (monitor,) = of_kind(docs, "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True  # the heartbeat's `namespace` is the peer's
    assert {"targetLabel": "job", "replacement": OPERATOR_JOB} in endpoint["relabelings"]
    selector = monitor["spec"]["selector"]

    def component(deployment: Doc) -> str:
        return str(deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"])

    operators = [d for d in of_kind(docs, "Deployment") if component(d) != "server"]
    assert len(operators) == 2  # active and stand-by
    for deployment in operators:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector["matchLabels"].items() <= labels.items()
        (expression,) = selector["matchExpressions"]
        assert labels[expression["key"]] in expression["values"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert endpoint["port"] in {port["name"] for port in container["ports"]}
    servers = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-server")]
    (server,) = servers
    assert (
        server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        not in (selector["matchExpressions"][0]["values"])
    )


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_dashboard(helm: str) -> None:
    docs = render(helm, (*MONITORING, "metrics.grafanaDashboard.namespace=monitoring"))
    (config_map,) = [d for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert json.loads(config_map["data"]["federation-operator.json"]) == json.loads(DASHBOARD.read_text())


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = {panel["title"]: [t["expr"] for t in panel["targets"]] for panel in dashboard["panels"]}
    wanted = {
        "Links by reachability": "federation_heartbeat_peers",
        "Ping latency": "federation_heartbeat_ping_duration_seconds_bucket",
        "Ping failures by factor": "federation_heartbeat_pings_total",
        "Certificate expiry": "federation_certificate_not_after_timestamp_seconds",
        "Inbound auth results": "federation_server_requests_total",
    }
    for title, metric in wanted.items():
        assert any(metric in expr for expr in exprs[title]), title
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


# --- every metric the alerts and the dashboard use exists on a running site ---------------------

METRIC_NAME = re.compile(r"\b(federation_[a-z_]+)\b")
SELECTOR = re.compile(r"\b(federation_[a-z_]+)\{([^}]*)\}")


def used_metrics(helm: str) -> dict[str, set[str]]:
    """Metric name -> label names its selectors use, over the rules and the dashboard."""
    exprs = [rule["expr"] for rule in alerts(helm).values()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used: dict[str, set[str]] = {}
    for expr in exprs:
        for name in METRIC_NAME.findall(expr):
            used.setdefault(name, set())
        for name, matchers in SELECTOR.findall(expr):
            used[name] |= {m.split("=")[0].rstrip("!~").strip() for m in matchers.split(",") if m.strip()}
    return used


def scrape(port: int) -> dict[str, list[Sample]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


@pytest.mark.slow
def test_every_metric_the_alerts_and_dashboard_use_exists_on_a_running_site(
    helm: str, tmp_path: Path
) -> None:
    interval = 1.0
    ports = {name: (free_port(), free_port()) for name in ("eu", "us")}
    # operator /metrics, federation server /metrics (its in-cluster port)
    options = {
        name: {
            "operator_overrides": {"metrics_port": ports[name][0], "metrics_host": "127.0.0.1"},
            "metrics_port": ports[name][1],
        }
        for name in ("eu", "us")
    }
    with demo.two_sites(tmp_path, options=options) as (eu, us):
        demo.issue_client_certificates(eu, us)
        demo.create_peer(eu, us, name="us-region", interval=interval)
        bundle = demo.export(
            eu, "us-region", name="eu-region", endpoint=eu.local.endpoint, client_certificate="us-client"
        )
        demo.accept_bundle(us, eu, bundle, name="eu-region", interval=interval)
        demo.wait_reachable([(eu, "us-region"), (us, "eu-region")], interval=interval)
        # One refused inbound call (TLS, no client certificate), so the refusal series exist too.
        trust = ssl.create_default_context(cafile=str(eu.local.ca_file))
        refused = httpx.get(f"{eu.local.endpoint}/api/federation/ping", verify=trust, timeout=5)
        assert refused.status_code == 401

        def exposed() -> dict[str, list[Sample]] | None:
            samples = scrape(ports["eu"][0]) | scrape(ports["eu"][1])
            return samples if set(used_metrics(helm)) <= set(samples) else None

        samples = wait_for(exposed, timeout=30, interval=0.5, message="every used metric exposed")

    for name, labels in used_metrics(helm).items():
        exposed_labels = set().union(*(sample.labels for sample in samples[name]))
        # `job` is the scrape's own label (PodMonitor / ServiceMonitor), not the metric's.
        assert labels - {"job"} <= exposed_labels, f"{name}: selectors use {labels}, exposed {exposed_labels}"
    requests = samples["federation_server_requests_total"]
    assert any(s.labels.get("result") == "denied" for s in requests), requests
    assert any(
        s.labels.get("state") == "Reachable" and s.value == 1
        for s in samples["federation_heartbeat_peer_state"]
    )
