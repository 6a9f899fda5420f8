"""Error bodies of both shapes, and anything else a server may send, become typed fields."""

from __future__ import annotations

import json

import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdeleter import DeletedWorkspace
from asyncdeleter._models import ErrorBody, converter, parse_error_body

FORBIDDEN = {
    "error": {
        "code": "403",
        "message": "X-Auth-Token is invalid in the request",
        "title": "Forbidden",
    },
    "error_code": 403,
    "error_msg": "X-Auth-Token is invalid in the request",
    "title": "Forbidden",
}


def test_flat_shape_with_solution() -> None:
    body = parse_error_body(
        b'{"error_code": "common.01000001", "error_msg": "bad", "solution_msg": "fix it"}'
    )
    assert body == ErrorBody(error_code="common.01000001", error_msg="bad", solution_msg="fix it")


def test_nested_403_shape_with_integer_code() -> None:
    body = parse_error_body(json.dumps(FORBIDDEN).encode())
    assert body.error_code == "403"
    assert body.error_msg == "X-Auth-Token is invalid in the request"
    assert body.solution_msg is None


def test_nested_only_shape_falls_back_to_the_inner_object() -> None:
    body = parse_error_body(b'{"error": {"code": "APIG.1005", "message": "No permissions"}}')
    assert body == ErrorBody(error_code="APIG.1005", error_msg="No permissions")


def test_non_json_bodies_give_empty_fields() -> None:
    for raw in (
        b"",
        b"<html><h1>502 Bad Gateway</h1></html>",
        b"Service Unavailable",
        b'{"error_code": "com',
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b"null",
    ):
        assert parse_error_body(raw) == ErrorBody()


def test_wrong_types_in_known_fields_are_dropped() -> None:
    body = parse_error_body(b'{"error_code": ["x"], "error_msg": {"a": 1}, "solution_msg": true}')
    assert body == ErrorBody()


def test_deeply_nested_json_does_not_raise() -> None:
    assert parse_error_body(b"[" * 100_000 + b"]" * 100_000) == ErrorBody()


def test_huge_fields_are_cut() -> None:
    body = parse_error_body(json.dumps({"error_msg": "x" * 100_000}).encode())
    assert body.error_msg is not None
    assert len(body.error_msg) == 4096


@given(st.binary(max_size=512))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(parse_error_body(raw), ErrorBody)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["error_code", "error_msg", "solution_msg", "error", "title"]), JSONISH
    )
)
def test_random_json_objects_give_string_or_none_fields(data: dict[str, object]) -> None:
    body = parse_error_body(json.dumps(data).encode())
    for value in (body.error_code, body.error_msg, body.solution_msg):
        assert value is None or isinstance(value, str)


def test_own_converter_round_trips_deleted_workspace() -> None:
    result = DeletedWorkspace(workspace_id="ws-1", request_id="req-1")
    assert result == DeletedWorkspace(workspace_id="ws-1", request_id="req-1")
    plain = converter.unstructure(result)
    assert plain == {
        "workspace_id": "ws-1",
        "request_id": "req-1",
        "already_gone": False,
        "confirmed": False,
    }
    assert converter.structure(plain, DeletedWorkspace) == result
    # Our converter has hooks the global one lacks: the 403 shape's integer error_code.
    body = {"error": {"code": "403", "message": "m"}, "error_code": 403}
    assert converter.structure(body, ErrorBody).error_code == "403"
    with pytest.raises(cattrs.errors.StructureHandlerNotFoundError):
        cattrs.global_converter.structure(body, ErrorBody)  # we never configured it
