import base64
import hashlib
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation_operator.domain import tokens
from federation_operator.domain.tokens import SecretText


def test_generated_token_is_32_random_bytes_in_base64url_without_padding() -> None:
    token = tokens.generate_token().reveal()
    assert "=" not in token
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert tokens.is_token(token)
    assert tokens.generate_token().reveal() != token


def test_hash_is_sha256_hex_of_the_ascii_text_as_sha256sum_prints_it() -> None:
    token = tokens.generate_token()
    printed = subprocess.run(
        ["sha256sum"], input=token.reveal().encode(), capture_output=True, check=True
    ).stdout.split()[0]
    assert tokens.hash_token(token) == "sha256:" + printed.decode()


def test_fingerprint_is_first_twelve_hex_of_the_hash() -> None:
    token_hash = "sha256:" + hashlib.sha256(b"x").hexdigest()
    assert tokens.fingerprint(token_hash) == hashlib.sha256(b"x").hexdigest()[:12]
    with pytest.raises(tokens.MalformedCredential):
        tokens.fingerprint("sha256:nothex")


def test_secret_text_never_prints_its_value() -> None:
    token = tokens.generate_token()
    for rendered in (str(token), repr(token), f"{token}", f"{token!r}", repr([token])):
        assert token.reveal() not in rendered


def test_matches_only_the_right_token_and_any_of_several_hashes() -> None:
    good, other = tokens.generate_token(), tokens.generate_token()
    good_hash = tokens.hash_token(good)
    assert tokens.matches(good, good_hash)
    assert not tokens.matches(other, good_hash)
    assert tokens.matches_any(good, [tokens.hash_token(other), good_hash])
    assert not tokens.matches_any(other, [good_hash])
    assert not tokens.matches_any(good, [])


def test_stored_value_may_be_a_token_or_a_hash_and_nothing_else() -> None:
    token = tokens.generate_token()
    token_hash = tokens.hash_token(token)
    assert tokens.hash_from_stored(token.reveal() + "\n") == token_hash
    assert tokens.hash_from_stored(token_hash) == token_hash
    with pytest.raises(tokens.MalformedCredential) as raised:
        tokens.hash_from_stored("short-secret-value")
    assert "short-secret-value" not in str(raised.value)


@given(st.text(max_size=100))
def test_no_arbitrary_text_is_taken_for_a_hash_unless_it_has_the_exact_shape(text: str) -> None:
    try:
        result = tokens.hash_from_stored(text)
    except tokens.MalformedCredential:
        return
    assert tokens.is_hash(result)


def test_secret_text_compares_by_value() -> None:
    assert SecretText("a") == SecretText("a")


def test_raw_digests_are_the_bytes_behind_the_documented_hash() -> None:
    token = tokens.generate_token()
    assert tokens.digest_of_token(token) == tokens.digest_of_hash(tokens.hash_token(token))
    assert tokens.digest_matches(
        tokens.digest_of_token(token), tokens.digest_of_hash(tokens.hash_token(token))
    )
    other = tokens.digest_of_token(tokens.generate_token())
    assert not tokens.digest_matches(other, tokens.digest_of_hash(tokens.hash_token(token)))
    with pytest.raises(tokens.MalformedCredential):
        tokens.digest_of_hash("sha256:" + "G" * 64)
