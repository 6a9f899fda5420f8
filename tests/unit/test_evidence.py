"""What a 404 says about the resource: the table in ``_evidence``, case by case."""

from __future__ import annotations

import pytest

from asyncdeleter._evidence import (
    FABRIC_NOT_FOUND_CODES,
    GATEWAY_CODES,
    MODELARTS_GONE_CODES,
    NotFound,
    gateway_meaning,
    is_gateway_code,
    judge_not_found,
)
from asyncdeleter._models import parse_error_body

GONE = MODELARTS_GONE_CODES


@pytest.mark.parametrize(
    ("body", "complete", "verdict"),
    [
        (b'{"error_code": "ModelArts.0104", "error_msg": "workspace x not exist"}', True, NotFound.GONE_CODE),
        (b'{"error_code": "modelarts.0104 ", "error_msg": "case and spaces"}', True, NotFound.GONE_CODE),
        (b'{"error_code": "ModelArts.0103", "error_msg": "project"}', True, NotFound.UNKNOWN_CODE),
        (b'{"error_code": "common.01000001", "error_msg": "x"}', True, NotFound.UNKNOWN_CODE),
        (b'{"error_code": "APIGW.0101", "error_msg": "no such API"}', True, NotFound.NOT_SERVED),
        (b'{"error_code": "APIG.0101", "error_msg": "no such API"}', True, NotFound.NOT_SERVED),
        (b'{"error_code": " apig.0102"}', True, NotFound.NOT_SERVED),
        (b'{"error": {"code": "404"}, "error_code": 404, "error_msg": "x"}', True, NotFound.NOT_SERVED),
        (b'{"error": {"code": "ModelArts.0104", "message": "nested"}}', True, NotFound.NOT_SERVED),
        (b"<html><h1>404 Not Found</h1></html>", True, NotFound.NOT_SERVED),
        (b"", True, NotFound.NOT_SERVED),
        (b'{"error_code": ""}', True, NotFound.NOT_SERVED),
        (b'{"error_msg": "no code"}', True, NotFound.NOT_SERVED),
        # Cut short: nothing can be read, and nothing is concluded from it either way.
        (b'{"error_code": "ModelArts.01', False, NotFound.CUT_SHORT),
        (b'{"error_code": "ModelArts.0104", "error_msg": "x"}', False, NotFound.CUT_SHORT),
        (b"<html><h1>404 Not Fo", False, NotFound.CUT_SHORT),
    ],
)  # fmt: skip
def test_what_a_404_says(body: bytes, complete: bool, verdict: NotFound) -> None:
    assert judge_not_found(GONE, parse_error_body(body), complete=complete) is verdict


def test_fabric_s_code_is_a_gone_code_that_still_needs_its_workspace() -> None:
    body = parse_error_body(b'{"error_code": "common.01000001", "error_msg": "session"}')
    assert judge_not_found(FABRIC_NOT_FOUND_CODES, body, complete=True) is NotFound.GONE_CODE


@pytest.mark.parametrize(
    ("code", "gateway"),
    [("APIG.0101", True), ("apigw.0308", True), (" APIGW.0101", True), ("APIGX.1", False),
     ("ModelArts.0104", False), (None, False), ("", False), ("APIG", False)],
)  # fmt: skip
def test_gateway_codes_by_prefix(code: str | None, gateway: bool) -> None:
    assert is_gateway_code(code) is gateway


def test_every_listed_gateway_code_is_the_gateway_s_and_cited() -> None:
    for code, row in GATEWAY_CODES.items():
        assert is_gateway_code(code)
        assert 400 <= row.status <= 599
        assert row.source
    assert gateway_meaning("apigw.0101") == GATEWAY_CODES["APIGW.0101"].meaning
    assert gateway_meaning("ModelArts.0104") is None
