"""Secrets stay secret, and server text is data: what a raised error lets anyone reach.

Every failure mode a server can produce is tried with each kind of credential; the whole
object graph reachable from the error (causes, contexts, args, attributes) is rendered
the ways error reporters render it, and searched for the secrets.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import logging
import pickle
import ssl
import traceback
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import asyncdeleter
from asyncdeleter import AkSkAuth, Endpoints, RetryPolicy, SessionManager, Timeouts, TokenAuth
from tests.raw_server import RawRequest, RawServer, answer, drop, error_body

TOKEN = "tok-SECRET-0123456789"
SK = "SK-SECRET-abcdefghijklmnop"
SECURITY_TOKEN = "STS-SECRET-zyxwvutsrqponm"
SECRETS = (TOKEN, SK, SECURITY_TOKEN)
AUTHS = {
    "token": TokenAuth(TOKEN),
    "aksk": AkSkAuth("AK-PUBLIC", SK, SECURITY_TOKEN),
}


def reachable_text(root: BaseException) -> str:
    """Everything an error reporter could render from ``root``: a deep walk of the graph."""
    seen: set[int] = set()
    parts: list[str] = []

    def walk(value: object, depth: int) -> None:
        if id(value) in seen or depth > 6:
            return
        seen.add(id(value))
        try:
            parts.append(repr(value))
            parts.append(str(value))
        except Exception as exc:  # a repr that fails is itself a finding
            parts.append(f"<repr failed: {exc!r}>")
        if isinstance(value, BaseException):
            walk(value.__cause__, depth + 1)
            walk(value.__context__, depth + 1)
            for arg in value.args:
                walk(arg, depth + 1)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key, depth + 1)
                walk(item, depth + 1)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item, depth + 1)
        for item in getattr(value, "__dict__", {}).values():
            walk(item, depth + 1)
        for name in getattr(type(value), "__slots__", ()):
            walk(getattr(value, name, None), depth + 1)

    walk(root, 0)
    parts.extend(traceback.format_exception(root))
    return "\n".join(parts)


async def garbage_status_line(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 ABC Nonsense\r\n\r\n")


async def truncated(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(500).replace(b"Content-Length: 0", b"Content-Length: 99") + b"{")
    writer.close()


async def stalled(_: RawRequest, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def status(code: int) -> Any:
    async def script(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(code, error_body("APIG.1002", "nope")))

    return script


SCRIPTS = {
    "drop": drop,
    "garbage-status-line": garbage_status_line,
    "truncated": truncated,
    "stalled": stalled,
    "401": status(401),
    "403": status(403),
    "500": status(500),
    "429": status(429),
}


@pytest.mark.parametrize("auth", AUTHS.values(), ids=AUTHS.keys())
@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
@pytest.mark.parametrize("raise_for_status", [False, True], ids=["plain", "raise-for-status"])
async def test_no_secret_is_reachable_from_a_raised_error(
    auth: Any, script: Any, raise_for_status: bool
) -> None:
    async with RawServer(script) as server:
        url = server.url
        async with aiohttp.ClientSession(raise_for_status=raise_for_status) as session:
            manager = SessionManager(
                endpoints=Endpoints(fabric=url, modelarts=url),
                project_id="p1",
                auth=auth,
                session=session,
                retry=RetryPolicy(wait=False, max_tries=2, max_time=2),
                timeouts=Timeouts(read=0.3),
            )
            async with manager:
                with pytest.raises(asyncdeleter.APIError) as single:
                    await manager.delete_workspace("w1")
                report = await manager.delete_workspaces(["w2"])
    errors = [single.value, *(o.error for o in report.outcomes if o.error is not None)]
    assert len(errors) == 2
    for error in errors:
        text = reachable_text(error)
        for secret in SECRETS:
            assert secret not in text
        assert pickle.loads(pickle.dumps(error)).args == error.args


def echoing(shape: str) -> Any:
    """A server whose malformed answer quotes the credentials it was sent (aiohttp's parser
    then quotes those bytes in its error)."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        echoed = " ".join(
            value
            for name, value in request.headers.items()
            if name.lower() in ("x-auth-token", "x-security-token", "authorization")
        )
        secret = echoed.encode()
        if shape == "status-line":
            writer.write(b"HTTP/1.1 2OO " + secret + b"\r\n\r\n")
        elif shape == "header-without-colon":
            writer.write(b"HTTP/1.1 200 OK\r\n" + secret + b"\r\nContent-Length: 0\r\n\r\n")
        elif shape == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + secret + b"\r\n\r\n")
        else:  # a chunk size
            writer.write(b"HTTP/1.1 500 E\r\nTransfer-Encoding: chunked\r\n\r\n" + secret)
            writer.write(b"\r\n")
        await writer.drain()
        writer.close()

    return script


