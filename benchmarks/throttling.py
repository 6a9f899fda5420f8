"""Behaviour under the gateway's quota: asyncdeleter's learned rate vs the alternatives.

    python benchmarks/throttling.py                  # both variants, full size (~15 min)
    python benchmarks/throttling.py --quick          # smaller runs (~5 min)
    python benchmarks/throttling.py --variant documented   # one variant only
    python benchmarks/throttling.py --previous REF   # also run git REF's code ("before")

The emulator runs in its own process with the gateway's quota (a fixed one-second window
per host and API) and 20 ms latency. Two variants of its throttling answer:

- ``documented`` (the default scenario): 429 ``APIG.0308`` "The throttling threshold has
  been reached: policy user over ratelimit,limit:XX,time:1 second" and **no**
  ``Retry-After``, as the real gateway documents (docs/api-facts.md, section 3);
- ``retry-after-1``: the same answer with ``Retry-After: 1``.

Each client run is a subprocess of its own, so the contenders are:

- ``adaptive``: this checkout, default ``RetryPolicy``, the learned per-API rate;
- ``fixed``: this checkout with ``adaptive=False``: fixed concurrency, each call honouring
  only its own wait (``Retry-After`` or backoff): the naive client a 429 merely delays;
- ``previous``: the code at ``--previous`` (a git worktree), as it was.

The per-minute row runs against a small gateway of this file's own (the emulator counts
per second): a fixed 60 s window, ``time:1 minute`` in its message.

Throttling answers and successes are counted on the client side by an aiohttp
``TraceConfig``, the same way for every contender. Results and a plot of the achieved
rate over time go to benchmarks/results/throttling.{md,json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
TOKEN = "bench-token"
LATENCY = 0.02
VARIANTS = {"documented": None, "retry-after-1": "1"}


def throttle_message(limit: int | None, unit: str = "second") -> bytes:
    """The gateway's documented 429 body (docs/api-facts.md, section 3)."""
    shown = "XX" if limit is None else str(limit)
    return json.dumps(
        {
            "error_code": "APIG.0308",
            "error_msg": "The throttling threshold has been reached: policy user over "
            f"ratelimit,limit:{shown},time:1 {unit}",
        }
    ).encode()


# -- the emulator, in a process of its own ---------------------------------------------


