"""Run every benchmark, interleaved, and write benchmarks/results/ (a table and plots).

    python benchmarks/run.py --quick      # under two minutes (after one-time installs)
    python benchmarks/run.py              # the full figures committed in results/
    python benchmarks/run.py --quick --only tracing --baseline 88349b6
                                          # tracing's CPU cost alone, about a minute
    python benchmarks/run.py --smoke      # tiny runs, to check the script end to end

It creates its own environment (benchmarks/.venv: the project with its CLI and otel extras,
httpx, matplotlib, OpenTelemetry's SDK and the official Huawei SDK from the package
registry; what is missing from an existing one is installed) and starts and stops every
server itself, on loopback only. It needs nginx: when nginx is missing it asks before
installing Debian's package with apt-get (on a terminal), or says what to install and
stops; --install-nginx agrees in advance.
Each comparison runs its contenders in turns, several rounds, and reports medians and
ratios: absolute numbers on a shared machine are noise. Targets print as PASS or MISS.

The tracing comparison runs each variant (tracing off; on without the otel extra; on with
the API only; on with the SDK set up) in a process of its own per round, since a tracer
provider can be set only once per process; ``--baseline REF`` adds the build of that git
ref (exported with ``git archive``) measured the same way, for the "no cost" target.
``--only tracing`` runs that comparison alone and merges it into the results already
written; ``--results DIR`` writes elsewhere (``--smoke`` writes to a temporary directory
unless given one).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv"
RESULTS = HERE / "results"
#: The project, editable, with the extras the benchmarks use; and what each one provides.
PROJECT_REQUIREMENT = f"{ROOT}[cli,otel]"
PROJECT_MODULES = ["asyncdeleter", "click", "rich", "opentelemetry.trace"]
#: Each package the benchmarks need besides, by the module it provides.
BENCH_PACKAGES = {
    "httpx": "httpx",
    "matplotlib": "matplotlib",
    "huaweicloudsdkmodelarts": "huaweicloudsdkmodelarts",
    "huaweicloudsdkcore": "huaweicloudsdkcore",
    "opentelemetry-sdk": "opentelemetry.sdk",  # the tracing comparison's "SDK" variant
}

_MISSING = """\
import importlib.util, json, sys
missing = []
for name in sys.argv[1:]:
    try:
        found = importlib.util.find_spec(name) is not None
    except ImportError:
        found = False
    if not found:
        missing.append(name)
