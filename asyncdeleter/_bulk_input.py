"""The input of a bulk run: read lazily, by one worker at a time, and never past a stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Final

from asyncdeleter._calls import StopSignal

__all__ = ["BulkInput"]

_log: Final = logging.getLogger("asyncdeleter")


class BulkInput:
    """Any iterable or async iterable, read one item at a time.

    Attributes:
        exhausted: Everything was read (or accounted for).
        pulled: Items read so far: the index of the next one.
        puller: The worker waiting on an async input right now, if any.
    """

    def __init__(self, source: Iterable[object] | AsyncIterable[object]) -> None:
        self.source = source
        self._sync_items: Iterator[object] | None = None
        self._async_items: AsyncIterator[object] | None = None
        self._lock = asyncio.Lock()
        self.exhausted = False
        self.pulled = 0
        self.puller: asyncio.Task[object] | None = None

    def open(self) -> None:
        """Start reading (when the run starts, not when it is built)."""
        if isinstance(self.source, AsyncIterable):
            self._async_items = aiter(self.source)
        else:
            self._sync_items = iter(self.source)

    def interrupt(self) -> None:
        """A worker waiting on an async input stops waiting for it (the run stopped)."""
        puller = self.puller
        if puller is not None and puller is not asyncio.current_task():
            puller.cancel()

    async def pull(self, stop: StopSignal) -> tuple[int, object] | None:
        """The next item with its index, or ``None`` once the input is exhausted or stopped."""
        if self.exhausted:
            return None
        if self._sync_items is not None:
            try:
                item = next(self._sync_items)
            except StopIteration:
                self.exhausted = True
                return None
        else:
            assert self._async_items is not None  # noqa: S101 - set in open()
            # An async generator cannot be advanced by two workers at once.
            async with self._lock:
                if self.exhausted or stop.stopped:
                    return None
                self.puller = asyncio.current_task()
                try:
                    item = await anext(self._async_items)
                except StopAsyncIteration:
                    self.exhausted = True
                    return None
                finally:
                    self.puller = None
        index = self.pulled
        self.pulled += 1
        return index, item

    def unread(self) -> Iterator[tuple[int, object]]:
        """A sized input (a ``Sequence``) cut short: each item never read, with its index.

        Other inputs yield nothing: they are read no further (an endless generator stays
        endless), and ``pulled`` says where they resume.
        """
        source = self.source
        if self.exhausted or not isinstance(source, Sequence):
            return
        for index in range(self.pulled, len(source)):
            self.pulled = index + 1
            yield index, source[index]
        self.exhausted = True

    async def close(self) -> None:
        """Let a generator input run its own clean-up now, not at garbage collection."""
        items = self._async_items if self._async_items is not None else self._sync_items
        try:
            if isinstance(items, AsyncGenerator):
                await items.aclose()
            elif isinstance(items, Generator):
                items.close()
        except Exception:  # noqa: BLE001 - the input's clean-up must not hide the run's end
            _log.exception("closing the bulk run's input failed")
