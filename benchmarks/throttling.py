"""Behaviour under the gateway's quota: asyncdeleter's learned rate vs the alternatives.

    python benchmarks/throttling.py                  # every scenario, full size (~8 min)
    python benchmarks/throttling.py --quick          # smaller runs (~2 min)
    python benchmarks/throttling.py --previous REF   # also run git REF's code ("before")

The emulator runs in its own process with the gateway's quota (a fixed one-second window
per host and API, 429 ``APIG.0308`` with ``Retry-After: 1`` past it) and 20 ms latency.
Each client run is a subprocess of its own, so the contenders are:

- ``adaptive``: this checkout, default ``RetryPolicy``, the learned per-API rate;
- ``fixed``: this checkout with ``adaptive=False``: fixed concurrency, each call honouring
  only its own ``Retry-After`` (the naive client that a 429 merely delays);
- ``previous``: the code at ``--previous`` (a git worktree), as it was.

Throttling answers and successes are counted on the client side by an aiohttp
``TraceConfig``, the same way for every contender. Results and a plot of the achieved
rate over time go to benchmarks/results/throttling.{md,json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


# -- the emulator, in a process of its own ---------------------------------------------


def serve(spec: dict[str, Any]) -> None:
    """Run the emulator as ``spec`` says; print its URL; serve until killed."""
    from asyncdeleter.testing import Emulator, Fault

    async def main() -> None:
        emulator = Emulator(
            token=TOKEN,
            latency=LATENCY,
            quota=spec.get("quota"),
            stateless=True,
            record_requests=False,
            seed=7,
            faults=[Fault(**fault) for fault in spec.get("faults", ())],
        )
        await emulator.start()
        if spec.get("clear_faults_after"):
            asyncio.get_running_loop().call_later(spec["clear_faults_after"], emulator.clear_faults)
        print(emulator.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


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
            async with asyncdeleter.SessionManager(
                endpoints=asyncdeleter.Endpoints(fabric=url, modelarts=url),
                auth=asyncdeleter.TokenAuth(TOKEN),
                max_concurrency=spec["concurrency"],
                session=session,
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


def run_one(scenario: dict[str, Any], mode: str, previous: Path | None, limit: float) -> dict[str, Any]:  # fmt: skip
    with subprocess.Popen(
        [sys.executable, __file__, "--serve", json.dumps(scenario["server"])],
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
    scale = 0.2 if quick else 1.0
    retry_after_1 = {"status": 429, "retry_after": "1"}
    return [
        {"name": "quota 200/s, C=64", "quota": 200,
         "server": {"quota": 200}, "items": int(20_000 * scale), "concurrency": 64},
        {"name": "quota 400/s, C=200", "quota": 400,
         "server": {"quota": 400}, "items": int(20_000 * scale), "concurrency": 200},
        {"name": "600 single calls, quota 100/s", "quota": 100, "singles": True,
         "server": {"quota": 100}, "items": 600, "concurrency": 64},
        {"name": "no faults (reference)", "server": {}, "items": int(8_000 * scale),
         "concurrency": 64},
        {"name": "5% uncorrelated 429 + Retry-After: 1",
         "server": {"faults": [{**retry_after_1, "probability": 0.05}]},
         "items": int(8_000 * scale), "concurrency": 64},
        {"name": "429 storm for 10 s, then normal", "storm": 10.0,
         "server": {"faults": [retry_after_1], "clear_faults_after": 10.0},
         "items": int(5_000 * scale) if quick else 5_000, "concurrency": 64},
        {"name": "full 503 outage", "server": {"faults": [{"status": 503}]},
         "items": 2_000, "concurrency": 64},
    ]  # fmt: skip


def verdicts(scenario: dict[str, Any], run: dict[str, Any], reference: float | None) -> list[str]:
    """The issue's targets for this scenario, each PASS or MISS."""
    if "timeout" in run:
        return [f"timed out after {run['timeout']:.0f} s: MISS"]
    items, name = scenario["items"], scenario["name"]
    out = []

    def check(label: str, ok: bool) -> None:
        out.append(f"{label}: {'PASS' if ok else 'MISS'}")

    if "quota" in scenario:
        ideal = items / scenario["quota"]
        limit = 1.2 if scenario.get("singles") else 1.05
        check("0 failed", run["failed"] == 0)
        check(f"elapsed {run['elapsed'] / ideal:.3f} x N/Q <= {limit}",
              run["elapsed"] <= limit * ideal)  # fmt: skip
        if not scenario.get("singles"):
            per_item = run["throttled"] / items
            check(f"{per_item:.4f} 429s per item <= 0.02", per_item <= 0.02)
    elif name.startswith("5%") and reference:
        share = (items / run["elapsed"]) / reference
        check(f"throughput {share:.0%} of fault-free >= 20%", share >= 0.20)
    elif "storm" in scenario and reference:
        recovered = rate_within(run["done_at"], scenario["storm"], scenario["storm"] + 5)
        check("0 failed", run["failed"] == 0)
        check(f"{run['throttled'] / items:.2f} 429s per item <= 1.5",
              run["throttled"] / items <= 1.5)  # fmt: skip
        # With few items left after the storm, the run may end before reaching full speed.
        check(f"{recovered / reference:.0%} of fault-free rate within 5 s of recovery >= 90%",
              recovered >= 0.9 * reference)  # fmt: skip
    elif name.startswith("full 503"):
        check(f"{run['requests'] / items:.3f} requests per item <= 1.1",
              run["requests"] / items <= 1.1)  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--previous", metavar="REF", help="also run this git ref's code")
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
    results: dict[str, dict[str, Any]] = {}
    lines = ["| scenario | contender | items | failed | elapsed s | 429s | requests | targets |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    reference = None
    try:
        for scenario in scenarios(args.quick):
            for mode in modes:
                adaptive_time = results.get(scenario["name"], {}).get("adaptive", {})
                limit = max(120.0, 3 * adaptive_time.get("elapsed", 200.0))
                run = run_one(scenario, mode, previous, limit)
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
                print(row, flush=True)
    finally:
        if previous is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(previous)], check=False, capture_output=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (RESULTS / f"throttling{suffix}.md").write_text("\n".join(lines) + "\n")
    compact = {s: {m: {k: v for k, v in r.items() if k != "done_at"} for m, r in runs.items()}
               for s, runs in results.items()}  # fmt: skip
    (RESULTS / f"throttling{suffix}.json").write_text(json.dumps(compact, indent=2) + "\n")
    plot(results, RESULTS / f"throttling{suffix}.png")
    return 0


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Achieved rate (successes per second) over time, for the quota scenarios."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    names = [n for n in results if n.startswith(("quota", "429 storm"))]
    figure, axes = plt.subplots(len(names), 1, figsize=(9, 3 * len(names)), squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=True):
        for mode, run in results[name].items():
            if "done_at" not in run or not run["done_at"]:
                continue
            seconds = int(max(run["done_at"])) + 1
            counts = [0] * seconds
            for at in run["done_at"]:
                counts[int(at)] += 1
            axis.plot(range(seconds), counts, label=mode)
        axis.set_title(name)
        axis.set_xlabel("second of the run")
        axis.set_ylabel("successes/s")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)


if __name__ == "__main__":
    sys.exit(main())
