"""Where a run's lines come from: a regular file, an earlier report, or a stream.

A regular file (an input or a ``--retry-from`` report) is first copied to a private file
with no name (``private_copy``), and the run reads only the copy: the bytes counted and
shown at the prompt are the bytes it sends, whatever happens to the file meanwhile. The
copy is read on the event loop: it never blocks for long, and it ends. A pipe or a
terminal may wait for its next line for ever, so it is read by a helper thread that hands
lines over through a bounded queue: the event loop keeps answering responses and Ctrl-C
while the producer is silent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, TYPE_CHECKING, Final

from asyncdeleter._cli.lines import Line
from asyncdeleter._cli.settings import UsageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["PrivateCopy", "Source", "private_copy"]

_READ_AHEAD: Final = 1024  # lines a stream's reader thread may hold for the run
_YIELD_EVERY: Final = 500  # lines read from a file between chances for a signal to land


class _Positioned(io.RawIOBase):
    """One reader of a descriptor, at its own position (``pread``): readers never meet."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = os.pread(self._fd, len(view), self._at)
        view[: len(data)] = data
        self._at += len(data)
        return len(data)


class PrivateCopy:
    """A file's bytes as they were when copied, in a file with no name, mode 0600.

    Nothing but this process can reach it, and nothing is left behind however the
    process ends (even ``kill -9``): its name was removed as soon as it was created.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def open(self) -> IO[bytes]:
        """The copy from its first byte: each call is a reader of its own."""
        return io.BufferedReader(_Positioned(self._fd))


@contextlib.contextmanager
def private_copy(path: str, what: str) -> Iterator[PrivateCopy]:
    """Copy the regular file at ``path`` to a ``PrivateCopy``, kept until the block ends.

    ``what`` names the file in messages (``--retry-from``).

    Raises:
        UsageError: ``path`` cannot be read (removed since it was named, say), or the
            copy cannot be written (a full disk: ``TMPDIR`` says where it goes).
    """
    try:
        fd, name = tempfile.mkstemp(prefix="asyncdeleter-", suffix=".copy")  # mode 0600
        os.unlink(name)
    except OSError as exc:
        raise UsageError(
            f"cannot make a private copy of {what} {path} in {tempfile.gettempdir()} "
            f"(TMPDIR): {exc.strerror or exc}"
        ) from None
    try:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - its errors are told apart below
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
        with stream, open(fd, "wb", closefd=False) as out:
            try:
                shutil.copyfileobj(stream, out)
                out.flush()
            except OSError as exc:
                raise UsageError(
                    f"cannot copy {what} {path} to a private file in "
                    f"{tempfile.gettempdir()} (TMPDIR): {exc.strerror or exc}"
                ) from None
        yield PrivateCopy(fd)
    finally:
        os.close(fd)


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
        self._ahead: collections.deque[Line] = collections.deque()  # peeked, not handed out
        self._end: _End | None = None  # the end of a stream, met while peeking

    async def peek(self, wanted: Callable[[Line], bool], limit: int) -> Line | None:
        """Read ahead to the first line ``wanted`` accepts, within ``limit`` lines.

        Every line read ahead is still handed out, in order, by ``__iter__`` or ``each``.
        ``None`` when the input ended, or ``limit`` lines held none (a stream may wait for
        its lines: cancel the caller to give up).
        """
        found = next((line for line in self._ahead if wanted(line)), None)
        while found is None and len(self._ahead) < limit and not self._stopped:
            line = next(self._lines, None) if self.regular else await self._peek_stream()
            if line is None:
                break
            self._ahead.append(line)
            if wanted(line):
                found = line
        return found

    async def _peek_stream(self) -> Line | None:
        """The reader thread's next line, or ``None`` at the end (kept for ``each``)."""
        if self._end is not None:
            return None
        item = await self._from_reader()
        if isinstance(item, _End):
            if item.final:
                self._end = item
            return None
        return item

    async def _from_reader(self) -> Line | _End:
        if self._queue is None:
            self._start()
        assert self._queue is not None  # noqa: S101 - set by _start
        item = await self._queue.get()
        if not (isinstance(item, _End) and not item.final):
            self._room.release()  # a line (or the end) the reader thread handed over
        return item

    async def _receive(self) -> Line | _End:
        """A stream's next item: the lines read ahead first, then the reader thread's."""
        if self._ahead:
            return self._ahead.popleft()
        if self._end is not None:
            end, self._end = self._end, None
            return end
        return await self._from_reader()

    def _took(self, line: Line) -> Line:
        if self.next_line is not None:
            self.next_line = line.number + 1
        return line

    def __iter__(self) -> Iterator[Line]:
        """The lines, synchronously: for a regular file only."""
        while self._ahead:
            yield self._took(self._ahead.popleft())
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
        while not self._ended and not self._stopped:
            item = await self._receive()
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
