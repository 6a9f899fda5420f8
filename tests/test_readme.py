"""Every Python snippet in README.md runs, as written, against the emulator.

Each ```python block in the README is preceded by ``<!-- snippet: NAME -->``; ``SNIPPETS``
below says how NAME runs: as a script, or inside a coroutine that has a ``manager`` (and
``pairs``, ``ids``) at hand, what the emulator holds first, and what it must hold after.
``region="..."`` becomes the emulator's endpoints, and the snippet's process refuses to
resolve any host name but loopback, so no snippet can reach a real cloud. A snippet that
needs a package that is not installed (FastAPI, say) is skipped, saying which.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from asyncdeleter.testing import Emulator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PROJECT = "0f1e2d3c4b5a"

# Runs first in every snippet's process: no name but loopback may be resolved.
PRELUDE = """\
import asyncio
import os
import socket

_resolve = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name not in ("127.0.0.1", "localhost", "::1", "testserver"):
        raise OSError(f"a README snippet tried to resolve {name!r}")
    return _resolve(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only

import asyncdeleter

_EMULATOR = asyncdeleter.Endpoints(
    fabric=os.environ["EMULATOR_URL"], modelarts=os.environ["EMULATOR_URL"]
)
"""

MANAGER = """\
async def _snippet():
    async with asyncdeleter.SessionManager(
        endpoints=_EMULATOR, project_id=PROJECT, auth=asyncdeleter.TokenAuth("test-token")
    ) as manager:
        pairs = [("ws-1", "sess-1"), ("ws-1", "sess-2"), ("ws-2", "sess-3")]
        ids = ["w1", "w2"]
{body}


asyncio.run(_snippet())
"""

ASYNC = """\
async def _snippet():
{body}


asyncio.run(_snippet())
"""

WEB_EXERCISE_FASTAPI = """
import httpx


async def _exercise():
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.delete("/sessions/ws-1/sess-1")
            assert answer.status_code == 200, answer.text


asyncio.run(_exercise())
"""

WEB_EXERCISE_AIOHTTP = """
from aiohttp.test_utils import TestClient, TestServer


async def _exercise():
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        answer = await client.delete("/sessions/ws-1/sess-1")
        assert answer.status == 204, await answer.text()


asyncio.run(_exercise())
"""

# FastAPI's request span is an ancestor of ours, in one trace, and the request to the
# service carried that trace's context (checked on the emulator's side).
TRACING_EXERCISE_FASTAPI = (
    WEB_EXERCISE_FASTAPI
    + """
spans = {span.context.span_id: span for span in exporter.get_finished_spans()}
named = {span.name: span for span in spans.values()}
call = named["DataArtsFabric.CloseSqlSession"]
attempt = named["DELETE /v1/workspaces/{workspace_id}/sessions/{session_id}"]
assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
ancestors = []
span = call
while span.parent is not None:
    span = spans[span.parent.span_id]
    ancestors.append(span)
served = ancestors[-1]
assert served.name == "DELETE /sessions/{workspace_id}/{session_id}", [s.name for s in ancestors]
assert served.kind is trace.SpanKind.SERVER
assert served.context.trace_id == call.context.trace_id == attempt.context.trace_id
assert call.kind is trace.SpanKind.INTERNAL and attempt.kind is trace.SpanKind.CLIENT
assert call.attributes["asyncdeleter.target"] == "ws-1/sess-1"
assert call.attributes["asyncdeleter.api"] == "CloseSqlSession"
assert attempt.attributes["http.response.status_code"] == 200
assert attempt.attributes["url.template"] == "/v1/workspaces/{workspace_id}/sessions/{session_id}"
assert "error.type" not in attempt.attributes and "error.type" not in call.attributes
assert call.status.status_code is trace.StatusCode.UNSET
ids = f"{attempt.context.trace_id:032x}-{attempt.context.span_id:016x}"
print(f"traceparent 00-{ids}-{attempt.context.trace_flags:02x}")
"""
)

# The snippet's manager, with aiohttp's instrumentation, under an SDK provider set up
# first: each signed request (the emulator checks every signature) gets aiohttp's span
# too, under our attempt's.
TRACE_CONFIGS_SETUP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)
"""

TRACE_CONFIGS_EXERCISE = """

async def _exercise():
    async with manager:
        await manager.close_session("ws-1", "sess-1")


asyncio.run(_exercise())
_spans = list(_exporter.get_finished_spans())
_template = "DELETE /v1/workspaces/{workspace_id}/sessions/{session_id}"
_ours = [s for s in _spans if s.name == _template]
assert len(_ours) == 1, [s.name for s in _spans]
_under = _ours[0].context.span_id
_aiohttp = [s for s in _spans if s.parent is not None and s.parent.span_id == _under]
assert len(_aiohttp) == 1 and _aiohttp[0].kind is trace.SpanKind.CLIENT, [s.name for s in _spans]
assert len(_spans) == 3, [s.name for s in _spans]
"""

HOOKS_CHECK = """
assert attempts == collections.Counter({("CloseSqlSession", "ok"): 2}), attempts
assert seconds["CloseSqlSession"] > 0, seconds
"""

FRESH_TOKEN_EXERCISE = """

async def _exercise():
    async with manager:
        await manager.close_session("ws-1", "sess-1")


asyncio.run(_exercise())
"""


def iso_ago(days: float) -> str:
    """A Fabric-style creation time ``days`` ago."""
    when = datetime.now(UTC) - timedelta(days=days)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_ms_ago(days: float) -> int:
    """A ModelArts-style creation time ``days`` ago."""
    return int((datetime.now(UTC) - timedelta(days=days)).timestamp() * 1000)


def sent_the_trace(emulator: Emulator, stdout: str) -> None:
    """The one request to the emulator carried the ``traceparent`` the snippet printed."""
    printed = [line.split()[1] for line in stdout.splitlines() if line.startswith("traceparent ")]
    sent = [
        value
        for request in emulator.requests
        for name, value in request.headers.items()
        if name.lower() == "traceparent"
    ]
    assert len(emulator.requests) == 1, emulator.requests
    assert sent == printed, (sent, printed)


@attrs.frozen
class Snippet:
    """How one README snippet runs and what it must do."""

    wrap: str = "script"  # "script", "async" or "manager"
    setup: str = ""  # module-level code before the snippet
    after: str = ""  # module-level code after it
    needs: tuple[str, ...] = ()  # importable modules, else the snippet is skipped
    sessions: tuple[tuple[str, str], ...] = ()  # the emulator holds these first...
    workspaces: tuple[str, ...] = ()  # ...and these, in PROJECT
    gone: bool = True  # ...and none of them afterwards
    env: tuple[tuple[str, str], ...] = ()
    pytest: bool = False  # a test module: run it with pytest
    age_days: float = 0  # what the emulator holds was created this long ago
    access_keys: tuple[tuple[str, str], ...] = ()  # the emulator checks AK/SK signatures
    check: Callable[[Emulator, str], None] | None = None  # then, given the snippet's stdout


SESSIONS = (("ws-1", "sess-1"), ("ws-1", "sess-2"), ("ws-2", "sess-3"))
TRACE_AK, TRACE_SK = "AKREADME0123456789", "sk-readme-secret-0123456789abcdef"
SNIPPETS = {
    "use": Snippet(sessions=(("ws-1", "sess-9"),), workspaces=("ccd05d1a553b4e18",)),
    "credentials": Snippet(
        setup='token, ak, sk = "test-token", "AKREADME00001", "sk-readme-0001"\n',
        env=(
            ("HUAWEICLOUD_SDK_AK", "AKREADME00001"),
            ("HUAWEICLOUD_SDK_SK", "sk-readme-0001"),
            ("HUAWEICLOUD_SDK_REGION", "cn-north-4"),
        ),
        gone=False,
    ),
    "fresh-token": Snippet(
        setup=(
            "class _Iam:\n    async def token(self):\n        return 'test-token'\n\n\n"
            "my_iam_client = _Iam()\n"
        ),
        after=FRESH_TOKEN_EXERCISE,
        sessions=(("ws-1", "sess-1"),),
    ),
    "bulk": Snippet(wrap="manager", sessions=SESSIONS, workspaces=("w1", "w2")),
    "taskgroup": Snippet(wrap="manager", sessions=SESSIONS, workspaces=("w1", "w2")),
    "fastapi": Snippet(
        setup=f'PROJECT, TOKEN = "{PROJECT}", "test-token"\n',
        after=WEB_EXERCISE_FASTAPI,
        needs=("fastapi", "httpx"),
        sessions=(("ws-1", "sess-1"),),
    ),
    "aiohttp-web": Snippet(
        setup=f'PROJECT, TOKEN = "{PROJECT}", "test-token"\n',
        after=WEB_EXERCISE_AIOHTTP,
        sessions=(("ws-1", "sess-1"),),
    ),
    "proxy": Snippet(sessions=(("ws-1", "sess-9"),)),
    "tracing-fastapi": Snippet(
        setup=f'PROJECT, TOKEN = "{PROJECT}", "test-token"\n',
        after=TRACING_EXERCISE_FASTAPI,
        # FastAPI's built-in telemetry opens the request's span (an older FastAPI has none).
        needs=("fastapi.telemetry", "httpx", "opentelemetry.sdk"),
        sessions=(("ws-1", "sess-1"),),
        check=sent_the_trace,
    ),
    "trace-configs": Snippet(
        setup=TRACE_CONFIGS_SETUP,
        after=TRACE_CONFIGS_EXERCISE,
        needs=("opentelemetry.sdk", "opentelemetry.instrumentation.aiohttp_client"),
        sessions=(("ws-1", "sess-1"),),
        env=(("HUAWEICLOUD_SDK_AK", TRACE_AK), ("HUAWEICLOUD_SDK_SK", TRACE_SK)),
        access_keys=((TRACE_AK, TRACE_SK),),
    ),
    "hooks": Snippet(after=HOOKS_CHECK, sessions=(("ws-1", "sess-1"),)),
    "with-options": Snippet(wrap="manager", workspaces=("w1", "w2")),
    "read-side": Snippet(wrap="manager", sessions=SESSIONS[:2], workspaces=("w1", "w2")),
    "sweeps": Snippet(
        wrap="manager",
        sessions=SESSIONS[:2],
        workspaces=("ci-1", "ci-2"),
        age_days=2,  # old enough for the snippet's older_than
    ),
    "emulator": Snippet(wrap="async", gone=False),
    "pytest-fixture": Snippet(pytest=True, needs=("pytest_asyncio",), gone=False),
}


@attrs.frozen
class Block:
    name: str
    code: str
    line: int


def readme_blocks(text: str) -> Iterator[Block]:
    """Every ```python block, with the name its ``<!-- snippet: NAME -->`` gives it."""
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        fence = lines[number].strip()
        if fence.startswith("```") and fence[3:].strip() == "python":
            indent = len(lines[number]) - len(lines[number].lstrip())
            start = number
            number += 1
            body = []
            while lines[number].strip() != "```":
                body.append(lines[number][indent:])
                number += 1
            before = [line.strip() for line in lines[:start] if line.strip()]
            marker = re.fullmatch(r"<!-- snippet: ([\w-]+) -->", before[-1] if before else "")
            yield Block(marker.group(1) if marker else "", "\n".join(body) + "\n", start + 1)
        number += 1


BLOCKS = list(readme_blocks(README.read_text()))


def test_every_python_block_is_named_and_known() -> None:
    names = [block.name for block in BLOCKS]
    assert all(names), f"README line {BLOCKS[names.index('')].line}: no <!-- snippet: NAME -->"
    assert sorted(names) == sorted(SNIPPETS), "a README snippet without a harness entry"


def program(block: Block, snippet: Snippet) -> str:
    code = re.sub(r'region="[a-z0-9-]+"', "endpoints=_EMULATOR", block.code)
    if snippet.wrap == "manager":
        code = MANAGER.format(body=textwrap.indent(code, " " * 8))
    elif snippet.wrap == "async":
        code = ASYNC.format(body=textwrap.indent(code, " " * 4))
    return f"{PRELUDE}\nPROJECT = {PROJECT!r}\n{snippet.setup}\n{code}\n{snippet.after}"


def snippet_env(url: str, snippet: Snippet) -> dict[str, str]:
    drop = ("HUAWEICLOUD_", "ASYNCDELETER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env.update(snippet.env, EMULATOR_URL=url, PYTHONPATH=str(ROOT))
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name or f"line-{b.line}" for b in BLOCKS])
def test_the_snippet_runs(block: Block, tmp_path: Path) -> None:
    snippet = SNIPPETS[block.name]
    for module in snippet.needs:
        pytest.importorskip(module, reason=f"the {block.name} example needs {module}")
    emulator = Emulator(access_keys=dict(snippet.access_keys) if snippet.access_keys else None)
    with emulator.running_in_thread():
        for workspace, session in snippet.sessions:
            emulator.add_sessions(workspace, [session], create_time=iso_ago(snippet.age_days))
        emulator.add_workspaces(
            PROJECT, snippet.workspaces, create_time=epoch_ms_ago(snippet.age_days)
        )
        env = snippet_env(emulator.url, snippet)
        if snippet.pytest:
            (tmp_path / "test_snippet.py").write_text(block.code)
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       "--rootdir", str(tmp_path), str(tmp_path / "test_snippet.py")]  # fmt: skip
        else:
            command = [sys.executable, "-c", program(block, snippet)]
        done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"README line {block.line}:\n{done.stdout}\n{done.stderr}"
        if snippet.pytest:
            assert "1 passed" in done.stdout, done.stdout
        if snippet.gone:
            assert emulator.session_count == 0
            assert emulator.workspace_count == 0
        assert emulator.request_count or not (snippet.sessions or snippet.workspaces)
        if snippet.check is not None:
            snippet.check(emulator, done.stdout)