@pytest.mark.parametrize("auth", AUTHS.values(), ids=AUTHS.keys())
@pytest.mark.parametrize(
    "shape", ["status-line", "header-without-colon", "content-length", "chunk-size"]
)
async def test_a_credential_quoted_by_the_http_parser_never_reaches_an_error(
    auth: Any, shape: str
) -> None:
    records: list[asyncdeleter.RequestRecord] = []
    async with RawServer(echoing(shape)) as server:
        url = server.url
        async with SessionManager(
            endpoints=Endpoints(fabric=url, modelarts=url),
            project_id="p1",
            auth=auth,
            retry=RetryPolicy(wait=False, max_tries=2),
            on_response=records.append,
        ) as manager:
            with pytest.raises(asyncdeleter.APIError) as raised:
                await manager.delete_workspace("w1")
    assert server.requests  # it was sent, and the answer was refused by the parser
    text = reachable_text(raised.value) + repr(records)
    for secret in SECRETS:
        assert secret not in text
    # What the parser quoted is elided (or redacted): no part of a credential is left.
    assert "[redacted]" in text or "b'…'" in text or shape == "chunk-size"


async def test_a_credential_from_before_a_refresh_stays_secret() -> None:
    """A server that echoes the token it was first sent, after the provider gave a new one."""
    old, new = "OLD-TOKEN-aaaaaaaa1111", "NEW-TOKEN-bbbbbbbb2222"
    given = iter([old, new])

    async def provider() -> TokenAuth:
        return TokenAuth(next(given))

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.headers.get("x-auth-token") == old:
            writer.write(answer(401, error_body("APIG.1002", "Incorrect token")))
        else:
            body = error_body("ModelArts.0001", f"you sent {old} before")
            writer.write(answer(500, body, {"X-Request-Id": f"req-{old}"}))

    records: list[asyncdeleter.RequestRecord] = []
    async with RawServer(script) as server:
        url = server.url
        async with SessionManager(
            endpoints=Endpoints(fabric=url, modelarts=url),
            project_id="p1",
            auth=provider,
            retry=RetryPolicy(wait=False, max_tries=2),
            on_response=records.append,
        ) as manager:
            with pytest.raises(asyncdeleter.ServerError) as raised:
                await manager.delete_workspace("w1")
    assert [r.headers.get("x-auth-token") for r in server.requests][:2] == [old, new]
    text = reachable_text(raised.value) + repr(records)
    assert old not in text
    assert raised.value.request_id == "req-[redacted]"


#: A token as IAM gives them: long, with the "/" and "+" that echoes escape.
SLASHED = "MIIxTOKEN/abc+def/ghi=" + "Q" * 200


def _manager_for(url: str, **options: Any) -> SessionManager:
    return SessionManager(
        endpoints=Endpoints(fabric=url, modelarts=url),
        project_id="p1",
        auth=TokenAuth(SLASHED),
        retry=RetryPolicy(wait=False, max_tries=1),
        **options,
    )


def _no_part_of(secret: str, text: str) -> None:
    """Not the secret, nor any 16 characters of it, in any form an echo gives it."""
    for form in (secret, secret.replace("/", "\\/"), json.dumps(secret)[1:-1]):
        for start in range(0, len(form) - 16, 8):
            assert form[start : start + 16] not in text, form[start : start + 16]