def serve(spec: dict[str, Any]) -> None:
    """Run the emulator as ``spec`` says; print its URL; serve until killed."""
    if spec.get("per_minute"):
        asyncio.run(serve_per_minute(spec))
        return
    from asyncdeleter.testing import Emulator, Fault

    async def main() -> None:
        emulator = Emulator(
            token=TOKEN,
            latency=LATENCY,
            quota=spec.get("quota"),
            throttle_retry_after=spec.get("retry_after"),
            stateless=True,
            record_requests=False,
            seed=7,
            faults=[
                Fault(**dict(fault, body=fault["body"].encode()) if "body" in fault else fault)
                for fault in spec.get("faults", ())
            ],
        )
        await emulator.start()
        if spec.get("clear_faults_after"):
            asyncio.get_running_loop().call_later(spec["clear_faults_after"], emulator.clear_faults)
        print(emulator.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def serve_per_minute(spec: dict[str, Any]) -> None:
    """A gateway with a per-minute quota: fixed 60 s windows from its start, 20 ms latency."""
    from aiohttp import web

    quota, retry_after = spec["quota_per_minute"], spec.get("retry_after")
    loop = asyncio.get_running_loop()
    started = loop.time()
    counts: dict[int, int] = {}
    refused = throttle_message(quota, "minute")

    async def handle(request: web.Request) -> web.Response:
        window = int((loop.time() - started) // 60)
        counts[window] = counts.get(window, 0) + 1
        if counts[window] > quota:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.Response(
                status=429, body=refused, content_type="application/json", headers=headers
            )
        await asyncio.sleep(LATENCY)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("DELETE", "/v1/workspaces/{ws}/sessions/{sid}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


# -- one client run, in a process of its own -------------------------------------------


def client(spec: dict[str, Any]) -> None:
    """Run one contender against ``spec["url"]``; print a JSON line of what happened."""
    import aiohttp

    import asyncdeleter

    statuses: dict[int, int] = {}
    done_at: list[float] = []
    started = time.monotonic()

    async def on_end(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        status = params.response.status
        statuses[status] = statuses.get(status, 0) + 1
        if status < 300:
            done_at.append(time.monotonic() - started)

    async def main() -> dict[str, Any]:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_end)
        url = spec["url"]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), trace_configs=[trace]
        ) as session:
            options: dict[str, Any] = {}
            if spec["mode"] == "fixed":
                options["adaptive"] = False
            retry = asyncdeleter.RetryPolicy(max_time=spec.get("max_time", 120.0))
            async with asyncdeleter.SessionManager(
                endpoints=asyncdeleter.Endpoints(fabric=url, modelarts=url),
                auth=asyncdeleter.TokenAuth(TOKEN),
                max_concurrency=spec["concurrency"],
                session=session,
                retry=retry,
            ) as manager:
                items = [("ws", f"s{i}") for i in range(spec["items"])]
                if spec["singles"]:
                    results = await asyncio.gather(
                        *(manager.close_session(*pair) for pair in items), return_exceptions=True
                    )
                    failed = sum(1 for r in results if r is not None)
                else:
                    report = await manager.close_sessions(items, **options)
                    failed = report.failed + report.skipped + report.invalid
        return {"failed": failed}

    outcome = asyncio.run(main())
    outcome.update(
        elapsed=time.monotonic() - started,
        cpu=time.process_time(),
        throttled=statuses.get(429, 0),
        requests=sum(statuses.values()),
        done_at=done_at,
    )
    print(json.dumps(outcome))


# -- the orchestra ----------------------------------------------------------------------


def run_one(scenario: dict[str, Any], mode: str, previous: Path | None, limit: float, retry_after: str | None) -> dict[str, Any]:  # fmt: skip
    server_spec = dict(scenario["server"], retry_after=retry_after)
    server_spec["faults"] = [
        dict(fault, retry_after=retry_after) if fault.get("status") == 429 else fault
        for fault in server_spec.get("faults", ())
    ]
    with subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(server_spec)],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            env = dict(os.environ)
            if mode == "previous" and previous is not None:
                env["PYTHONPATH"] = str(previous)
            spec = {
                "url": url,
                "mode": mode,
                "items": scenario["items"],
                "concurrency": scenario["concurrency"],
                "singles": scenario.get("singles", False),
                "max_time": scenario.get("max_time", 120.0),
            }
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--client", json.dumps(spec)],
                    capture_output=True, text=True, env=env, timeout=limit, check=True,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                return {"timeout": limit}
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            server.kill()


def rate_within(done_at: list[float], start: float, end: float, window: float = 0.5) -> float:
    """The best rate (per second) over any ``window`` starting in [start, end]."""
    times = sorted(t for t in done_at if start <= t <= end + window)
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best / window


def scenarios(quick: bool) -> list[dict[str, Any]]:
    """The issue's table, plus the storm and the outage kept from the earlier issue."""
    scale = 0.2 if quick else 1.0
    noise = {"status": 429, "body": throttle_message(200).decode(), "probability": 0.05}
    storm = {"status": 429, "body": throttle_message(200).decode()}
    return [
        {"name": "quota 200/s, C=64", "quota": 200, "target": 1.05, "max_429s": True,
         "server": {"quota": 200}, "items": int(20_000 * scale), "concurrency": 64},
        {"name": "quota 400/s, C=200", "quota": 400, "target": 1.10,
         "server": {"quota": 400}, "items": 3_000, "concurrency": 200},
        {"name": "600 single calls, quota 100/s", "quota": 100, "target": 1.2, "singles": True,
         "server": {"quota": 100}, "items": 600, "concurrency": 64},
        {"name": "no faults (reference)", "server": {}, "items": int(8_000 * scale),
         "concurrency": 64},
        {"name": "5% uncorrelated 429s", "noise": True,
         "server": {"faults": [noise]}, "items": int(8_000 * scale), "concurrency": 64},
        {"name": "per-minute quota 600/min, C=64", "per_minute": 600,
         "server": {"per_minute": True, "quota_per_minute": 600},
         "items": 1_000, "concurrency": 64, "max_time": 300.0},
        {"name": "429 storm for 10 s, then normal", "storm": 10.0,
         "server": {"faults": [storm], "clear_faults_after": 10.0},
         "items": 5_000, "concurrency": 64},
        {"name": "full 503 outage", "server": {"faults": [{"status": 503}]},
         "items": 2_000, "concurrency": 64},
    ]  # fmt: skip