print(json.dumps(missing))
"""


# -- environment -------------------------------------------------------------------------


def ensure_environment() -> None:
    """Re-run this script inside benchmarks/.venv, creating it on first use.

    An existing environment gets what it lacks (an extra or a package added since it was
    made): each module is looked for, and only the missing packages are installed.
    """
    python = VENV / "bin" / "python"
    inside = Path(sys.prefix).resolve() == VENV.resolve()
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    if not inside and not python.exists():
        print("creating benchmarks/.venv (one time)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
    modules = [*PROJECT_MODULES, *BENCH_PACKAGES.values()]
    out = subprocess.run([str(python), "-I", "-c", _MISSING, *modules], capture_output=True,
                         text=True, check=True)  # fmt: skip
    missing = set(json.loads(out.stdout))
    wanted = [pkg for pkg, module in BENCH_PACKAGES.items() if module in missing]
    if missing & set(PROJECT_MODULES):
        wanted.insert(0, "-e")
        wanted.insert(1, PROJECT_REQUIREMENT)
    if wanted:
        print(f"installing into benchmarks/.venv: {' '.join(wanted)} ...", flush=True)
        subprocess.run([*pip, *wanted], check=True)
        importlib.invalidate_caches()
    if not inside:
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
    rounds: int, contenders: dict[str, Callable[[], object]], *, rotate: bool = False
) -> dict[str, list[object]]:
    """Run each contender once per round, in turn, so they share the machine's moods.

    With ``rotate``, each round starts one contender further on, so that none is always
    the one that runs first (or right after a given other).
    """
    samples: dict[str, list[object]] = {name: [] for name in contenders}
    names = list(contenders)
    for number in range(rounds):
        shift = number % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return samples


#: The sizes of each comparison: "smoke" only checks that the script runs end to end.
SCALES = ("smoke", "quick", "full")


def client_cost(base: str, scale: str) -> dict[str, dict[str, float | None]]:
    """nginx: CPU per request and throughput of every contender (C=100)."""
    import peers

    n, slow_n, rounds, c = {"smoke": (300, 100, 1, 20), "quick": (4000, 1000, 3, 100),
                            "full": (20000, 3000, 5, 100)}[scale]  # fmt: skip
    peers.raw_aiohttp(base, min(n, 500), c)  # warm up nginx and the interpreter
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


def latency_bound(scale: str) -> dict[str, dict[str, float | None]]:
    """The emulator with latency L in its own process: efficiency against ideal N*L/C."""
    import peers

    n, latency_ms, c, rounds = {"smoke": (200, 20, 20, 1), "quick": (2000, 50, 100, 3),
                                "full": (5000, 100, 100, 3)}[scale]  # fmt: skip
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


def listing(scale: str) -> dict[str, dict[str, float | None]]:
    """ListSqlSessions paged through: items/s and client CPU per item, against raw paging."""
    import peers

    n, page, rounds = {"smoke": (300, 100, 1), "quick": (3000, 100, 3),
                       "full": (10000, 100, 5)}[scale]  # fmt: skip
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


def memory(scale: str) -> list[dict[str, float]]:
    sizes = {"smoke": [1_000, 10_000], "quick": [1_000, 10_000, 100_000, 300_000],
             "full": [1_000, 10_000, 100_000, 1_000_000]}[scale]  # fmt: skip
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, str(HERE / "bulk_memory.py"), "--child", str(n)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        rows.append(json.loads(out.stdout))
    return rows


# -- tracing: its CPU cost, each variant in a process of its own ---------------------------

#: The variants of the tracing comparison, each by the mode of peers.py's tracing child.
TRACING_OFF = "tracing=False"
TRACING_NO_EXTRA = "tracing on, no otel extra"
TRACING_VARIANTS = {
    TRACING_OFF: "off",
    TRACING_NO_EXTRA: "no-extra",  # the default, with opentelemetry not importable
    "tracing on, API only": "api",  # opentelemetry-api installed, no provider set
    "tracing on, SDK": "sdk",  # a batch span processor and a metric reader, export dropped
}
BASELINE_PREFIX = "baseline "


def baseline_commit(ref: str) -> str:
    """The commit ``ref`` names in this repository (its full hash); stops if none."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode or not out.stdout.strip():
        raise SystemExit(f"--baseline {ref}: not a commit of this repository")
    return out.stdout.strip()


