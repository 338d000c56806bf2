"""kopf keeps one memo per object it sees; the operator's memo makes that one shared object."""

from kopf._core.reactor.inventory import ResourceMemories

from federation_operator.controller.runner import OperatorMemo


async def test_every_object_kopf_remembers_shares_the_operators_memo() -> None:
    """kopf copies its memo for each object (every peer, every Secret in the watched namespaces)
    and keeps the copy while the object exists; ours is not copied, so the objects hold no memo
    of their own, and what a startup handler sets later is seen by all of them."""
    memo = OperatorMemo({"context": "the operator's"})
    memories = ResourceMemories()
    peer = await memories.recall({"metadata": {"uid": "peer-uid"}}, memobase=memo)
    secret = await memories.recall({"metadata": {"uid": "secret-uid"}}, memobase=memo)
    assert peer.memo is memo
    assert secret.memo is memo
    memo["set-after-the-objects"] = True
    assert peer.memo["set-after-the-objects"] is True