def verdicts(scenario: dict[str, Any], run: dict[str, Any], reference: float | None) -> list[str]:
    """The issue's targets for this scenario, each PASS or MISS (or just what happened)."""
    if "timeout" in run:
        return [f"timed out after {run['timeout']:.0f} s: MISS"]
    items = scenario["items"]
    out = []

    def check(label: str, ok: bool) -> None:
        out.append(f"{label}: {'PASS' if ok else 'MISS'}")

    if "quota" in scenario:
        ideal = items / scenario["quota"]
        limit = scenario["target"]
        check("0 failed", run["failed"] == 0)
        check(f"elapsed {run['elapsed'] / ideal:.3f} x N/Q <= {limit}",
              run["elapsed"] <= limit * ideal)  # fmt: skip
        if scenario.get("max_429s"):
            most = scenario["concurrency"] + 0.02 * items
            check(f"{run['throttled']} 429s <= C + 0.02 N = {most:.0f}", run["throttled"] <= most)
    elif scenario.get("noise") and reference:
        share = (items / run["elapsed"]) / reference
        check(f"throughput {share:.0%} of fault-free >= 25%", share >= 0.25)
    elif scenario.get("per_minute"):
        per_second = scenario["per_minute"] / 60
        windows = -(-items // scenario["per_minute"]) - 1  # full windows before the last
        out.append(
            f"{run['failed']} failed; elapsed {run['elapsed']:.1f} s = "
            f"{run['elapsed'] / (items / per_second):.2f} x N/Q (the windows allow "
            f"~{60 * windows} s); {run['throttled']} 429s: reported, no target"
        )
    elif "storm" in scenario and reference:
        recovered = rate_within(run["done_at"], scenario["storm"], scenario["storm"] + 5)
        check("0 failed", run["failed"] == 0)
        check(f"{run['throttled'] / items:.2f} 429s per item <= 1.5",
              run["throttled"] / items <= 1.5)  # fmt: skip
        check(f"{recovered / reference:.0%} of fault-free rate within 5 s of recovery >= 90%",
              recovered >= 0.9 * reference)  # fmt: skip
    elif scenario["name"].startswith("full 503"):
        check(f"{run['requests'] / items:.3f} requests per item <= 1.1",
              run["requests"] / items <= 1.1)  # fmt: skip
    return out


def run_variant(variant: str, quick: bool, modes: list[str], previous: Path | None, only: str | None) -> tuple[dict[str, dict[str, Any]], list[str]]:  # fmt: skip
    retry_after = VARIANTS[variant]
    results: dict[str, dict[str, Any]] = {}
    shown = "no Retry-After (documented)" if retry_after is None else f"Retry-After: {retry_after}"
    lines = [f"### 429 with {shown}", "",
             "| scenario | contender | items | failed | elapsed s | 429s | requests | targets |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    reference = None
    for scenario in scenarios(quick):
        if only and only not in scenario["name"] and not scenario["name"].startswith("no faults"):
            continue
        for mode in modes:
            adaptive_time = results.get(scenario["name"], {}).get("adaptive", {})
            limit = max(180.0, 3 * adaptive_time.get("elapsed", 200.0))
            run = run_one(scenario, mode, previous, limit, retry_after)
            results.setdefault(scenario["name"], {})[mode] = run
            if scenario["name"].startswith("no faults") and mode == "adaptive":
                reference = scenario["items"] / run["elapsed"]
            marks = "; ".join(verdicts(scenario, run, reference)) if mode == "adaptive" else ""
            if "timeout" in run:
                row = f"| {scenario['name']} | {mode} | {scenario['items']} | - | >{run['timeout']:.0f} | - | - | {marks} |"
            else:
                row = (
                    f"| {scenario['name']} | {mode} | {scenario['items']} | {run['failed']} "
                    f"| {run['elapsed']:.1f} | {run['throttled']} | {run['requests']} "
                    f"| {marks} |"
                )
            lines.append(row)
            print(f"[{variant}] {row}", flush=True)
    return results, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="run only this variant")
    parser.add_argument("--previous", metavar="REF", help="also run this git ref's code")
    parser.add_argument("--only", metavar="TEXT", help="only scenarios whose name has TEXT")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(json.loads(args.serve))
        return 0
    if args.client:
        client(json.loads(args.client))
        return 0

    modes = ["adaptive", "fixed"]
    previous: Path | None = None
    if args.previous:
        previous = Path(tempfile.mkdtemp(prefix="asyncdeleter-previous-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f",
                        str(previous), args.previous], check=True, capture_output=True)  # fmt: skip
        modes.append("previous")
    variants = [args.variant] if args.variant else list(VARIANTS)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    command = "python benchmarks/throttling.py" + " ".join(
        ["", *(["--quick"] if args.quick else []), *(["--variant", args.variant] if args.variant else []),
         *(["--previous", args.previous] if args.previous else []),
         *(["--only", repr(args.only)] if args.only else [])]
    )  # fmt: skip
    lines = [
        "# Throttling benchmark",
        "",
        f"`{command}` on {platform.node()} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}); emulator with 20 ms latency in a process of its own.",
        "",
    ]
    try:
        for variant in variants:
            results[variant], table = run_variant(variant, args.quick, modes, previous, args.only)
            lines += [*table, ""]
    finally:
        if previous is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(previous)], check=False, capture_output=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    suffix = "-quick" if args.quick else ""
    if args.only:
        suffix += "-only"
    (RESULTS / f"throttling{suffix}.md").write_text("\n".join(lines))
    compact = {
        v: {s: {m: {k: x for k, x in r.items() if k != "done_at"} for m, r in runs.items()}
            for s, runs in by_scenario.items()}
        for v, by_scenario in results.items()
    }  # fmt: skip
    (RESULTS / f"throttling{suffix}.json").write_text(json.dumps(compact, indent=2) + "\n")
    plot(results, RESULTS / f"throttling{suffix}.png")
    return 0


def plot(results: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """Achieved rate (successes per second) over time, for the quota and storm scenarios."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    names = [n for n in next(iter(results.values())) if n.startswith(("quota", "429 storm", "per-minute", "5%"))]  # fmt: skip
    figure, axes = plt.subplots(len(names), 1, figsize=(9, 3 * len(names)), squeeze=False)
    styles = {"documented": "-", "retry-after-1": ":"}
    for axis, name in zip(axes[:, 0], names, strict=True):
        for variant, by_scenario in results.items():
            for mode, run in by_scenario.get(name, {}).items():
                if "done_at" not in run or not run["done_at"]:
                    continue
                seconds = int(max(run["done_at"])) + 1
                counts = [0] * seconds
                for at in run["done_at"]:
                    counts[int(at)] += 1
                label = (
                    f"{mode}, {'no Retry-After' if variant == 'documented' else 'Retry-After: 1'}"
                )
                axis.plot(range(seconds), counts, styles.get(variant, "-"), label=label)
        axis.set_title(name)
        axis.set_xlabel("second of the run")
        axis.set_ylabel("successes/s")
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