@contextmanager
def exported_tree(commit: str) -> Iterator[Path]:
    """The ``asyncdeleter`` package as of ``commit`` (``git archive``), in a temporary dir."""
    workdir = Path(tempfile.mkdtemp(prefix="asyncdeleter-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "asyncdeleter"],
            capture_output=True, check=True,
        )  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(workdir, filter="data")
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(workdir / "asyncdeleter")], check=True
        )
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def tracing_round(
    base: str, mode: str, *, tree: Path, n: int, c: int, warmup: int
) -> dict[str, float | None]:
    """One measured run of one variant: a fresh process importing ``asyncdeleter`` from ``tree``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(tree)
    command = [sys.executable, str(HERE / "peers.py"), "tracing-child", "--mode", mode,
               "--base", base, "--n", str(n), "--concurrency", str(c), "--warmup", str(warmup)]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE, check=False)
    if out.returncode:
        raise RuntimeError(f"the tracing child ({mode}) failed:\n{out.stderr[-4000:]}")
    sample: dict[str, float | None] = json.loads(out.stdout.splitlines()[-1])
    module = Path(str(sample.pop("module")))
    if not module.resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the tracing child ({mode}) imported {module}, not the tree in {tree}")
    traced = mode in ("api", "sdk")
    if mode == "baseline" and sample["otel_imported"]:
        raise RuntimeError(
            "the --baseline build imported opentelemetry with its defaults: it has the tracing "
            "feature already; name the commit before it (88349b6, say)"
        )
    if bool(sample["otel_imported"]) != traced:
        raise RuntimeError(
            f"the tracing child ({mode}) {'did not import' if traced else 'imported'} opentelemetry"
        )
    if mode == "sdk" and not sample["spans_per_call"]:
        raise RuntimeError("the tracing child (sdk) exported no span: the SDK was not in use")
    return sample


def tracing_cost(base: str, scale: str, baseline: tuple[str, Path] | None) -> dict[str, object]:
    """CPU per ``delete_workspace`` with tracing off and on, and of the build without it.

    The same nginx, N, C and warm-up for each; a fresh process per variant and round,
    rounds interleaved (and rotated); CPU is the whole child process's (every thread, so
    the SDK's batch processor too) over the N calls and a final flush.
    """
    n, warmup, rounds, c = {"smoke": (300, 100, 2, 20), "quick": (4000, 500, 11, 100),
                            "full": (20000, 1000, 9, 100)}[scale]  # fmt: skip
    contenders: dict[str, Callable[[], object]] = {
        name: functools.partial(tracing_round, base, mode, tree=ROOT, n=n, c=c, warmup=warmup)
        for name, mode in TRACING_VARIANTS.items()
    }
    if baseline is not None:
        commit, tree = baseline
        contenders[BASELINE_PREFIX + commit[:7]] = functools.partial(
            tracing_round, base, "baseline", tree=tree, n=n, c=c, warmup=warmup
        )
    samples: dict[str, list[dict[str, float]]] = interleaved(rounds, contenders, rotate=True)  # type: ignore[assignment]
    cpu = {name: [r["cpu_seconds"] / r["n"] * 1e6 for r in runs] for name, runs in samples.items()}
    off = cpu[TRACING_OFF]
    rows: dict[str, dict[str, object]] = {}
    for name, runs in samples.items():
        spans = [r["spans_per_call"] for r in runs if r["spans_per_call"] is not None]
        rows[name] = {
            "cpu_us": statistics.median(cpu[name]),
            "vs_off": statistics.median(cpu[name]) / statistics.median(off),
            "vs_off_paired": statistics.median(x / o for x, o in zip(cpu[name], off, strict=True)),
            "per_second": statistics.median(r["n"] / r["seconds"] for r in runs),
            "p50_ms": statistics.median(r["p50"] for r in runs) * 1000,
            "p99_ms": statistics.median(r["p99"] for r in runs) * 1000,
            "spans_per_call": statistics.median(spans) if spans else None,
            "cpu_us_rounds": [round(x, 2) for x in cpu[name]],
        }
    return {
        "n": n,
        "c": c,
        "rounds": rounds,
        "warmup": warmup,
        "baseline": baseline[0] if baseline is not None else None,
        "command": command_line(),
        "when": now(),
        "contenders": rows,
    }


# -- report ------------------------------------------------------------------------------


def command_line() -> str:
    return " ".join(["python benchmarks/run.py", *sys.argv[1:]])


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def targets(results: dict[str, object]) -> list[tuple[str, str, str]]:
    """Each target whose comparison is in ``results``: (what, measured, PASS or MISS)."""
    rows: list[tuple[str, str, str]] = []
    if "client_cost" in results:
        cost: dict[str, dict[str, float]] = results["client_cost"]  # type: ignore[assignment]
        cpu_ratio = cost["asyncdeleter (calls)"]["cpu_us"] / cost["raw aiohttp loop"]["cpu_us"]
        speedup = (
            cost["asyncdeleter (calls, AK/SK)"]["per_second"]
            / cost["official SDK (AK/SK)"]["per_second"]
        )
        rows += [
            ("CPU per request vs raw aiohttp (nginx, C=100, token)", f"{cpu_ratio:.3f}x (<= 1.10)", verdict(cpu_ratio <= 1.10)),
            ("throughput vs official SDK (nginx, both AK/SK)", f"{speedup:.1f}x (>= 6)", verdict(speedup >= 6)),
        ]  # fmt: skip
    if "signer_us" in results:
        signer = float(results["signer_us"])  # type: ignore[arg-type]
        rows.append(
            ("AK/SK signing per request", f"{signer:.1f} us (<= 30)", verdict(signer <= 30))
        )
    if "latency_bound" in results:
        lat: dict[str, dict[str, float]] = results["latency_bound"]  # type: ignore[assignment]
        eff_ratio = (
            lat["asyncdeleter (calls)"]["efficiency"] / lat["raw aiohttp loop"]["efficiency"]
        )
        rows.append(
            (
                "latency-bound efficiency vs raw aiohttp",
                f"{eff_ratio:.3f}x (>= 0.97)",
                verdict(eff_ratio >= 0.97),
            )
        )
    if "import_ms" in results:
        imports: dict[str, float] = results["import_ms"]  # type: ignore[assignment]
        import_ratio = imports["asyncdeleter"] / imports["dependencies"]
        rows.append(
            (
                "import time vs aiohttp+attrs+cattrs+backoff",
                f"{import_ratio:.3f}x (<= 1.10)",
                verdict(import_ratio <= 1.10),
            )
        )
    if "memory" in results:
        mem: list[dict[str, float]] = results["memory"]  # type: ignore[assignment]
        by_n = {int(r["n"]): r["peak_rss_mib"] for r in mem}
        largest = max(by_n)
        reference = 100_000 if 100_000 in by_n else min(by_n)
        rss_ratio = by_n[largest] / by_n[reference]
        rows.append(
            (
                f"peak RSS N={largest:,} vs N={reference:,} (streamed)",
                f"{rss_ratio:.3f}x (<= 1.3)",
                verdict(rss_ratio <= 1.3),
            )
        )
    if "listing" in results:
        listed: dict[str, dict[str, float]] = results["listing"]  # type: ignore[assignment]
        list_ratio = (
            listed["asyncdeleter list_sessions"]["items_per_second"]
            / listed["raw aiohttp paging"]["items_per_second"]
        )
        rows.append(
            (
                "list_sessions items/s vs raw aiohttp paging",
                f"{list_ratio:.3f}x (>= 0.50)",
                verdict(list_ratio >= 0.50),
            )
        )
    if "tracing" in results:
        rows += tracing_targets(results["tracing"])  # type: ignore[arg-type]
    return rows


def tracing_targets(tracing: dict[str, object]) -> list[tuple[str, str, str]]:
    """Issue 15's "no cost": tracing off, or no otel extra, within 1.03x of the build without it."""
    contenders: dict[str, dict[str, float]] = tracing["contenders"]  # type: ignore[assignment]
    baseline = next((name for name in contenders if name.startswith(BASELINE_PREFIX)), None)
    if baseline is None:
        return [("CPU per call, tracing=False vs the build without the feature",
                 "not measured: run with --baseline REF", "SKIP")]  # fmt: skip
    rows = []
    for name in (TRACING_OFF, TRACING_NO_EXTRA):
        ratio = contenders[name]["cpu_us"] / contenders[baseline]["cpu_us"]
        rows.append((f"CPU per call, {name} vs {baseline} (without the feature)", f"{ratio:.3f}x (<= 1.03)", verdict(ratio <= 1.03)))  # fmt: skip
    return rows