async def test_a_read_whose_answer_is_about_the_token_keeps_it_out_of_its_error() -> None:
    """A 200 to ShowWorkspace whose id is the echoed token: unreadable, and quoted."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"id": SLASHED, "name": SLASHED, "status": "NORMAL"}).encode()
        writer.write(answer(200, body))

    records: list[asyncdeleter.RequestRecord] = []
    async with (
        RawServer(script) as server,
        _manager_for(server.url, on_response=records.append) as manager,
    ):
        with pytest.raises(asyncdeleter.MalformedResponseError) as raised:
            await manager.show_workspace("w1")
    assert "[redacted]" in str(raised.value)
    _no_part_of(SLASHED, reachable_text(raised.value) + repr(records))


@pytest.mark.parametrize("shape", ["json-slash-escaped", "plain-text"])
async def test_an_echo_in_another_form_is_still_cut_out(shape: str) -> None:
    """Echoed as a JSON string with escaped slashes (PHP's habit), in a body without the
    service's fields: the raw body is what the message quotes."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if shape == "plain-text":
            body = f"you sent {SLASHED} and that will not do".encode()
        else:
            body = json.dumps({"echo": SLASHED}).replace("/", "\\/").encode()
        writer.write(answer(503, body))

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        with pytest.raises(asyncdeleter.ServerError) as raised:
            await manager.delete_workspace("w1")
    assert "[redacted]" in str(raised.value)
    _no_part_of(SLASHED, reachable_text(raised.value))


@pytest.mark.parametrize("padding", [0, 60, 95])
@pytest.mark.parametrize("line", ["header", "status"])
async def test_a_credential_in_an_overlong_line_leaves_no_part_behind(
    line: str, padding: int
) -> None:
    """aiohttp quotes about 100 bytes of a line past its limit, cut with "...": a token that
    begins there is cut too, and could not be recognised; the quote goes whole."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        echoed = "a" * padding + SLASHED + "b" * 9000
        head = (
            f"HTTP/1.1 400 OK\r\nX-Echo: {echoed}" if line == "header" else f"HTTP/1.1 400 {echoed}"
        )
        writer.write(f"{head}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        with pytest.raises(asyncdeleter.APIConnectionError) as raised:
            await manager.delete_workspace("w1")
    _no_part_of(SLASHED, reachable_text(raised.value))


async def test_a_connection_refused_carries_no_secret_either() -> None:
    async with RawServer(drop) as server:
        url = server.url
    # The server is gone: connections are refused.
    async with SessionManager(
        endpoints=Endpoints(fabric=url, modelarts=url),
        project_id="p1",
        auth=AkSkAuth("AK-PUBLIC", SK, SECURITY_TOKEN),
        retry=RetryPolicy(wait=False, max_tries=2),
    ) as manager:
        with pytest.raises(asyncdeleter.APIConnectionError) as info:
            await manager.delete_workspace("w1")
    text = reachable_text(info.value)
    assert all(secret not in text for secret in SECRETS)
    assert "Cannot connect" in str(info.value.__cause__)


# -- server text is data -----------------------------------------------------------------

HOSTILE = "\x1b[2J\x1b[31mFAKE\r\nINFO asyncdeleter: forged line\u202egnp.exe\x07"


def hostile_answer(code: int) -> Any:
    async def script(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        # A header value cannot hold CR/LF on the wire, but ESC, BEL and bidi can.
        request_id = "req-\x1b[31mred\x07\u202e"
        writer.write(answer(code, error_body("E.1", HOSTILE), {"X-Request-Id": request_id}))

    return script


@pytest.mark.parametrize("code", [400, 403, 404, 500])
async def test_server_text_is_escaped_in_messages_and_logs_and_kept_raw_on_attributes(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncdeleter")
    async with RawServer(hostile_answer(code), parents=True) as server:
        url = server.url
        async with SessionManager(
            endpoints=Endpoints(fabric=url, modelarts=url),
            project_id="p1",
            auth=TokenAuth(TOKEN),
            retry=RetryPolicy(wait=False, max_tries=2),
        ) as manager:
            with pytest.raises(asyncdeleter.APIStatusError) as info:
                await manager.close_session("ws-1", "s-1")
    error = info.value
    assert error.error_msg == HOSTILE  # the raw value stays on the attribute
    assert error.request_id is not None
    assert "\x1b" in error.request_id
    shown = str(error)
    assert shown.isprintable(), shown
    assert "forged line" in shown  # escaped, not dropped
    for record in caplog.records:
        assert record.getMessage().isprintable(), record.getMessage()


async def test_an_html_error_page_with_control_characters_is_escaped() -> None:
    async def html(_: RawRequest, writer: asyncio.StreamWriter) -> None:
        page = b"<html><body>\x1b]0;owned\x07Bad Gateway\r\nSet-Cookie: x</body></html>"
        writer.write(answer(502, page, {"Content-Type": "text/html"}))

    async with RawServer(html) as server:
        url = server.url
        async with SessionManager(
            endpoints=Endpoints(fabric=url, modelarts=url),
            retry=RetryPolicy(wait=False, max_tries=1),
        ) as manager:
            with pytest.raises(asyncdeleter.ServerError) as info:
                await manager.close_session("ws-1", "s-1")
    assert str(info.value).isprintable()
    assert "Bad Gateway" in str(info.value)
    assert "\x1b" in info.value.raw_body


def _escaped_forms() -> dict[str, str]:
    """The echo's forms the last review found passing: each a different way to escape."""
    quoted = urllib.parse.quote(SLASHED)  # Python's default leaves "/" alone
    return {
        "quote-default": quoted,
        "percent-lower-case": urllib.parse.quote(SLASHED, safe="")
        .lower()
        .replace("miixtoken", "MIIxTOKEN")
        .replace("q" * 200, "Q" * 200),
        "html-hex-entities": SLASHED.replace("+", "&#x2b;").replace("/", "&#X2F;"),
        "html-named-entities": SLASHED.replace("+", "&plus;").replace("/", "&sol;"),
        "json-unicode": SLASHED.replace("+", "\\u002B").replace("/", "\\u002f"),
        "mixed": SLASHED.replace("+", "%2b", 1).replace("/", "&#47;", 1),
    }


@pytest.mark.parametrize("form", sorted(_escaped_forms()))
async def test_an_escaped_echo_is_recognised_on_its_decoded_form(form: str) -> None:
    """Compared on decoded forms, not on a list of encodings: every escape of every
    character, in any case, mixed, is the credential."""
    echoed = _escaped_forms()[form]
    assert SLASHED not in echoed  # the raw form is not there to be found

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = json.dumps({"error_code": "X.1", "error_msg": f"token {echoed} refused"})
        writer.write(answer(503, body.replace("\\\\u", "\\u").encode()))

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        with pytest.raises(asyncdeleter.ServerError) as raised:
            await manager.delete_workspace("w1")
    text = reachable_text(raised.value)
    assert "[redacted]" in text
    _no_part_of(SLASHED, text)
    decoded = html.unescape(urllib.parse.unquote(text))
    _no_part_of(SLASHED, decoded.encode().decode("unicode_escape", "ignore"))


def _workspace_answer(status_info: str, status: str = "DELETE_FAILED") -> bytes:
    return json.dumps(
        {
            "id": "w1",
            "name": "ws-name",
            "status": status,
            "status_info": status_info,
            "owner": "owner",
            "create_time": 1700000000000,
            "update_time": 1700000000000,
        }
    ).encode()


async def test_an_echo_in_a_parsed_2xx_answer_is_cut_out_of_the_result() -> None:
    """A ShowWorkspace that puts the caller's token in ``status_info``: the result (its
    repr, its fields) and the DeletionFailedError built from it never carry it."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        if request.method == "DELETE":
            writer.write(answer(200, b"{}"))
        else:
            writer.write(answer(200, _workspace_answer(f"refused for {SLASHED}")))

    records: list[asyncdeleter.RequestRecord] = []
    async with (
        RawServer(script) as server,
        _manager_for(server.url, on_response=records.append) as manager,
    ):
        shown = await manager.show_workspace("w1")
        with pytest.raises(asyncdeleter.DeletionFailedError) as raised:
            await manager.delete_workspace("w1", wait=True, wait_timeout=5)
    assert shown.status_info == "refused for [redacted]"
    _no_part_of(SLASHED, repr(shown) + str(shown))
    assert "[redacted]" in str(raised.value)
    _no_part_of(SLASHED, reachable_text(raised.value) + repr(records))


async def test_an_echo_in_a_listing_page_is_cut_out_of_every_item() -> None:
    """Listed workspaces are results too: none of them shows the credential."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        item = json.loads(_workspace_answer(urllib.parse.quote(SLASHED), status="NORMAL"))
        writer.write(answer(200, json.dumps({"total_count": 1, "workspaces": [item]}).encode()))

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        listed = [workspace async for workspace in manager.list_workspaces()]
    assert [workspace.status_info for workspace in listed] == ["[redacted]"]
    _no_part_of(SLASHED, repr(listed))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
async def test_an_echo_in_a_body_of_another_encoding_is_cut_out(encoding: str) -> None:
    """A JSON parser detects UTF-16 and UTF-32 by itself: the body is checked in the
    encoding it will be parsed in, not as UTF-8 (where the echo hid between NULs)."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        body = _workspace_answer(f"refused for {SLASHED}").decode().encode(encoding)
        writer.write(answer(200 if request.method == "GET" else 400, body))

    records: list[asyncdeleter.RequestRecord] = []
    async with (
        RawServer(script) as server,
        _manager_for(server.url, on_response=records.append) as manager,
    ):
        shown = await manager.show_workspace("w1")
        with pytest.raises(asyncdeleter.BadRequestError) as raised:
            await manager.delete_workspace("w1")
    assert shown.status_info == "refused for [redacted]"
    _no_part_of(SLASHED, repr(shown) + reachable_text(raised.value) + repr(records))


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(
            lambda s: f'{{"error_msg": "token {s[:32]}...", "error_code": "X.1"}}', id="cut"
        ),
        pytest.param(lambda s: f"X-Auth-Token: {s[:30]}\r\n {s[30:]}\nVia: p", id="folded"),
        pytest.param(lambda s: f'{{"error_msg": "token ...{s[40:]}"}}', id="its-end"),
    ],
)
async def test_an_echo_the_server_cut_or_folded_leaves_no_part_behind(
    echo: Callable[[str], str],
) -> None:
    """Any part of a credential 16 characters long is an echo, wherever it is: a token
    cut at a field limit, or folded over two lines, is cut out as far as it goes."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(400, echo(SLASHED).encode()))

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        with pytest.raises(asyncdeleter.BadRequestError) as raised:
            await manager.delete_workspace("w1")
    assert "[redacted]" in str(raised.value)
    _no_part_of(SLASHED, reachable_text(raised.value))


@pytest.mark.parametrize(
    "escaped",
    [
        pytest.param(SLASHED.replace("+", "&#000000000043;"), id="entity-with-many-zeros"),
        pytest.param(SLASHED.replace("/", "&amp;amp;amp;amp;amp;#47;"), id="nested-5-deep"),
        pytest.param(
            functools.reduce(lambda t, _: urllib.parse.quote(t, safe=""), range(6), SLASHED),
            id="percent-6-deep",
        ),
        pytest.param(SLASHED + "&#" + "0" * 5000 + "43;", id="thousands-of-digits"),
    ],
)
async def test_an_echo_escaped_any_number_of_times_is_cut_out(escaped: str) -> None:
    """However deep the escapes go, what is left decodes to no part of the credential,
    and a text escaped past any sense is withheld, not parsed into a crash."""

    async def script(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(answer(400, json.dumps({"error_msg": escaped}).encode()))

    async with RawServer(script) as server, _manager_for(server.url) as manager:
        with pytest.raises(asyncdeleter.BadRequestError) as raised:
            await manager.delete_workspace("w1")
    text = reachable_text(raised.value)
    assert "redacted" in text
    for _ in range(8):
        text = html.unescape(urllib.parse.unquote(text.replace("&#" + "0" * 5000, "&#")))
    _no_part_of(SLASHED, text)


# -- what is refused when built ----------------------------------------------------------


@pytest.mark.parametrize("bad", ["\x1b[31m", "\x7f", "\x0b", "\x00", "\r\n", "\t", "é"])
def test_credentials_with_control_or_odd_characters_are_refused_when_built(bad: str) -> None:
    secret = f"SECRET{bad}tail"
    builders: list[Callable[[], object]] = [
        lambda: TokenAuth(secret),
        lambda: AkSkAuth(secret, "secret-key-0123"),
        lambda: AkSkAuth("AKACCESSKEY0123", secret),
        lambda: AkSkAuth("AKACCESSKEY0123", "secret-key-0123", secret),
    ]
    for build in builders:
        with pytest.raises(asyncdeleter.ConfigurationError) as info:
            build()
        assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: TokenAuth("t"), "token"),
        (lambda: AkSkAuth("AKACCESSKEY0123", "sk"), "sk"),
        (lambda: AkSkAuth("ak", "secret-key-0123"), "ak"),
        (lambda: AkSkAuth("AKACCESSKEY0123", "secret-key-0123", "sts"), "security_token"),
    ],
)
def test_a_credential_too_short_to_redact_is_refused_naming_it(
    build: Callable[[], object], named: str
) -> None:
    """No real token or key is under 8 characters, and one that short could not be cut out
    of server text without mangling it: refused when built, naming the argument."""
    with pytest.raises(asyncdeleter.ConfigurationError) as info:
        build()
    assert info.value.setting == named
    assert str(info.value).startswith(f"{named} is ")


