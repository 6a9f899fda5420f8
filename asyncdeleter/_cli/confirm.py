"""The confirmation: on a terminal, show what is about to go and make the person type its scope.

As terraform's ``apply`` does, a destructive run that cannot ask (stdin or stderr is not
a terminal) refuses unless ``--yes`` says the caller has decided already.
"""

from __future__ import annotations

import sys

import click

from asyncdeleter._cli.display import Display
from asyncdeleter._cli.lines import Target, printable
from asyncdeleter._cli.settings import Settings
from asyncdeleter._cli.teardown import Prescan

__all__ = ["can_ask", "confirm", "confirmation_word"]


def can_ask() -> bool:
    """Whether a person can be asked: stdin and stderr are both a terminal."""
    # A stream closed at start (``<&-``) is None in sys: no terminal, no person to ask.
    return all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.stderr))


def confirmation_word(settings: Settings, scope: str | None) -> tuple[str, str]:
    """What the person must type, and what it is called: the scope they agree to."""
    return settings.op.confirmation(settings.endpoint, settings.project_id, scope)


def _shown(target: Target) -> str:
    return " ".join(target) if isinstance(target, tuple) else target


def confirm(
    display: Display,
    settings: Settings,
    scope: str | None,
    counts: Prescan | None,
    source_name: str,
    *,
    notes: tuple[str, ...] = (),
) -> bool:
    """Show the plan and ask for the scope word; ``True`` only if it was typed exactly.

    ``notes``: more lines to show about the plan (a sweep's filters).
    """
    op = settings.op
    amount = "an unknown number of" if counts is None else f"{counts.to_run:,}"
    display.message(f"About to {op.verb} {amount} {op.noun} at {settings.endpoint}")
    if op.project_scoped:
        display.message(f"  in project {settings.project_id} (--project-id)")
    elif scope is not None and op.sweeps:
        display.message(f"  in workspace {scope} (--workspace-id)")
    elif scope is not None:
        display.message(
            f"  in workspace {scope} (--workspace-id): lines naming another are refused"
        )
    for note in notes:
        display.message(f"  {note}")
    if counts is not None:
        if counts.sample:
            more = ", ..." if counts.to_run > len(counts.sample) else ""
            first = ", ".join(printable(_shown(t)) for t in counts.sample)
            display.message(f"  from {source_name}: {first}{more}")
        if counts.refused:
            display.message(
                f"  {counts.refused:,} line(s) will be refused (invalid, protected or out of scope)"
            )
        if counts.done_before:
            display.message(f"  {counts.done_before:,} line(s) done before, not sent again")
    else:
        display.message(f"  from {source_name}, read as it comes")
    display.message("This cannot be undone.")
    what, word = confirmation_word(settings, scope)
    try:
        answer = click.prompt(
            printable(f"Type the {what} ({word}) to go on", limit=None),
            err=True,
            default="",
            show_default=False,
        )
    except click.Abort:
        display.message("")
        return False
    return isinstance(answer, str) and answer.strip() == word and bool(word)