def tracing_markdown(tracing: dict[str, object]) -> list[str]:
    contenders: dict[str, dict[str, float | None]] = tracing["contenders"]  # type: ignore[assignment]
    lines = [
        f"## Tracing: CPU per call (DeleteWorkspace, nginx, C={tracing['c']}, N={int(tracing['n']):,})",  # type: ignore[call-overload]
        "",
        f"`{tracing['command']}`, {tracing['when']}. Each variant runs in a process of its own,"
        f" one per round ({tracing['rounds']} rounds, interleaved and rotated), after a warm-up of"
        f" {tracing['warmup']} calls; the CPU is the whole process's (every thread: the SDK's"
        " batch span processor too) over the N calls and a final flush. Medians of the rounds.",
        "",
        "<!-- tracing-cost -->",
        "| contender | CPU µs/call | vs tracing=False |",
        "|---|---:|---:|",
        *[f"| {name} | {row['cpu_us']:.1f} | {row['vs_off']:.3f}x |" for name, row in contenders.items()],
        "<!-- /tracing-cost -->",
        "",
        "- tracing=False: `SessionManager(tracing=False)`; nothing of OpenTelemetry is imported.",
        "- no otel extra: the default (`tracing=True`) where `opentelemetry` cannot be imported.",
        "- API only: `opentelemetry-api` installed and no provider set (spans do not record).",
        "- SDK: a `TracerProvider` with a `BatchSpanProcessor` and a `MeterProvider` with a"
        " periodic reader, both exporters dropping what they are handed: what an exporting"
        " application pays, minus the export.",
    ]  # fmt: skip
    if tracing["baseline"] is not None:
        lines.append(
            f"- baseline: the `asyncdeleter` package of commit {tracing['baseline']} (`git archive`),"
            " with its defaults, in the same venv."
        )
    else:
        lines.append(
            "- no baseline: run with `--baseline REF` to measure the build without the feature."
        )
    lines += [
        "",
        "| contender | requests/s | p50 ms | p99 ms | spans/call | vs tracing=False, per round | CPU µs/call, each round |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for name, row in contenders.items():
        spans = "-" if row["spans_per_call"] is None else f"{row['spans_per_call']:.2f}"
        each = ", ".join(f"{x:.0f}" for x in row["cpu_us_rounds"])  # type: ignore[attr-defined]
        lines.append(
            f"| {name} | {row['per_second']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {spans}"
            f" | {row['vs_off_paired']:.3f}x | {each} |"
        )  # fmt: skip
    lines.append("")
    return lines


def markdown(results: dict[str, object]) -> str:
    """results.md: the targets, then each comparison that ``results`` holds."""
    command = (
        results.get("command")
        or f"python benchmarks/run.py{' --quick' if results.get('quick') else ''}"
    )
    when = f", {results['when']}" if results.get("when") else ""
    lines = [
        "# Benchmark results",
        "",
        f"`{command}` on {results.get('host', platform.node() or 'this machine')}"
        f" ({results.get('cores', os.cpu_count())} cores, Python {results.get('python', platform.python_version())})"
        f"{when}. Medians of interleaved rounds.",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in targets(results)],
        "",
    ]  # fmt: skip
    if "client_cost" in results:
        lines += client_cost_markdown(results)
    if "latency_bound" in results:
        lines += latency_markdown(results["latency_bound"])  # type: ignore[arg-type]
    if "listing" in results:
        lines += listing_markdown(results["listing"])  # type: ignore[arg-type]
    if "tracing" in results:
        lines += tracing_markdown(results["tracing"])  # type: ignore[arg-type]
    if "import_ms" in results and "memory" in results:
        lines += memory_markdown(results)
    return "\n".join(lines)


