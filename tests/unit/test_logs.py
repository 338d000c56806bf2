"""Operator log lines name their object, and kopf's own progress lines stay out of INFO."""

import logging

import pytest

from federation_operator.adapters.logs import (
    FORMAT,
    CancelledHandlersFilter,
    KopfProgressFilter,
    ObjectFormatter,
)

REF = {
    "apiVersion": "federation.ampora.io/v1alpha1",
    "kind": "FederationPeer",
    "namespace": "fed",
    "name": "us",
}


def record(
    message: str, *args: object, name: str = "kopf.objects", level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_line_about_an_object_starts_with_its_kind_and_namespace_and_name() -> None:
    line = ObjectFormatter("%(message)s").format(record("wrote Secret %s", "us-outbound", k8s_ref=REF))
    assert line == "FederationPeer fed/us: wrote Secret us-outbound"


def test_a_line_about_nothing_in_particular_is_left_as_it_is() -> None:
    assert (
        ObjectFormatter(FORMAT)
        .format(record("federation server: mTLS on %s", "127.0.0.1"))
        .endswith("INFO federation server: mTLS on 127.0.0.1")
    )


@pytest.mark.parametrize(
    "message",
    [
        "Handler 'peer-create' succeeded.",
        "Timer 'cert-check' succeeded.",
        "Creation is processed: 1 succeeded; 0 failed.",
        "Activity 'login' succeeded.",
        "Initial authentication has been initiated.",
    ],
)
def test_kopfs_progress_lines_are_dropped(message: str) -> None:
    assert not KopfProgressFilter().filter(record(message, name="kopf.objects"))


def test_our_lines_and_kopfs_warnings_pass() -> None:
    keep = KopfProgressFilter()
    assert keep.filter(record("issued certificate sha256:ab for eu-client (ECDSA)", k8s_ref=REF))
    assert keep.filter(record("Handler 'peer-create' failed temporarily: boom", level=logging.WARNING))


def test_a_stop_logs_one_cancelled_handler_and_counts_the_others() -> None:
    cancelled = CancelledHandlersFilter()
    lines = ["Handler 'peer-credentials-resume' is cancelled. Will escalate." for _ in range(5000)]
    lines.append("Daemon 'cert-check' is cancelled. Will escalate.")
    passed = [
        r.getMessage() for r in (record(line, level=logging.WARNING) for line in lines) if cancelled.filter(r)
    ]

    assert len(passed) == 1
    assert passed[0].startswith("Handler 'peer-credentials-resume' is cancelled. Will escalate.")
    assert "the others are counted" in passed[0]
    assert cancelled.summary() == (
        "the stop cancelled 5001 kopf handler(s) in flight; the next start resumes them"
    )


def test_other_warnings_and_our_own_words_pass_the_cancellation_count() -> None:
    cancelled = CancelledHandlersFilter()
    ours = record("Handler 'x' is cancelled. Will escalate.", name="federation_operator.controller")
    kopf_failure = record("Handler 'peer-credentials-resume' failed temporarily: boom", level=logging.WARNING)

    assert cancelled.filter(ours)
    assert cancelled.filter(kopf_failure)
    assert cancelled.summary() is None
