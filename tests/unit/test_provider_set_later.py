"""A manager built before the application sets OpenTelemetry up starts tracing once it has.

Until a provider is set, a manager makes no span at all and asks the API at most once a
second whether one has been set since (the question costs an environment lookup). In a
fresh interpreter, since a provider can be set only once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, time

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import asyncdeleter
    from asyncdeleter.testing import Emulator


    async def main():
        seen = {}
        async with Emulator(token="token-0123456789") as emu:
            emu.add_sessions("ws-1", ["s1", "s2", "s3"])
            async with asyncdeleter.SessionManager(
                endpoints=emu.endpoints(), auth=asyncdeleter.TokenAuth("token-0123456789")
            ) as manager:
                await manager.close_session("ws-1", "s1")  # no provider yet
                exporter = InMemorySpanExporter()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                time.sleep(1.2)  # past the interval between two looks for a provider
                await manager.close_session("ws-1", "s2")
                seen["after"] = sorted(span.name for span in exporter.get_finished_spans())
            seen["left"] = sorted(emu.sessions("ws-1"))
        print(json.dumps(seen))


    asyncio.run(main())
    """
)


def test_a_provider_set_after_the_manager_was_built_is_picked_up() -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # Only the second call traced: the first was made before any provider existed.
    assert seen["after"] == [
        "DELETE /v1/workspaces/{workspace_id}/sessions/{session_id}",
        "DataArtsFabric.CloseSqlSession",
    ]
    assert seen["left"] == ["s3"]
