"""What a person sees: a progress bar on a terminal, plain lines otherwise, a summary.

Messages are never hard-wrapped (a log file must stay greppable), and every line goes
through ``printable`` here, at the output boundary: anything that came from the input or
a server is shown with its control characters escaped, wherever it was quoted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

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

from asyncdeleter import BulkReport, OutcomeKind
from asyncdeleter._cli.lines import printable
from asyncdeleter._cli.operations import Operation
from asyncdeleter._cli.report import RESULTS, Reasons

__all__ = ["Display"]

_PLAIN_EVERY: Final = 2.0  # seconds between plain progress lines when not on a terminal
#: Warn when at least this share of the items sent were already gone.
_ALREADY_GONE_SHARE: Final = 0.9


class Display:
    """Progress and summary on stderr; ``quiet`` silences both, never errors or warnings."""

    def __init__(self, *, quiet: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.interactive = self.stream.isatty()
        # Off a terminal, rich would wrap at 80 columns: give it room instead.
        self.console = Console(
            file=self.stream,
            highlight=False,
            soft_wrap=True,
            width=None if self.interactive else 200,
        )
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._label = ""
        self._started = 0.0
        self._last_plain = 0.0
        self.done = self.retries = self.failed = 0
        #: What the requests beyond each item's first are: with --wait, polls count too.
        self.retries_label = "retries"

    def message(self, text: str) -> None:
        """A line for the person at the terminal (errors and warnings are never silenced).

        It is escaped here (``printable``, never cut): it may quote a server.
        """
        text = printable(text, limit=None)
        if self._progress is not None:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

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
            TextColumn(f"{self.retries_label} {{task.fields[retries]}}"),
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
                f"{self._label}: {self.done:,} done, {rate:,.0f}/s, "
                f"{self.retries:,} {self.retries_label}, {self.failed:,} failed"
            )

    def finish(self) -> None:
        """Stop the progress bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def summary(
        self,
        title: str,
        counts: Mapping[str, int],
        report: BulkReport[Any] | None,
        reasons: Reasons | None = None,
    ) -> None:
        """The table printed at the end, then the commonest reasons for failures."""
        if not self.quiet:
            table = Table(title=title, show_header=True, header_style="bold")
            table.add_column("result")
            table.add_column("items", justify="right")
            for name in RESULTS:
                if counts.get(name) or name in ("succeeded", "already_gone", "failed"):
                    table.add_row(name, f"{counts.get(name, 0):,}")
            if report is not None:
                self._figures(table, report, self.retries_label)
            self.console.print(table)
        if reasons is not None and counts.get("failed"):
            lines = reasons.commonest()
            self.message(f"why {counts['failed']:,} item(s) failed (commonest first):")
            for line in lines:
                self.message(f"  {line}")

    @staticmethod
    def _figures(table: Table, report: BulkReport[Any], retries_label: str) -> None:
        table.add_section()
        sent = report.succeeded + report.already_gone + report.failed
        rate = sent / report.elapsed if report.elapsed > 0 else 0.0
        table.add_row("throughput", f"{rate:,.0f}/s")
        table.add_row(f"requests ({retries_label})", f"{report.attempts:,} ({report.retries:,})")
        throttled = getattr(report, "throttled", None)
        if throttled is not None:
            seconds = getattr(report, "throttled_seconds", None)
            shown = f"{throttled:,}" + (f" ({seconds:,.1f} s waited)" if seconds else "")
            table.add_row("throttled (429)", shown)
        for name, value in (("p50", report.latency_p50), ("p95", report.latency_p95),
                            ("p99", report.latency_p99)):  # fmt: skip
            table.add_row(f"latency {name}", "-" if value is None else f"{value * 1000:,.1f} ms")
        table.add_row("elapsed", f"{report.elapsed:,.2f} s")

    def already_gone_warning(
        self, op: Operation, counts: Mapping[str, int], project_id: str | None
    ) -> None:
        """Warn when nearly everything sent was already gone: the target may be wrong."""
        gone = counts.get("already_gone", 0)
        sent = gone + counts.get("succeeded", 0) + counts.get("failed", 0)
        if not sent or gone < _ALREADY_GONE_SHARE * sent:
            return
        endpoint = f"--{op.service}-endpoint"
        if op.project_scoped:
            where = f"is --project-id {project_id} right, and the region or {endpoint}?"
        else:
            where = f"are the workspace ids, the region or {endpoint} right?"
        self.message(
            f"warning: {gone:,} of {sent:,} item(s) were already gone: {where} "
            "(or was this input done before?)"
        )

    def resume_hint(
        self, op: Operation, left: int, report_path: str | None, *, incomplete: bool
    ) -> None:
        """How to finish the job after an interruption (``left``: items not done)."""
        command = f"asyncdeleter {op.command}"
        if op.sweeps:
            replay = (
                f"replay them with {command} --retry-from {report_path} --apply, or "
                if report_path and left
                else ""
            )
            unlisted = " (and the listing was not read to its end)" if incomplete else ""
            self.message(
                f"{left:,} item(s) not done{unlisted}: {replay}run the sweep again (it lists "
                "afresh; what is gone stays gone)"
            )
        elif report_path is None:
            self.message(
                f"{left:,} item(s) not done and no --report was given: run {command} again "
                "with the same input (items already gone count as done)"
            )
        elif incomplete:
            self.message(
                f"{left:,} item(s) not done and the input was not read to its end: finish "
                f"with {command} --retry-from {report_path} INPUT"
            )
        else:
            self.message(
                f"{left:,} item(s) not done: finish with {command} --retry-from {report_path}"
            )
