"""Log lines for the person running the operator: each names its object; kopf's bookkeeping is quiet.

kopf hands every handler a logger whose records carry the object (`record.k8s_ref`), but the
plain text format prints only the message, so "wrote Secret us-region-outbound" did not say in
which namespace or for which object. The formatter here starts such lines with
`FederationPeer federation/us-region:`. kopf also logs its own progress at INFO ("Handler
'peer-create' succeeded.", "Creation is processed: 1 succeeded; 0 failed.", activities,
authentication): implementation words that bury what happened, so without --verbose they are
dropped, and what our handlers log in their own words remains.
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


def configure_logging(*, verbose: bool) -> None:
    """Root logging for a command: INFO in words (DEBUG and kopf's progress with `verbose`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(ObjectFormatter(VERBOSE_FORMAT if verbose else FORMAT))
    if not verbose:
        handler.addFilter(KopfProgressFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
