"""Identifier validation: only ASCII letters, digits and hyphens, within length, reach a URL."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

import asyncdeleter
from asyncdeleter import InvalidIdentifierError
from asyncdeleter._ids import FABRIC_ID_MAX, MODELARTS_ID_MAX, validate_id

SAFE = re.compile(r"[A-Za-z0-9-]+")
ALPHABET = string.ascii_letters + string.digits + "-"


@pytest.mark.parametrize("value", ["a", "ws-1", "ccd05d1a553b4e188ea878e7dcb85e47", "-", "A" * 36])
def test_documented_ids_pass_unchanged(value: str) -> None:
    assert validate_id("workspace_id", value, FABRIC_ID_MAX) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("a" * 37, "at most 36"),
        ("../etc", "'.'"),
        ("a/b", "'/'"),
        ("a%2Fb", "'%'"),
        ("a b", "' '"),
        ("a\n", "'\\n'"),
        ("ws\x00", "'\\x00'"),
        ("caf\u00e9", "'é'"),
        ("\u0663", "'٣'"),  # an Arabic-Indic digit: str.isdigit() would let it through
        ("a?b=c", "'?'"),
        ("a#b", "'#'"),
        (None, "must be a str"),
        (12, "must be a str"),
    ],
)
def test_unsafe_ids_are_rejected_naming_parameter_and_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        validate_id("session_id", value, FABRIC_ID_MAX)
    assert "session_id" in str(info.value)
    assert reason in str(info.value)
    assert info.value.parameter == "session_id"
    assert isinstance(info.value, ValueError)


def test_modelarts_ids_allow_64_characters() -> None:
    assert validate_id("project_id", "p" * 64, MODELARTS_ID_MAX) == "p" * 64
    with pytest.raises(InvalidIdentifierError):
        validate_id("project_id", "p" * 65, MODELARTS_ID_MAX)


@given(st.text(max_size=80))
def test_any_text_is_either_safe_or_rejected(value: str) -> None:
    """Property: whatever the text, a value that passes is safe for a URL path segment."""
    documented = bool(SAFE.fullmatch(value)) and 0 < len(value) <= FABRIC_ID_MAX
    if documented:
        assert validate_id("workspace_id", value, FABRIC_ID_MAX) == value
    else:
        with pytest.raises(InvalidIdentifierError):
            validate_id("workspace_id", value, FABRIC_ID_MAX)


@given(st.text(alphabet=ALPHABET, min_size=1, max_size=FABRIC_ID_MAX))
def test_every_documented_id_is_accepted(value: str) -> None:
    assert validate_id("session_id", value, FABRIC_ID_MAX) == value


async def test_a_str_subclass_cannot_put_another_path_into_the_url() -> None:
    """Validation returns a plain str: a subclass's __format__ never reaches the URL."""
    from asyncdeleter.testing import Emulator

    class Sneaky(str):
        __slots__ = ()

        def __format__(self, spec: str) -> str:
            return "../../admin"

        def __str__(self) -> str:
            return "../../admin"

    async with Emulator() as emu:
        emu.add_sessions("ws", ["s1"])
        async with asyncdeleter.SessionManager(endpoints=emu.endpoints()) as manager:
            await manager.close_session(Sneaky("ws"), Sneaky("s1"))
        assert [r.path for r in emu.requests] == ["/v1/workspaces/ws/sessions/s1"]
