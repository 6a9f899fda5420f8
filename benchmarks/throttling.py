"""Adaptive vs fixed concurrency under a throttling gateway: 429s drawn, time taken.

The emulator throttles above a request rate and answers 429 with ``Retry-After``. Both
runs tear down the same sessions through ``close_sessions``; the adaptive (AIMD) run should
draw far fewer 429s (target: at most a fifth) and lose no item.

    python benchmarks/throttling.py [--items 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncdeleter
from asyncdeleter.testing import Emulator


async def one_run(*, adaptive: bool, items: int, concurrency: int) -> tuple[int, float, int]:
    async with Emulator(
        record_requests=False,
        latency=0.01,
        throttle_rps=200,
        throttle_burst=20,
        throttle_retry_after="0.2",
    ) as emu:
        emu.add_sessions("ws", [f"s{i}" for i in range(items)])
        policy = asyncdeleter.RetryPolicy(
            max_tries=60, initial_wait=0.05, max_wait=1.0, retry_budget=None
        )
        async with asyncdeleter.SessionManager(
            endpoints=emu.endpoints(), max_concurrency=concurrency, retry=policy
        ) as manager:
            started = time.perf_counter()
            report = await manager.close_sessions(
                [("ws", f"s{i}") for i in range(items)], adaptive=adaptive
            )
            seconds = time.perf_counter() - started
        return emu.status_counts[429], seconds, report.failed


async def main(items: int, rounds: int, concurrency: int) -> None:
    results: dict[bool, list[tuple[int, float, int]]] = {False: [], True: []}
    for _ in range(rounds):  # interleaved, so both see the same machine
        for adaptive in (False, True):
            results[adaptive].append(
                await one_run(adaptive=adaptive, items=items, concurrency=concurrency)
            )
    print(
        f"{items} closes, max_concurrency={concurrency}, gateway 200 req/s, "
        f"medians of {rounds} rounds"
    )
    print(f"{'mode':<10}{'429s':>8}{'seconds':>10}{'failed':>8}")
    medians = {}
    for adaptive, rows in results.items():
        throttled = statistics.median(r[0] for r in rows)
        seconds = statistics.median(r[1] for r in rows)
        failed = max(r[2] for r in rows)
        medians[adaptive] = throttled
        print(
            f"{'adaptive' if adaptive else 'fixed':<10}{throttled:>8.0f}{seconds:>10.2f}{failed:>8}"
        )
    ratio = medians[False] / max(medians[True], 1)
    print(f"fixed/adaptive 429s = {ratio:.1f}x (target >= 5) {'PASS' if ratio >= 5 else 'MISS'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.items, args.rounds, args.concurrency))