def client_cost_markdown(results: dict[str, object]) -> list[str]:
    cost: dict[str, dict[str, float | None]] = results["client_cost"]  # type: ignore[assignment]
    raw_cpu = float(cost["raw aiohttp loop"]["cpu_us"] or 1)
    official = float(cost["official SDK (AK/SK)"]["per_second"] or 1)
    lines = [
        "## Client cost: nginx answering canned 200s, C=100",
        "",
        "| contender | requests/s | CPU µs/request | vs raw aiohttp (CPU) | vs official SDK (req/s) | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for name, row in cost.items():
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}"
        p99 = "-" if row["p99_ms"] is None else f"{row['p99_ms']:.2f}"
        lines.append(
            f"| {name} | {row['per_second']:,.0f} | {row['cpu_us']:.0f} | {float(row['cpu_us'] or 0) / raw_cpu:.2f}x"
            f" | {float(row['per_second'] or 0) / official:.1f}x | {p50} | {p99} |"
        )  # fmt: skip
    lines += [
        "",
        f"The official SDK's async client runs on its own thread pool of {results['official_workers']} workers"
        " (its ceiling, whatever concurrency is asked); it signs with AK/SK only, so it is compared"
        " with asyncdeleter's AK/SK row. asyncdeleter's rows here run with `tracing=False`, the path"
        " of an application without the otel extra; what tracing costs is measured on its own below.",
        "",
    ]  # fmt: skip
    return lines


