"""Run every benchmark, interleaved, and write benchmarks/results/ (a table and plots).

    python benchmarks/run.py --quick      # under two minutes (after one-time installs)
    python benchmarks/run.py              # the full figures committed in results/

It creates its own environment (benchmarks/.venv: the project with its CLI extra, httpx,
matplotlib and the official Huawei SDK from the package registry) and starts and stops every
server itself, on loopback only. It needs nginx: when nginx is missing it asks before
installing Debian's package with apt-get (on a terminal), or says what to install and
stops; --install-nginx agrees in advance.
Each comparison runs its contenders in turns, several rounds, and reports medians and
ratios: absolute numbers on a shared machine are noise. Targets print as PASS or MISS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv"
RESULTS = HERE / "results"
BENCH_PACKAGES = ["httpx", "matplotlib", "huaweicloudsdkmodelarts", "huaweicloudsdkcore"]


# -- environment -------------------------------------------------------------------------


def ensure_environment() -> None:
    """Re-run this script inside benchmarks/.venv, creating it on first use."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print("creating benchmarks/.venv (one time)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", f"{ROOT}[cli]", *BENCH_PACKAGES], check=True)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


NGINX_PACKAGE = "nginx-light"


def find_nginx() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


def nginx_binary(install: bool) -> str:
    """The nginx executable. Installing it changes the system, so that is asked for first.

    With ``--install-nginx``, or a "y" on a terminal, Debian's package is installed with
    apt-get (as root); otherwise the script says what it needs and stops.
    """
    found = find_nginx()
    if found:
        return found
    command = ["apt-get", "install", "-y", "-q", NGINX_PACKAGE]
    shown = f"apt-get install {NGINX_PACKAGE}"
    can_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not install and can_install and sys.stdin.isatty():
        answer = input(f"nginx is needed for the client-cost comparison. Run `{shown}` now? [y/N] ")
        install = answer.strip().lower() in ("y", "yes")
    if not install or not can_install:
        how = f"`{shown}` as root" if shutil.which("apt-get") else "your system's nginx package"
        raise SystemExit(
            "nginx is needed for the client-cost comparison and is not installed: install "
            f"{how}, or run this script as root with --install-nginx to let it do that"
        )
    print(f"installing nginx: {shown} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, check=False, env=env, stdout=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return find_nginx() or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def nginx(binary: str) -> Iterator[str]:
    """nginx on a free loopback port answering canned 200s; stopped on exit."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="asyncdeleter-nginx-"))
    conf = (HERE / "nginx.conf.template").read_text()
    (workdir / "nginx.conf").write_text(
        conf.replace("__PORT__", str(port)).replace("__DIR__", str(workdir))
    )
    process = subprocess.Popen([binary, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def emulator_process(latency_ms: float) -> Iterator[str]:
    """The emulator in its own process (its CPU is not the client's), stateless, with latency."""
    from peers import TOKEN

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncdeleter", "emulator", "--port", str(port), "--token", TOKEN,
         "--latency", str(latency_ms), "--stateless"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- the comparisons ----------------------------------------------------------------------


def interleaved(
    rounds: int, contenders: dict[str, Callable[[], object]]
) -> dict[str, list[object]]:
    """Run each contender once per round, in turn, so they share the machine's moods."""
    samples: dict[str, list[object]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            samples[name].append(run())
    return samples


def client_cost(base: str, quick: bool) -> dict[str, dict[str, float | None]]:
    """nginx: CPU per request and throughput of every contender (C=100)."""
    import peers

    n, slow_n, rounds, c = (4000, 1000, 3, 100) if quick else (20000, 3000, 5, 100)
    peers.raw_aiohttp(base, 500, c)  # warm up nginx and the interpreter
    samples = interleaved(
        rounds,
        {
            "raw aiohttp loop": lambda: peers.raw_aiohttp(base, n, c),
            "asyncdeleter (calls)": lambda: peers.asyncdeleter_single(base, n, c),
            "asyncdeleter (bulk)": lambda: peers.asyncdeleter_bulk(base, n, c),
            "httpx.AsyncClient": lambda: peers.httpx_async(base, slow_n, c),
            "asyncdeleter (calls, AK/SK)": lambda: peers.asyncdeleter_single(base, n, c, aksk=True),
            "official SDK (AK/SK)": lambda: peers.official_sdk(base, slow_n, c),
        },
    )
    return {name: summarise(runs) for name, runs in samples.items()}  # type: ignore[arg-type]


def summarise(runs: list[object]) -> dict[str, float | None]:
    import peers

    typed: list[peers.Sample] = runs  # type: ignore[assignment]
    p50 = [s.percentile(0.50) for s in typed]
    p99 = [s.percentile(0.99) for s in typed]
    return {
        "per_second": statistics.median(s.per_second for s in typed),
        "cpu_us": statistics.median(s.cpu_us_per_request for s in typed),
        "seconds": statistics.median(s.seconds for s in typed),
        "p50_ms": statistics.median(p50) * 1000 if None not in p50 else None,  # type: ignore[operator]
        "p99_ms": statistics.median(p99) * 1000 if None not in p99 else None,  # type: ignore[operator]
        "n": typed[0].n,
    }


def latency_bound(quick: bool) -> dict[str, dict[str, float | None]]:
    """The emulator with latency L in its own process: efficiency against ideal N*L/C."""
    import peers

    n, latency_ms, c, rounds = (2000, 50, 100, 3) if quick else (5000, 100, 100, 3)
    ideal = n * (latency_ms / 1000) / c
    with emulator_process(latency_ms) as base:
        peers.raw_aiohttp(base, 200, c)
        samples = interleaved(
            rounds,
            {
                "raw aiohttp loop": lambda: peers.raw_aiohttp(base, n, c),
                "asyncdeleter (calls)": lambda: peers.asyncdeleter_single(base, n, c),
                "asyncdeleter (bulk)": lambda: peers.asyncdeleter_bulk(base, n, c),
            },
        )
    out = {}
    for name, runs in samples.items():
        summary = summarise(runs)
        summary["efficiency"] = ideal / float(summary["seconds"] or 1)
        summary["ideal_seconds"] = ideal
        summary["latency_ms"] = latency_ms
        out[name] = summary
    return out


@contextmanager
def seeded_emulator(sessions: int) -> Iterator[str]:
    """The emulator in its own process holding one Fabric workspace of ``sessions``."""
    from peers import TOKEN

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "asyncdeleter", "emulator", "--port", str(port), "--token", TOKEN,
         "--seed-workspaces", "1", "--seed-sessions", str(sessions)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def listing(quick: bool) -> dict[str, dict[str, float | None]]:
    """ListSqlSessions paged through: items/s and client CPU per item, against raw paging."""
    import peers

    n, page, rounds = (3000, 100, 3) if quick else (10000, 100, 5)
    with seeded_emulator(n) as base:
        peers.raw_aiohttp_listing(base, "ws-0000", page)  # warm up
        samples = interleaved(
            rounds,
            {
                "raw aiohttp paging": lambda: peers.raw_aiohttp_listing(base, "ws-0000", page),
                "asyncdeleter list_sessions": lambda: peers.asyncdeleter_listing(
                    base, "ws-0000", page
                ),
            },
        )
    out: dict[str, dict[str, float | None]] = {}
    for name, runs in samples.items():
        typed: list[peers.Sample] = runs  # type: ignore[assignment]
        if any(s.n != n for s in typed):
            raise RuntimeError(f"{name} listed {[s.n for s in typed]} of {n} sessions")
        out[name] = {
            "items_per_second": statistics.median(s.per_second for s in typed),
            "cpu_us_per_item": statistics.median(s.cpu_us_per_request for s in typed),
            "n": n,
            "page": page,
        }
    return out


def signer_us() -> float:
    import timeit

    import yarl

    from asyncdeleter import AkSkAuth

    auth = AkSkAuth("BENCHAK0123456789", "bench-secret-key-0123456789")
    url = yarl.URL("https://modelarts.cn-north-4.myhuaweicloud.com/v1/proj-1/workspaces/w-123")
    runs = [
        timeit.timeit(lambda: auth.headers_for("DELETE", url), number=20000) / 20000
        for _ in range(5)
    ]
    return statistics.median(runs) * 1e6


def import_times(rounds: int) -> dict[str, float]:
    """Median import time of asyncdeleter vs its four dependencies alone, interleaved."""
    # The dependencies were installed with their bytecode; compile ours the same way, or
    # the comparison would time Python's compiler (PYTHONDONTWRITEBYTECODE may be set).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "asyncdeleter")], check=True
    )
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    subjects = {"asyncdeleter": "asyncdeleter", "dependencies": "aiohttp, attrs, cattrs, backoff"}
    times: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(rounds):
        for name, modules in subjects.items():
            out = subprocess.run([sys.executable, "-c", code.format(modules)], capture_output=True,
                                 text=True, check=True)  # fmt: skip
            times[name].append(float(out.stdout))
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def memory(quick: bool) -> list[dict[str, float]]:
    sizes = [1_000, 10_000, 100_000, 300_000] if quick else [1_000, 10_000, 100_000, 1_000_000]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, str(HERE / "bulk_memory.py"), "--child", str(n)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(json.loads(out.stdout))
    return rows


# -- report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(results: dict[str, object]) -> list[tuple[str, str, str]]:
    cost: dict[str, dict[str, float]] = results["client_cost"]  # type: ignore[assignment]
    lat: dict[str, dict[str, float]] = results["latency_bound"]  # type: ignore[assignment]
    mem: list[dict[str, float]] = results["memory"]  # type: ignore[assignment]
    imports: dict[str, float] = results["import_ms"]  # type: ignore[assignment]
    cpu_ratio = cost["asyncdeleter (calls)"]["cpu_us"] / cost["raw aiohttp loop"]["cpu_us"]
    speedup = (
        cost["asyncdeleter (calls, AK/SK)"]["per_second"]
        / cost["official SDK (AK/SK)"]["per_second"]
    )
    eff_ratio = lat["asyncdeleter (calls)"]["efficiency"] / lat["raw aiohttp loop"]["efficiency"]
    import_ratio = imports["asyncdeleter"] / imports["dependencies"]
    by_n = {int(r["n"]): r["peak_rss_mib"] for r in mem}
    largest = max(by_n)
    rss_ratio = by_n[largest] / by_n[100_000]
    signer = float(results["signer_us"])  # type: ignore[arg-type]
    listed: dict[str, dict[str, float]] = results["listing"]  # type: ignore[assignment]
    list_ratio = (
        listed["asyncdeleter list_sessions"]["items_per_second"]
        / listed["raw aiohttp paging"]["items_per_second"]
    )
    return [
        ("CPU per request vs raw aiohttp (nginx, C=100, token)", f"{cpu_ratio:.3f}x (<= 1.10)", verdict(cpu_ratio <= 1.10)),
        ("throughput vs official SDK (nginx, both AK/SK)", f"{speedup:.1f}x (>= 6)", verdict(speedup >= 6)),
        ("AK/SK signing per request", f"{signer:.1f} us (<= 30)", verdict(signer <= 30)),
        ("latency-bound efficiency vs raw aiohttp", f"{eff_ratio:.3f}x (>= 0.97)", verdict(eff_ratio >= 0.97)),
        ("import time vs aiohttp+attrs+cattrs+backoff", f"{import_ratio:.3f}x (<= 1.10)", verdict(import_ratio <= 1.10)),
        (f"peak RSS N={largest:,} vs N=100,000 (streamed)", f"{rss_ratio:.3f}x (<= 1.3)", verdict(rss_ratio <= 1.3)),
        ("list_sessions items/s vs raw aiohttp paging", f"{list_ratio:.3f}x (>= 0.50)", verdict(list_ratio >= 0.50)),
    ]  # fmt: skip


def markdown(results: dict[str, object], quick: bool) -> str:
    cost: dict[str, dict[str, float | None]] = results["client_cost"]  # type: ignore[assignment]
    lat: dict[str, dict[str, float | None]] = results["latency_bound"]  # type: ignore[assignment]
    raw_cpu = float(cost["raw aiohttp loop"]["cpu_us"] or 1)
    official = float(cost["official SDK (AK/SK)"]["per_second"] or 1)
    lines = [
        "# Benchmark results",
        "",
        f"`python benchmarks/run.py{' --quick' if quick else ''}` on {platform.node() or 'this machine'}"
        f" ({os.cpu_count()} cores, Python {platform.python_version()}), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Medians of interleaved rounds.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in targets(results)],
        "",
        "## Client cost: nginx answering canned 200s, C=100",
        "",
        "| contender | requests/s | CPU µs/request | vs raw aiohttp (CPU) | vs official SDK (req/s) | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in cost.items():
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}"
        p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.2f}"
        lines.append(
            f"| {name} | {row['per_second']:,.0f} | {row['cpu_us']:.0f} | {float(row['cpu_us'] or 0) / raw_cpu:.2f}x"
            f" | {float(row['per_second'] or 0) / official:.1f}x | {p50} | {p99} |"
        )
    lines += [
        "",
        f"The official SDK's async client runs on its own thread pool of {results['official_workers']} workers"
        " (its ceiling, whatever concurrency is asked); it signs with AK/SK only, so it is compared"
        " with asyncdeleter's AK/SK row.",
        "",
    ]
    any_lat = next(iter(lat.values()))
    lines += [
        f"## Latency-bound: emulator in its own process, L={any_lat['latency_ms']:.0f} ms, C=100",
        "",
        f"Ideal time N·L/C = {any_lat['ideal_seconds']:.2f} s.",
        "",
        "| contender | seconds | efficiency | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in lat.items():
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"
        p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.1f}"
        lines.append(f"| {name} | {row['seconds']:.2f} | {row['efficiency']:.3f} | {p50} | {p99} |")
    listed: dict[str, dict[str, float]] = results["listing"]  # type: ignore[assignment]
    any_list = next(iter(listed.values()))
    lines += [
        "",
        f"## Listing: ListSqlSessions, {int(any_list['n']):,} sessions in pages of {int(any_list['page'])}"
        " (emulator in its own process)",
        "",
        "| contender | items/s | client CPU µs/item |",
        "|---|---:|---:|",
        *[f"| {name} | {row['items_per_second']:,.0f} | {row['cpu_us_per_item']:.1f} |" for name, row in listed.items()],
        "",
        "asyncdeleter's listing builds a typed `SqlSession` per item (times parsed, unknown fields"
        " kept) and keeps the ids it has yielded, so that deleting while listing skips nothing;"
        " the raw loop only counts dicts. The target (>= 0.5x) says that this costs at most"
        " about as much again as the plain loop.",
    ]  # fmt: skip
    imports: dict[str, float] = results["import_ms"]  # type: ignore[assignment]
    lines += [
        "",
        "## Import time and memory",
        "",
        f"`import asyncdeleter`: {imports['asyncdeleter']:.1f} ms; `import aiohttp, attrs, cattrs, backoff`:"
        f" {imports['dependencies']:.1f} ms (the CLI and the emulator are imported lazily).",
        "",
        "| N (streamed bulk closes) | closes/s | peak RSS MiB |",
        "|---:|---:|---:|",
        *[f"| {int(r['n']):,} | {r['per_second']:,.0f} | {r['peak_rss_mib']:.1f} |" for r in results["memory"]],  # type: ignore[attr-defined]
        "",
        "![throughput](throughput.png) ![cpu](cpu.png) ![memory](memory.png)",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def plots(results: dict[str, object]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost: dict[str, dict[str, float]] = results["client_cost"]  # type: ignore[assignment]
    names = list(cost)
    for key, label, filename in (("per_second", "requests/s (nginx, C=100)", "throughput.png"),
                                 ("cpu_us", "CPU µs per request (lower is better)", "cpu.png")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(8, 3.6))
        values = [cost[n][key] for n in names]
        bars = ax.barh(
            names, values, color=["#888" if "asyncdeleter" not in n else "#2a7" for n in names]
        )
        ax.bar_label(bars, fmt="%.0f", padding=3)
        ax.set_xlabel(label)
        ax.invert_yaxis()
        fig.tight_layout()
        fig.savefig(RESULTS / filename, dpi=110)
        plt.close(fig)
    mem: list[dict[str, float]] = results["memory"]  # type: ignore[assignment]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot([r["n"] for r in mem], [r["peak_rss_mib"] for r in mem], marker="o", color="#2a7")
    ax.set_xscale("log")
    ax.set_ylim(0, max(r["peak_rss_mib"] for r in mem) * 1.5)
    ax.set_xlabel("sessions closed in one streamed bulk run (N)")
    ax.set_ylabel("peak RSS, MiB")
    fig.tight_layout()
    fig.savefig(RESULTS / "memory.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: under two minutes")
    parser.add_argument(
        "--install-nginx",
        action="store_true",
        help=f"install nginx ({NGINX_PACKAGE}) with apt-get if it is missing",
    )
    args = parser.parse_args()
    nginx_path = nginx_binary(args.install_nginx)  # before the long one-time setup
    ensure_environment()
    sys.path.insert(0, str(HERE))
    import peers

    started = time.monotonic()
    results: dict[str, object] = {"quick": args.quick}
    print("client cost (nginx)...", flush=True)
    with nginx(nginx_path) as base:
        results["client_cost"] = client_cost(base, args.quick)
    results["official_workers"] = peers.official_sdk_workers()
    print("latency-bound (emulator in its own process)...", flush=True)
    results["latency_bound"] = latency_bound(args.quick)
    print("listing (emulator in its own process)...", flush=True)
    results["listing"] = listing(args.quick)
    print("signer, import time, memory...", flush=True)
    results["signer_us"] = signer_us()
    results["import_ms"] = import_times(5 if args.quick else 11)
    results["memory"] = memory(args.quick)
    RESULTS.mkdir(exist_ok=True)
    report = markdown(results, args.quick)
    (RESULTS / "results.md").write_text(report)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2))
    plots(results)
    print()
    print(report)
    print(f"\n(took {time.monotonic() - started:.0f} s; written to {RESULTS.relative_to(ROOT)}/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