def test_a_credential_read_from_the_environment_is_refused_naming_the_variable() -> None:
    env = {"HUAWEICLOUD_SDK_AK": "AKACCESSKEY0123", "HUAWEICLOUD_SDK_SK": "short"}
    with pytest.raises(asyncdeleter.ConfigurationError, match="HUAWEICLOUD_SDK_SK") as info:
        AkSkAuth.from_env(env)
    assert info.value.setting == "sk"
    assert "short" not in str(info.value)
    bad = {**env, "HUAWEICLOUD_SDK_SK": "secret\x1bkey-0123"}
    with pytest.raises(asyncdeleter.ConfigurationError, match="HUAWEICLOUD_SDK_SK"):
        SessionManager.from_env(environ={**bad, "HUAWEICLOUD_SDK_REGION": "cn-north-4"})


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://user:hunter2pass@fabric.example.localhost",
        "https://hunter2pass@fabric.example.localhost",
        "http://u:hunter2pass@127.0.0.1:8080/prefix",
        "https://:hunter2pass@host.localhost",
    ],
)
def test_an_endpoint_with_credentials_is_refused_without_echoing_them(endpoint: str) -> None:
    with pytest.raises(asyncdeleter.ConfigurationError) as info:
        Endpoints(fabric=endpoint, modelarts="https://modelarts.example.localhost")
    assert "hunter2pass" not in str(info.value)
    assert "credentials" in str(info.value)


