"""API keys (SPEC section 1): `chipp_` + 26 random base-36 characters + a 6-character CRC32 checksum."""

from __future__ import annotations

import hashlib
import re
import zlib

import pytest

from chipp_builder.errors import Forbidden, Unauthorized
from chipp_builder.server.auth import (
    KeyIdentity,
    bearer_token,
    display_prefix,
    full_scopes,
    generate_key,
    hash_key,
    is_well_formed,
)

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def spec_checksum(body: str) -> str:
    """The SPEC's checksum, written out independently: CRC32 mod 36^6 in base 36, left-padded with 0."""
    value = zlib.crc32(body.encode("ascii")) % 36**6
    digits = ""
    while value:
        value, rest = divmod(value, 36)
        digits = ALPHABET[rest] + digits
    return digits.rjust(6, "0")


def test_a_generated_key_has_the_format():
    assert re.fullmatch(r"chipp_[a-z0-9]{32}", generate_key())


def test_a_generated_keys_last_six_characters_are_the_spec_checksum():
    for _ in range(50):
        key = generate_key()
        assert key[-6:] == spec_checksum(key[6:32])


def test_generated_keys_are_well_formed_and_distinct():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(is_well_formed(key) for key in keys)


def test_generated_keys_use_the_whole_alphabet():
    seen = set("".join(generate_key()[6:32] for _ in range(200)))
    assert seen == set(ALPHABET)


@pytest.mark.parametrize(
    "body", ["a" * 26, "0" * 26, "z" * 26, "abcdefghijklmnopqrstuvwxyz", "0123456789" * 2 + "abcdef"]
)
def test_a_key_built_by_the_spec_is_well_formed(body):
    assert is_well_formed("chipp_" + body + spec_checksum(body))


def test_a_checksum_with_leading_zeros_is_padded():
    # Search a body whose checksum is small enough to need padding, so the padding rule is exercised.
    body = next(b for b in (f"{n:026d}" for n in range(100_000)) if zlib.crc32(b.encode()) % 36**6 < 36**5)
    checksum = spec_checksum(body)
    assert checksum.startswith("0")
    assert is_well_formed("chipp_" + body + checksum)


def test_a_wrong_checksum_is_not_well_formed():
    key = generate_key()
    wrong = "000000" if key[-6:] != "000000" else "000001"
    assert not is_well_formed(key[:-6] + wrong)


def test_one_changed_character_is_not_well_formed():
    key = generate_key()
    for position in (6, 20, 31):
        changed = key[:position] + ("a" if key[position] != "a" else "b") + key[position + 1 :]
        assert not is_well_formed(changed)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "chipp_",
        "chipp_" + "a" * 31,
        "chipp_" + "a" * 33,
        "CHIPP_" + "a" * 32,
        "chipp-" + "a" * 32,
        "xchipp_" + "a" * 32,
        "sk_" + "a" * 35,
    ],
)
def test_tokens_of_the_wrong_shape_are_not_well_formed(token):
    assert not is_well_formed(token)


def test_an_uppercased_valid_key_is_not_well_formed():
    key = generate_key()
    assert not is_well_formed("chipp_" + key[6:].upper()) or key[6:] == key[6:].upper()


def test_a_key_with_a_trailing_newline_is_not_well_formed():
    assert not is_well_formed(generate_key() + "\n")


def test_the_stored_hash_is_sha256_of_the_whole_key():
    key = generate_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).digest()
    assert len(hash_key(key)) == 32


def test_the_display_prefix_is_the_first_ten_characters():
    key = generate_key()
    assert display_prefix(key) == key[:10]
    assert display_prefix(key).startswith("chipp_")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(scheme):
    assert bearer_token(f"{scheme} chipp_x") == "chipp_x"


@pytest.mark.parametrize(
    "header", [None, "", "Basic x", "Bearer", "Bearer ", "Token chipp_x", "chipp_x", "Bearer a b"]
)
def test_a_header_that_is_not_bearer_token_is_unauthorized(header):
    with pytest.raises(Unauthorized, match="^Missing or invalid Authorization header$"):
        bearer_token(header)


def test_a_new_key_reads_every_resource_unless_told():
    assert full_scopes() == {
        "sessions": "read",
        "consumers": "read",
        "feedback": "read",
        "tags": "read",
        "knowledge_sources": "read",
        "memories": "read",
        "analytics": "read",
    }
    assert full_scopes({"analytics": "none", "sessions": "write"})["analytics"] == "none"


def test_write_implies_read_and_none_forbids_reading():
    identity = KeyIdentity(key_id=None, app_id=None, scopes={"sessions": "write", "tags": "none"})  # type: ignore[arg-type]
    identity.require("sessions", "read")
    identity.require("sessions", "write")
    with pytest.raises(Forbidden, match="^API key lacks read access to tags$"):
        identity.require("tags", "read")
    with pytest.raises(Forbidden, match="^API key lacks read access to memories$"):
        identity.require("memories", "read")
