"""The read-side models: every field, renames, odd times, unknown fields, bad bodies."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import cattrs
import pytest

import asyncdeleter
from asyncdeleter import SqlSession, Workspace
from asyncdeleter._models import converter
from asyncdeleter._operations import LIST_SQL_SESSIONS, LIST_WORKSPACE, SHOW_SQL_SESSION
from asyncdeleter._times import parse_time

WHEN = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1795428000, WHEN),  # epoch seconds
        (1795428000000, WHEN),  # epoch milliseconds (above 1e11)
        (1795428000.0, WHEN),
        ("1795428000", WHEN),
        ("1795428000000", WHEN),
        ("2026-11-23T10:00:00Z", WHEN),
        ("2026-11-23T18:00:00+08:00", WHEN),
        ("2026-11-23 10:00:00", WHEN),  # no zone: the services' zone, UTC
        ("2026-11-23T10:00:00.000Z", WHEN),
        (" 2026-11-23T10:00:00Z ", WHEN),
    ],
)
def test_times_in_every_documented_form(raw: object, expected: datetime) -> None:
    parsed = parse_time(raw)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [None, True, "", "yesterday", "2026-13-45", "12:00", [1], {"t": 1}, float("nan"),
     float("inf"), -5, 0, 10, "1e9", "١٧٩٥٤٢٨٠٠٠", "9" * 80, 10**30, "0x6a000000"],
)  # fmt: skip
def test_anything_else_is_an_unknown_time(raw: object) -> None:
    assert parse_time(raw) is None


def test_workspace_every_field_renamed_and_the_rest_kept() -> None:
    body = {
        "id": "ws-1",
        "name": "ci-temp",
        "description": "d",
        "owner": "alice",
        "auth_type": "PUBLIC",
        "enterprise_project_id": "0",
        "create_time": 1795428000000,
        "update_time": "2026-11-23T10:00:00Z",
        "status": "DELETE_FAILED",
        "status_info": "resources still bound",
        "grants": [{"user_id": "u"}],
        "new_field": {"nested": [1, 2]},
        "flag": True,
    }
    ws = converter.structure(body, Workspace)
    assert ws == Workspace(
        workspace_id="ws-1",
        name="ci-temp",
        description="d",
        owner="alice",
        auth_type="PUBLIC",
        enterprise_project_id="0",
        created_at=WHEN,
        updated_at=WHEN,
        status="DELETE_FAILED",
        status_info="resources still bound",
        grants=({"user_id": "u"},),
        extra={"new_field": {"nested": [1, 2]}, "flag": True},
    )
    plain = converter.unstructure(ws)
    assert plain["created_at"] == "2026-11-23T10:00:00+00:00"
    assert plain["extra"] == {"new_field": {"nested": [1, 2]}, "flag": True}
    assert pickle.loads(pickle.dumps(ws)) == ws


def test_session_takes_its_workspace_from_the_request() -> None:
    assert SHOW_SQL_SESSION.parse is not None
    session = SHOW_SQL_SESSION.parse(
        {"session_id": "s-1", "status": "RUNNING", "create_time": "1795428000", "endpoint_id": "e"},
        ("ws-9", "s-1"),
    )
    assert session == SqlSession(
        workspace_id="ws-9",
        session_id="s-1",
        status="RUNNING",
        created_at=WHEN,
        extra={"endpoint_id": "e"},
    )


def test_missing_optional_fields_are_none() -> None:
    ws = converter.structure({"id": "ws-1"}, Workspace)
    assert (ws.name, ws.status, ws.created_at, ws.grants, ws.extra) == (None, None, None, (), {})


def test_numbers_for_text_fields_become_text_and_objects_are_absent() -> None:
    ws = converter.structure({"id": 42, "name": {"x": 1}, "status": 3}, Workspace)
    assert (ws.workspace_id, ws.name, ws.status) == ("42", None, "3")


@pytest.mark.parametrize("body", [{}, {"id": None}, {"id": ["a"]}, [], "ws", None])
def test_a_workspace_without_a_usable_id_is_refused(body: Any) -> None:
    with pytest.raises((cattrs.BaseValidationError, TypeError, ValueError, KeyError)):
        converter.structure(body, Workspace)


def test_pages_and_their_totals() -> None:
    assert LIST_WORKSPACE.parse is not None
    assert LIST_SQL_SESSIONS.parse is not None
    page = LIST_WORKSPACE.parse({"total_count": 3, "count": 1, "workspaces": [{"id": "a"}]}, ())
    assert page.total == 3
    assert [w.workspace_id for w in page.items] == ["a"]
    empty = LIST_SQL_SESSIONS.parse({"total": 0}, ("ws",))
    assert empty.items == ()
    with pytest.raises(TypeError):
        LIST_SQL_SESSIONS.parse({"total": 5}, ("ws",))  # the list is missing
    with pytest.raises(TypeError):
        LIST_SQL_SESSIONS.parse({"sessions": "nope"}, ("ws",))


def test_own_converter_round_trips_a_confirmed_deletion() -> None:
    gone = asyncdeleter.DeletedWorkspace(workspace_id="w", request_id="r", confirmed=True)
    plain = converter.unstructure(gone)
    assert plain == {
        "workspace_id": "w",
        "request_id": "r",
        "already_gone": False,
        "confirmed": True,
    }
    assert converter.structure(plain, asyncdeleter.DeletedWorkspace) == gone
    # The global converter is never configured by us: it has no hook for our 403 bodies.
    assert cattrs.global_converter is not converter


def test_new_errors_survive_pickle() -> None:
    failed = asyncdeleter.DeletionFailedError(
        "m", workspace_id="w", status_info="bound", request_id="r", attempts=3
    )
    back = pickle.loads(pickle.dumps(failed))
    assert (back.workspace_id, back.status_info, back.request_id, back.attempts, str(back)) == (
        "w", "bound", "r", 3, str(failed),
    )  # fmt: skip
    timeout = asyncdeleter.WaitTimeoutError("m\x1b[31m", workspace_id="w", last_status="DELETING")
    back_timeout: asyncdeleter.WaitTimeoutError = pickle.loads(pickle.dumps(timeout))
    assert isinstance(back_timeout, TimeoutError)
    assert back_timeout.last_status == "DELETING"
    assert "\x1b" not in str(back_timeout)  # server text is data, escaped when shown


def test_an_integer_too_large_for_a_float_is_an_unknown_time() -> None:
    assert parse_time(10**400) is None
    assert parse_time("9" * 60) is None
