"""OpenTelemetry is optional: never imported without ``tracing``, never needed to work.

Each check runs in a fresh interpreter (``sys.modules`` of this one has seen everything),
against an emulator started inside that interpreter on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

#: Loaded by every script: a blocker of ``opentelemetry`` (when asked), then the calls.
PRELUDE = textwrap.dedent(
    """
    import asyncio, json, sys

    BLOCK = {block!r}  # None, or the exception class name to raise for opentelemetry*
    asked = []


    class NoOpenTelemetry:
        # What an interpreter without the package says when asked for it.
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                asked.append(name)
                raise {{"ImportError": ImportError, "ModuleNotFoundError": ModuleNotFoundError}}[
                    BLOCK
                ](f"No module named {{name!r}}", name=name)
            return None


    if BLOCK is not None:
        sys.meta_path.insert(0, NoOpenTelemetry())


    def otel_loaded():
        return sorted(
            m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")
        )


    report = {{}}
    import asyncdeleter

    report["after_import"] = otel_loaded()
    asyncdeleter.BulkRun, asyncdeleter.OutcomeKind  # the lazily loaded names
    report["after_lazy_names"] = otel_loaded()
    from asyncdeleter.testing import Emulator, Fault

    report["after_emulator_import"] = otel_loaded()
    """
)

#: Every kind of call, against a fresh emulator; fills ``report[label]``.
CALLS = textwrap.dedent(
    """
    async def calls(label, **options):
        async with Emulator(host="127.0.0.1", token="token-0123456789") as emu:
            emu.add_sessions("ws-1", ["s1", "s2", "s3", "s4"])
            emu.add_workspaces("proj-1", ["w1", "w2"])
            emu.add_fault(Fault(status=503, times=1))  # one retry
            async with asyncdeleter.SessionManager(
                endpoints=emu.endpoints(),
                project_id="proj-1",
                auth=asyncdeleter.TokenAuth("token-0123456789"),
                retry=asyncdeleter.RetryPolicy(
                    wait=False, poll_initial_wait=0.01, poll_max_wait=0.02
                ),
                **options,
            ) as manager:
                await manager.close_session("ws-1", "s1")
                await manager.delete_workspace("w1", wait=True)
                await manager.show_session("ws-1", "s2")
                listed = [s.session_id async for s in manager.list_sessions("ws-1")]
                report_ = await manager.close_sessions([("ws-1", "s2"), ("ws-1", "s3")])
                view = manager.with_options(timeouts=asyncdeleter.Timeouts(read=5))
                await view.delete_workspace("w2")
                try:
                    await manager.close_session("ws-1", "missing")
                    missing = "no error"
                except asyncdeleter.NotFoundError:
                    missing = "NotFoundError"
            report[label] = {
                "otel": otel_loaded(),
                "sessions_left": sorted(emu.sessions("ws-1")),
                "workspaces_left": sorted(emu.workspaces("proj-1")),
                "listed": sorted(listed),
                "bulk_succeeded": report_.succeeded,
                "missing": missing,
                "statuses": [r.status for r in emu.requests],
                "traceparent_sent": any("traceparent" in r.headers for r in emu.requests),
            }
    """
)

#: After every call of a run, what each one should have left behind.
EXPECTED_RUN = {
    "otel": [],
    "sessions_left": ["s4"],
    "workspaces_left": [],
    "listed": ["s2", "s3", "s4"],
    "bulk_succeeded": 2,
    "missing": "NotFoundError",
    "traceparent_sent": False,
}


def run(script: str, *, block: str | None = None) -> dict[str, Any]:
    """Run ``script`` after the prelude and ``CALLS`` in a fresh interpreter; its report."""
    code = PRELUDE.format(block=block) + CALLS + textwrap.dedent(script)
    code += "\nprint(json.dumps(report))\n"
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_import_asyncdeleter_alone_never_imports_opentelemetry() -> None:
    report = run("")
    assert report["after_import"] == []
    assert report["after_lazy_names"] == []
    assert report["after_emulator_import"] == []  # so the other checks here measure us


def test_tracing_false_imports_nothing_of_opentelemetry_and_tracing_true_does() -> None:
    report = run(
        """
        def hook(record):
            pass

        asyncio.run(calls("off", tracing=False))
        asyncio.run(calls("off_with_hooks", tracing=False, on_request=hook, on_response=hook))
        # The control: the same calls with tracing on do import it (it is installed here),
        # so the check above could have seen an import.
        asyncio.run(calls("on"))
        """
    )
    for label in ("off", "off_with_hooks"):
        run_report = report[label]
        run_report.pop("statuses")
        assert run_report == EXPECTED_RUN, label
    assert "opentelemetry" in report["on"]["otel"]
    assert "opentelemetry.trace" in report["on"]["otel"]


def check_without_opentelemetry(block: str) -> None:
    report = run(
        """
        records = []
        asyncio.run(calls("default", on_response=records.append))
        # A manager built with no call made yet, then used.
        manager = asyncdeleter.SessionManager(endpoints=asyncdeleter.Endpoints(
            fabric="http://127.0.0.1:9", modelarts="http://127.0.0.1:9"))
        report["built"] = repr(manager)
        report["records"] = [(r.operation, r.status, r.error_type) for r in records]
        report["asked"] = sorted(set(asked))
        """,
        block=block,
    )
    assert report["after_import"] == []
    default = report["default"]
    statuses = default.pop("statuses")
    assert default == EXPECTED_RUN
    assert statuses[0] == 503  # the retried failure
    assert "SessionManager(" in report["built"]
    records = [tuple(record) for record in report["records"]]
    assert ("close_session", 503, "503") in records
    assert ("close_session", 404, "404") in records
    assert ("show_workspace", 404, None) in records  # the confirming poll
    # The library did look for OpenTelemetry (tracing defaults to on), and was told no.
    assert "opentelemetry" in report["asked"]


def test_without_opentelemetry_installed_the_default_manager_works() -> None:
    check_without_opentelemetry("ModuleNotFoundError")


def test_a_broken_opentelemetry_install_is_no_different() -> None:
    check_without_opentelemetry("ImportError")