def test_the_memory_figures_are_those_of_the_results() -> None:
    """The README quotes benchmarks/results/ as measured, not an older run."""
    results = json.loads((ROOT / "benchmarks" / "results" / "results.json").read_text())
    measured = {
        row["n"]: (round(row["per_second"]), round(row["peak_rss_mib"], 1))
        for row in results["memory"]
    }
    text = README.read_text()
    section = text[text.index("### Memory, measured") :]
    section = section[: section.index("\n## ")]
    quoted = {
        int(n.replace(",", "")): (int(rate.replace(",", "")), float(rss))
        for n, rate, rss in re.findall(r"\| ([\d,]+) \| ([\d,]+) \| ([\d.]+) MiB \|", section)
    }
    assert quoted == measured


def tracing_cost_rows(text: str) -> list[str]:
    """The table between ``<!-- tracing-cost -->`` and ``<!-- /tracing-cost -->``.

    A multiplication sign reads as an x: the README may use either.
    """
    start = text.index("<!-- tracing-cost -->")
    end = text.index("<!-- /tracing-cost -->", start)
    lines = (line.strip() for line in text[start:end].splitlines()[1:])
    return [line.replace("\u00d7", "x") for line in lines if line.startswith("|")]


def test_the_tracing_figures_are_those_of_the_results() -> None:
    """The README's CPU cost of tracing is the table of benchmarks/results/, or not yet there.

    Until a run of ``benchmarks/run.py`` has measured it, the README has the table's header
    and no row; after one, the rows are copied from results.md's "Tracing" table.
    """
    readme = tracing_cost_rows(README.read_text())
    assert readme[:2] == [
        "| contender | CPU µs/call | vs tracing=False |",
        "|---|---:|---:|",
    ]
    results = (ROOT / "benchmarks" / "results" / "results.md").read_text()
    measured = tracing_cost_rows(results) if "<!-- tracing-cost -->" in results else readme[:2]
    assert readme == measured, "copy the rows of results.md's tracing-cost table to the README"
