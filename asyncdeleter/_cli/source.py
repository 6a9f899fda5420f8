"""Where a run's lines come from: a regular file, an earlier report, or a stream.

A regular file is read on the event loop: it never blocks for long, and it ends. A pipe or
a terminal may wait for its next line for ever, so it is read by a helper thread that
hands lines over through a bounded queue: the event loop keeps answering responses and
Ctrl-C while the producer is silent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Final

from asyncdeleter._cli.lines import Line

__all__ = ["Source"]

_READ_AHEAD: Final = 1024  # lines a stream's reader thread may hold for the run
_YIELD_EVERY: Final = 500  # lines read from a file between chances for a signal to land


class _End:
    """The end of the lines.

    ``final``: the stream ended (or reading it raised ``error``); otherwise the run asked
    for no more lines.
    """

    def __init__(self, error: BaseException | None, *, final: bool) -> None:
        self.error = error
        self.final = final


class Source:
    """The lines of one run, each read once, and where the reading stopped.

    Args:
        lines: The lines, parsed.
        regular: They come from a regular file (or a list): reading the rest is finite and
            cannot block, so an interrupted run records it. Otherwise it is a stream.
        numbered: Line numbers increase as the lines are read (not so for a report, whose
            records are in completion order).
    """

    def __init__(self, lines: Iterator[Line], *, regular: bool, numbered: bool) -> None:
        self._lines = lines
        self.regular = regular
        #: The number of the first line not yet handed out (``None``: not meaningful).
        self.next_line: int | None = 1 if numbered else None
        self._queue: asyncio.Queue[Line | _End] | None = None
        self._room = threading.Semaphore(_READ_AHEAD)
        self._ended = False
        self._stopped = False
        #: Every line was read: the input ended (not merely the reading of it).
        self.exhausted = False

    def _took(self, line: Line) -> Line:
        if self.next_line is not None:
            self.next_line = line.number + 1
        return line

    def __iter__(self) -> Iterator[Line]:
        """The lines, synchronously: for a regular file only."""
        for line in self._lines:
            yield self._took(line)
        self.exhausted = True

    def stop(self) -> None:
        """Hand out no more lines: a reader waiting on a silent stream returns at once."""
        self._stopped = True
        if self._queue is not None:
            self._queue.put_nowait(_End(None, final=False))

    async def each(self) -> AsyncIterator[Line]:
        """The rest of the lines, letting the event loop run between them."""
        if self.regular:
            for count, line in enumerate(self, 1):
                yield line
                if count % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            return
        if self._queue is None:
            self._start()
        assert self._queue is not None  # noqa: S101 - set by _start
        while not self._ended and not self._stopped:
            item = await self._queue.get()
            if not (isinstance(item, _End) and not item.final):
                self._room.release()  # a line (or the end) the reader thread handed over
            if isinstance(item, _End):
                if item.final:
                    self._ended = self.exhausted = True
                if item.error is not None:
                    raise item.error
                return
            if self._stopped:
                return
            yield self._took(item)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Line | _End] = asyncio.Queue()
        self._queue = queue

        def hand_over(item: Line | _End) -> bool:
            self._room.acquire()  # a bounded read-ahead: the producer waits here
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the run is over
                return False
            return True

        def pump() -> None:
            try:
                for line in self._lines:
                    if not hand_over(line):
                        return
            except Exception as exc:  # noqa: BLE001 - handed to the run, which reports it
                hand_over(_End(exc, final=True))
                return
            hand_over(_End(None, final=True))

        # A daemon: a thread blocked on a silent pipe must not keep the process alive.
        threading.Thread(target=pump, name="asyncdeleter-input", daemon=True).start()
