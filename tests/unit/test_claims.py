"""SharedClaims: which peers claim the same caller, and whom a change must re-judge."""

from federation_operator.domain.claims import SharedClaims

A, B, C = ("default", "a"), ("aaa", "b"), ("other", "c")
PAIR = ("sha256:" + "1" * 64, "sha256:" + "2" * 64)
ELSE = ("sha256:" + "3" * 64, "sha256:" + "4" * 64)


def test_peers_sharing_a_claim_see_each_other_and_a_newcomer_re_judges_the_holder() -> None:
    claims = SharedClaims()
    assert claims.register(A, [PAIR]) == set()
    assert claims.register(B, [PAIR]) == {A}
    assert claims.register(C, [ELSE]) == set()
    assert claims.sharing(A) == [B]
    assert claims.sharing(B) == [A]
    assert claims.sharing(C) == []


def test_an_unchanged_registration_re_judges_nobody_so_re_judging_does_not_cascade() -> None:
    claims = SharedClaims()
    claims.register(A, [PAIR])
    claims.register(B, [PAIR])
    assert claims.register(A, [PAIR]) == set()


def test_leaving_a_claim_re_judges_the_peers_left_behind() -> None:
    claims = SharedClaims()
    claims.register(A, [PAIR])
    claims.register(B, [PAIR])
    assert claims.register(B, [ELSE]) == {A}
    assert claims.sharing(A) == []
    assert claims.register(B, [PAIR]) == {A}
    assert claims.forget(B) == {A}
    assert claims.sharing(A) == []
