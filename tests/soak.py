"""The chaos soak: tear down N sessions while the emulator misbehaves in every way at once.

Injected together, per request: 408/500/502/503/504 (15 %), the gateway's documented 429
(``APIG.0308`` "...limit:200,time:1 second", no Retry-After; 5 %, uncorrelated, as a flaky
gateway node gives),
connections dropped before or in the middle of the answer (2 %), answers stalled past the
read timeout (1 %), malformed bodies (1 %); some faults strike after the delete committed.
The input repeats some targets. Checks: every input item is accounted exactly once, the
emulator's final state matches the report, and no task, connection or warning is left.

    python tests/soak.py [--items 50000]      # the long form; CI runs 5,000 (test_chaos.py)

The long form also runs the same items without faults and prints the ratio of the two
throughputs (target: the chaos run keeps at least 20 % of the fault-free one, 0 lost).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from collections import Counter
from collections.abc import Iterator

import attrs

import asyncdeleter
from asyncdeleter import OutcomeKind, RetryPolicy, SessionManager, Timeouts
from asyncdeleter.testing import Emulator, Fault, FaultKind

DUPLICATE_EVERY = 50  # every 50th target appears twice in the input
#: The gateway's throttling answer as documented (docs/api-facts.md, section 3).
THROTTLED = (
    b'{"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: '
    b'policy user over ratelimit,limit:200,time:1 second"}'
)
TARGET_SHARE = 0.20


def chaos() -> list[Fault]:
    faults = [Fault(status=s, probability=0.03) for s in (408, 500, 502, 503, 504)]
    faults += [
        Fault(status=429, body=THROTTLED, probability=0.05),
        Fault(kind=FaultKind.DROP, probability=0.005),
        Fault(kind=FaultKind.DROP, probability=0.005, commit=True),
        Fault(kind=FaultKind.TRUNCATE, status=500, probability=0.005),
        Fault(kind=FaultKind.TRUNCATE, status=200, probability=0.005, commit=True),
        Fault(kind=FaultKind.STALL, probability=0.01, stall_seconds=30),
        Fault(kind=FaultKind.GARBAGE, status=500, probability=0.005),
        Fault(kind=FaultKind.GARBAGE, status=200, probability=0.005, commit=True),
    ]
    # Probabilities apply in turn to what the earlier rules let through; close enough.
    return faults


@attrs.frozen
class SoakResult:
    """The figures of one soak."""

    items: int
    duplicates: int
    requests: int
    faults_injected: int
    accounted: int
    kinds: dict[str, int]
    lost: int
    failed_but_gone: int
    seconds: float
    warnings: list[str]


def targets(n: int) -> Iterator[tuple[str, str]]:
    for i in range(n):
        yield ("ws-soak", f"s{i}")
        if i % DUPLICATE_EVERY == 0:
            yield ("ws-soak", f"s{i}")


async def run_soak(
    n: int, *, seed: int = 1, concurrency: int = 64, faults: bool = True
) -> SoakResult:
    """Run the soak for ``n`` distinct sessions (with the chaos, or without); its figures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emu = Emulator(
            faults=chaos() if faults else (),
            seed=seed,
            record_requests=False,
            latency_jitter=0.002,
        )
        emu.add_sessions("ws-soak", (f"s{i}" for i in range(n)))
        policy = RetryPolicy(max_tries=12, initial_wait=0.01, max_wait=0.2, max_time=60)
        seen: set[int] = set()
        done: set[str] = set()
        failed: set[str] = set()
        kinds: Counter[str] = Counter()
        started = time.monotonic()
        async with (
            emu,
            SessionManager(
                endpoints=emu.endpoints(),
                retry=policy,
                timeouts=Timeouts(read=0.25),
                max_concurrency=concurrency,
            ) as manager,
        ):
            async for outcome in manager.close_sessions(targets(n)):
                assert outcome.index not in seen, "an item was accounted twice"
                seen.add(outcome.index)
                kinds[str(outcome.kind)] += 1
                session_id = outcome.target[1]
                if outcome.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.ALREADY_GONE):
                    done.add(session_id)
                else:
                    failed.add(session_id)
            seconds = time.monotonic() - started
            remaining = emu.sessions("ws-soak")
            requests, injected = emu.request_count, emu.faults_injected
        items = n + len(range(0, n, DUPLICATE_EVERY))
        lost = len(done & remaining) + (items - len(seen))
        failed_but_gone = len((failed - done) - remaining)
    return SoakResult(
        items=items,
        duplicates=items - n,
        requests=requests,
        faults_injected=injected,
        accounted=len(seen),
        kinds=dict(kinds),
        lost=lost,
        failed_but_gone=failed_but_gone,
        seconds=seconds,
        warnings=[str(w.message) for w in caught],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    calm = asyncio.run(run_soak(args.items, seed=args.seed, faults=False))
    result = asyncio.run(run_soak(args.items, seed=args.seed))
    print(f"items (input lines)   {result.items:,}  ({result.duplicates:,} duplicates)")
    print(f"requests sent         {result.requests:,}")
    print(f"faults injected       {result.faults_injected:,}")
    print(f"accounted             {result.accounted:,}")
    print(f"outcomes              {result.kinds}")
    print(f"lost                  {result.lost}")
    print(f"failed but gone       {result.failed_but_gone}")
    print(f"warnings              {len(result.warnings)}")
    print(f"elapsed               {result.seconds:.1f} s")
    share = calm.seconds / result.seconds
    verdict = "PASS" if share >= TARGET_SHARE and result.lost == 0 else "MISS"
    print(f"fault-free run        {calm.seconds:.1f} s")
    print(
        f"throughput kept       {share:.0%} of fault-free (target >= {TARGET_SHARE:.0%}, "
        f"0 lost): {verdict}"
    )
    print(f"asyncdeleter {asyncdeleter.__version__}")


if __name__ == "__main__":
    main()
