"""Stream N session closes through the bulk API; print throughput and peak RSS per N.

Each N runs in a fresh child process (peak RSS is a high-water mark, so runs cannot share
a process). The emulator runs in the same process, stateless, so what grows with N is the
client's own state, which must stay flat: the target is peak RSS at the largest N within
1.3x of the RSS at 100,000.

    python benchmarks/bulk_memory.py                 # 10k, 100k, 1M
    python benchmarks/bulk_memory.py --sizes 1000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

import asyncdeleter
from asyncdeleter.testing import Emulator

RSS_TARGET = 1.3


def pairs(n: int) -> Iterator[tuple[str, str]]:
    for i in range(n):
        yield ("ws-bench", f"s{i}")


async def child(n: int, concurrency: int) -> dict[str, float]:
    emulator = Emulator(stateless=True, record_requests=False)
    async with (
        emulator,
        asyncdeleter.SessionManager(
            endpoints=emulator.endpoints(), max_concurrency=concurrency
        ) as manager,
    ):
        started = time.perf_counter()
        done = 0
        async for _ in manager.close_sessions(pairs(n)):
            done += 1
        seconds = time.perf_counter() - started
    assert done == n
    return {"n": n, "seconds": seconds, "per_second": n / seconds, "peak_rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec,
    so a child started by a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(child(args.child, args.concurrency))))
        return 0
    rows = []
    for n in args.sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--concurrency", str(args.concurrency)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout))
        r = rows[-1]
        rate, rss = r["per_second"], r["peak_rss_mib"]
        print(f"N={r['n']:>9,}  {rate:8.0f} closes/s  peak RSS {rss:7.1f} MiB")
    by_n = {r["n"]: r for r in rows}
    if 100_000 in by_n and max(by_n) > 100_000:
        ratio = by_n[max(by_n)]["peak_rss_mib"] / by_n[100_000]["peak_rss_mib"]
        verdict = "PASS" if ratio <= RSS_TARGET else "MISS"
        print(f"peak RSS N={max(by_n):,} / N=100,000 = {ratio:.3f} (<= {RSS_TARGET}) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
