"""kopf's own bookkeeping on an object, set by a test to reach a state kopf gets into under races.

kopf decides what changed by comparing an object with the last configuration it finished
handling (its diff-base, the `last-handled-configuration` annotation). A spec that goes A -> B -> A
while the handlers of B are still in progress compares equal to A, and kopf drops the rest of B's
handlers: what they already did stays. `change_spec_behind_kopfs_back` makes that state at once
and deterministically: the spec changes together with the diff-base, so kopf sees nothing to
handle. What converges the object then is whatever the operator does besides kopf's change
handlers (event handlers, periodic checks).
"""

import json
from typing import Any

from federation_operator.controller.runner import KOPF_PREFIX
from tests.harness.site import Site
from tests.harness.waiting import wait_for

DIFF_BASE = f"{KOPF_PREFIX}/last-handled-configuration"


def change_spec_behind_kopfs_back(site: Site, plural: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Merge `spec` into the object's spec and into kopf's diff-base in one patch; return the object.

    Waits for kopf to have recorded a diff-base first (it writes one when an object's handlers
    are done)."""
    handled = wait_for(
        lambda: ((site.get(plural, name) or {}).get("metadata", {}).get("annotations") or {}).get(DIFF_BASE),
        timeout=30,
        message=f"kopf's diff-base on {plural}/{name}",
    )
    essence = json.loads(handled)
    essence.setdefault("spec", {}).update(spec)
    return site.patch(
        plural, name, {"metadata": {"annotations": {DIFF_BASE: json.dumps(essence)}}, "spec": spec}
    )
