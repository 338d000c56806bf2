"""Label and field selectors as the API server matches them."""

import pytest

from federation_devkit.sandbox.selectors import Selector, SelectorError


def obj(labels: dict[str, str], name: str = "n", namespace: str = "ns") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a in (x, y)", {"a": "y"}, True),
        ("a in (x,y)", {}, False),
        ("a notin (x)", {}, True),
        ("a notin (x)", {"a": "x"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": "1"}, False),
        ("!a", {}, True),
        (
            "app.kubernetes.io/managed-by=federation-operator,role in (inbound)",
            {"app.kubernetes.io/managed-by": "federation-operator", "role": "inbound"},
            True,
        ),
        ("", {}, True),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert Selector.parse(label_selector=selector).matches(obj(labels)) is expected


def test_field_selector_on_name_and_namespace() -> None:
    selector = Selector.parse(field_selector="metadata.name=x,metadata.namespace!=kube-system")
    assert selector.matches(obj({}, name="x"))
    assert not selector.matches(obj({}, name="y"))
    assert not selector.matches(obj({}, name="x", namespace="kube-system"))


@pytest.mark.parametrize(
    ("labels", "fields"), [("a in x", ""), ("a in (x", ""), ("", "spec.x=1"), ("", "nonsense")]
)
def test_malformed_selectors_are_errors(labels: str, fields: str) -> None:
    with pytest.raises(SelectorError):
        Selector.parse(label_selector=labels, field_selector=fields)


EVENT = {
    "metadata": {"name": "e1", "namespace": "default"},
    "involvedObject": {"kind": "FederationCert", "namespace": "default", "name": "client", "uid": "u-1"},
    "reason": "Issued",
    "type": "Normal",
    "source": {"component": "federation-operator"},
}


def test_events_are_selected_by_involved_object_as_kubectl_describe_asks() -> None:
    selector = Selector.parse(
        field_selector="involvedObject.name=client,involvedObject.namespace=default,"
        "involvedObject.kind=FederationCert,involvedObject.uid=u-1",
        plural="events",
    )
    assert selector.matches(EVENT)
    other = Selector.parse(field_selector="involvedObject.name=other", plural="events")
    assert not other.matches(EVENT)
    assert Selector.parse(field_selector="type!=Warning,reason=Issued", plural="events").matches(EVENT)


def test_kind_specific_fields_are_refused_for_other_kinds() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: involvedObject\.name"):
        Selector.parse(field_selector="involvedObject.name=client", plural="configmaps")
    assert Selector.parse(field_selector="type=kubernetes.io/tls", plural="secrets").matches(
        {"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}
    )