def unverifying_contexts() -> dict[str, ssl.SSLContext]:
    no_verify = ssl.create_default_context()
    no_verify.check_hostname = False
    no_verify.verify_mode = ssl.CERT_NONE
    no_hostname = ssl.create_default_context()
    no_hostname.check_hostname = False
    optional = ssl.create_default_context()
    optional.check_hostname = False
    optional.verify_mode = ssl.CERT_OPTIONAL
    return {"cert-none": no_verify, "no-hostname": no_hostname, "optional": optional}


@pytest.mark.parametrize("name", unverifying_contexts())
def test_an_ssl_context_that_does_not_verify_is_refused(name: str) -> None:
    context = unverifying_contexts()[name]
    with pytest.raises(asyncdeleter.ConfigurationError, match="verify"):
        SessionManager(region="cn-north-4", ssl=context)


@pytest.mark.parametrize("connector_ssl", [False, "context"])
async def test_a_caller_session_that_does_not_verify_is_refused(connector_ssl: Any) -> None:
    chosen = unverifying_contexts()["cert-none"] if connector_ssl == "context" else False
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=chosen)) as session:
        with pytest.raises(asyncdeleter.ConfigurationError, match="verify"):
            SessionManager(region="cn-north-4", session=session)


@pytest.mark.parametrize("password", ["S3cr3t/x", "S3cr3t?x", "S3cr3t#x", "S3cr3t"])
def test_a_refused_endpoint_keeps_its_password_out_of_the_whole_chain(password: str) -> None:
    with pytest.raises(asyncdeleter.ConfigurationError) as info:
        Endpoints(fabric=f"https://user:{password}@host.localhost", modelarts="https://m.localhost")
    assert "S3cr3t" not in reachable_text(info.value)


def test_an_invalid_item_of_any_type_pickles() -> None:
    """An invalid bulk item keeps what the input held; pickling turns odd values to text."""
    import threading

    error = asyncdeleter.InvalidIdentifierError("target", threading.Lock(), "not a pair")
    copy = pickle.loads(pickle.dumps(error))
    assert "lock" in repr(copy.value).lower()
    assert copy.reason == "not a pair"