def latency_markdown(lat: dict[str, dict[str, float | None]]) -> list[str]:
    any_lat = next(iter(lat.values()))
    lines = [
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
    lines.append("")
    return lines


def listing_markdown(listed: dict[str, dict[str, float]]) -> list[str]:
    any_list = next(iter(listed.values()))
    return [
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
        "",
    ]  # fmt: skip


def memory_markdown(results: dict[str, object]) -> list[str]:
    imports: dict[str, float] = results["import_ms"]  # type: ignore[assignment]
    return [
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


def plots(results: dict[str, object], out_dir: Path) -> None:
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
        fig.savefig(out_dir / filename, dpi=110)
        plt.close(fig)
    mem: list[dict[str, float]] = results["memory"]  # type: ignore[assignment]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot([r["n"] for r in mem], [r["peak_rss_mib"] for r in mem], marker="o", color="#2a7")
    ax.set_xscale("log")
    ax.set_ylim(0, max(r["peak_rss_mib"] for r in mem) * 1.5)
    ax.set_xlabel("sessions closed in one streamed bulk run (N)")
    ax.set_ylabel("peak RSS, MiB")
    fig.tight_layout()
    fig.savefig(out_dir / "memory.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: under two minutes")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny runs, only to check the script end to end (written to a temporary "
        "directory unless --results is given)",
    )
    parser.add_argument(
        "--only",
        choices=["tracing"],
        help="run this comparison alone and merge it into the results already in --results",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="a git ref (the commit before the tracing feature, say): its asyncdeleter is "
        "measured beside tracing=False, for the 'no cost' target",
    )
    parser.add_argument(
        "--results", type=Path, help="where to write results.json, results.md and the plots"
    )
    parser.add_argument(
        "--install-nginx",
        action="store_true",
        help=f"install nginx ({NGINX_PACKAGE}) with apt-get if it is missing",
    )
    args = parser.parse_args()
    nginx_path = nginx_binary(args.install_nginx)  # before the long one-time setup
    commit = baseline_commit(args.baseline) if args.baseline else None
    ensure_environment()
    sys.path.insert(0, str(HERE))
    scale = "smoke" if args.smoke else "quick" if args.quick else "full"
    out_dir: Path = args.results or (
        Path(tempfile.mkdtemp(prefix="asyncdeleter-bench-")) if args.smoke else RESULTS
    )
    started = time.monotonic()
    if commit is None:
        print("no --baseline REF: the build without the feature is not measured", flush=True)
    previous = out_dir / "results.json"
    if args.only is not None and previous.exists():  # merged into the run already written
        results: dict[str, object] = json.loads(previous.read_text())
    else:
        results = {"quick": args.quick, "scale": scale, "command": command_line(), "when": now(),
                   "host": platform.node() or "this machine", "cores": os.cpu_count(),
                   "python": platform.python_version()}  # fmt: skip
    measure(results, nginx_path, scale, commit, only=args.only)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = markdown(results)
    (out_dir / "results.md").write_text(report)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    if args.only is None:
        plots(results, out_dir)
    print()
    print(report)
    shown = out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir
    print(f"\n(took {time.monotonic() - started:.0f} s; written to {shown}/)")
    return 0


def measure(
    results: dict[str, object], nginx_path: str, scale: str, commit: str | None, only: str | None
) -> None:
    """Run the comparisons (``only`` the one named, if any) into ``results``."""
    import peers

    with contextlib.ExitStack() as stack:
        baseline = None
        if commit is not None:
            baseline = (commit, stack.enter_context(exported_tree(commit)))
        base = stack.enter_context(nginx(nginx_path))
        if only is None:
            print("client cost (nginx)...", flush=True)
            results["client_cost"] = client_cost(base, scale)
        print("tracing: CPU per call, each variant in its own process (nginx)...", flush=True)
        results["tracing"] = tracing_cost(base, scale, baseline)
    if only is not None:
        return
    results["official_workers"] = peers.official_sdk_workers()
    print("latency-bound (emulator in its own process)...", flush=True)
    results["latency_bound"] = latency_bound(scale)
    print("listing (emulator in its own process)...", flush=True)
    results["listing"] = listing(scale)
    print("signer, import time, memory...", flush=True)
    results["signer_us"] = signer_us()
    results["import_ms"] = import_times({"smoke": 2, "quick": 5, "full": 11}[scale])
    results["memory"] = memory(scale)


if __name__ == "__main__":
    raise SystemExit(main())
