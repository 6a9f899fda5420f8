"""What a person sees: a progress bar on a terminal, plain lines otherwise, a summary."""

from __future__ import annotations

import sys
import time
from typing import IO, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from asyncdeleter._bulk import BulkReport, OutcomeKind

__all__ = ["Display"]

_PLAIN_EVERY: Final = 2.0  # seconds between plain progress lines when not on a terminal


class Display:
    """Progress and summary on stderr; silent with ``quiet``."""

    def __init__(self, *, quiet: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.console = Console(file=self.stream, highlight=False)
        self.interactive = self.stream.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._started = 0.0
        self._last_plain = 0.0
        self.done = self.retries = self.failed = 0

    def message(self, text: str) -> None:
        """A line for the person at the terminal (errors are never silenced)."""
        self.console.print(text, markup=False)

    def note(self, text: str) -> None:
        """A line that ``--quiet`` silences."""
        if not self.quiet:
            self.message(text)

    def start(self, label: str, total: int | None) -> None:
        """Begin showing progress of one bulk run."""
        self._label = label
        self._started = self._last_plain = time.monotonic()
        self.done = self.retries = self.failed = 0
        if self.quiet or not self.interactive:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7.0f}/s"),
            TextColumn("retries {task.fields[retries]}"),
            TextColumn("[red]failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, rate=0.0, retries=0, failed=0)

    def advance(self, kind: OutcomeKind, attempts: int) -> None:
        """Count one finished item."""
        self.done += 1
        self.retries += max(0, attempts - 1)
        if kind in (OutcomeKind.FAILED, OutcomeKind.INVALID):
            self.failed += 1
        now = time.monotonic()
        rate = self.done / max(now - self._started, 1e-9)
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=self.done, rate=rate, retries=self.retries, failed=self.failed
            )
        elif not self.quiet and now - self._last_plain >= _PLAIN_EVERY:
            self._last_plain = now
            self.message(
                f"{self._label}: {self.done} done, {rate:.0f}/s, "
                f"{self.retries} retries, {self.failed} failed"
            )

    def finish(self) -> None:
        """Stop the progress bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def summary(self, title: str, report: BulkReport[object], *, malformed: int = 0) -> None:
        """The table printed at the end: counts, throughput, retries, latency."""
        if self.quiet:
            return
        table = Table(title=title, show_header=True, header_style="bold")
        table.add_column("result")
        table.add_column("items", justify="right")
        rows = [
            ("succeeded", report.succeeded),
            ("already_gone", report.already_gone),
            ("failed", report.failed),
            ("invalid", report.invalid + malformed),
            ("skipped", report.skipped),
        ]
        for name, count in rows:
            table.add_row(name, f"{count:,}")
        table.add_section()
        sent = report.succeeded + report.already_gone + report.failed
        rate = sent / report.elapsed if report.elapsed > 0 else 0.0
        table.add_row("throughput", f"{rate:,.0f}/s")
        table.add_row("requests (retries)", f"{report.attempts:,} ({report.retries:,})")
        for name, value in (("p50", report.latency_p50), ("p95", report.latency_p95),
                            ("p99", report.latency_p99)):  # fmt: skip
            table.add_row(f"latency {name}", "-" if value is None else f"{value * 1000:,.1f} ms")
        table.add_row("elapsed", f"{report.elapsed:,.2f} s")
        self.console.print(table)
