"""Log lines for the person running the operator: each names its object; kopf's bookkeeping is quiet.

kopf hands every handler a logger whose records carry the object (`record.k8s_ref`), but the
plain text format prints only the message, so "wrote Secret us-region-outbound" did not say in
which namespace or for which object. The formatter here starts such lines with
`FederationPeer federation/us-region:`. kopf also logs its own progress at INFO ("Handler
'peer-create' succeeded.", "Creation is processed: 1 succeeded; 0 failed.", activities,
authentication): implementation words that bury what happened, so without --verbose they are
dropped, and what our handlers log in their own words remains.

A stop cancels every object's handler in flight, and kopf warns once for each ("Handler
'peer-credentials-resume' is cancelled. Will escalate."): thousands of warnings on every rolling
update of an operator with thousands of peers, none of which needs an action (the next start
resumes each). The first one is logged with a note, the others are counted, and the stop's last
line says how many.
"""

import logging
import re
from typing import Final

FORMAT: Final = "%(asctime)s %(levelname)s %(message)s"
VERBOSE_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# kopf's own INFO progress lines (kopf 1.45 wording), by message.
_KOPF_PROGRESS: Final = re.compile(
    r"^(?:(?:Handler|Timer|Daemon|Activity) '[^']+' (?:succeeded|is invoked|has exited gracefully)\.?"
    r"|(?:Creation|Updating|Deletion|Resuming|Resumption) is processed: .*"
    r"|Initial authentication has (?:been initiated|finished)\.?"
    r"|Stop-flag is set to True\. Operator is stopping\.?)$"
)
# kopf's warning for a handler it cancels (kopf 1.45 wording); kopf cancels handlers only to stop.
_KOPF_CANCELLED: Final = re.compile(r"^(?:Handler|Timer|Daemon) '[^']+' is cancelled\. Will escalate\.?$")


class ObjectFormatter(logging.Formatter):
    """Starts a line about a Kubernetes object with its kind and namespace/name."""

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name"):
            namespace, name = ref.get("namespace"), ref["name"]
            where = f"{namespace}/{name}" if namespace else str(name)
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"{ref.get('kind') or 'object'} {where}: {record.getMessage()}"
            record.args = None
        return super().format(record)


class KopfProgressFilter(logging.Filter):
    """Drops kopf's own INFO progress lines; warnings and errors always pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("kopf"):
            return True
        return not _KOPF_PROGRESS.match(record.getMessage())


class CancelledHandlersFilter(logging.Filter):
    """Lets kopf's first "is cancelled" warning through, with a note, and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kopf") or not _KOPF_CANCELLED.match(record.getMessage()):
            return True
        self.cancelled += 1
        if self.cancelled > 1:
            return False
        note = "the stop cancels every handler in flight: the others are counted"
        record.msg = f"{record.getMessage()} ({note})"
        record.args = None
        return True

    def summary(self) -> str | None:
        """The stop's line for the handlers it cancelled; None when it cancelled none."""
        if not self.cancelled:
            return None
        return f"the stop cancelled {self.cancelled} kopf handler(s) in flight; the next start resumes them"


# One per process, as the root logger's configuration is: `run` reports its count when it stops.
CANCELLED_HANDLERS: Final = CancelledHandlersFilter()


def configure_logging(*, verbose: bool) -> None:
    """Root logging for a command: INFO in words (DEBUG and kopf's progress with `verbose`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(ObjectFormatter(VERBOSE_FORMAT if verbose else FORMAT))
    if not verbose:
        handler.addFilter(KopfProgressFilter())
    # Even verbose: thousands of the same line show nothing that one line and a count do not.
    handler.addFilter(CANCELLED_HANDLERS)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
