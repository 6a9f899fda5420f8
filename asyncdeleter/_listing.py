"""Paging that survives deletion: each item that existed when a listing started, once.

Both services page by offset, and offsets shift under deletion (docs/api-facts.md, section 5): read
page 2 after closing page 1 and a page's worth of items is skipped. A listing here keeps
the ids it has yielded (O(N) ids, by necessity) and chooses every next offset so that it
cannot pass an item it has not seen:

- The listing is in a stable order, and it reads front to back, so the items it has seen
  are always a prefix of the current list (new items may appear after them).
- Every next offset is a *lower bound* on the position of the last seen item still
  present. Two such bounds are known: the count of seen items minus those this manager
  has started deleting (counted when the DELETE starts, so in-flight deletions are
  assumed done), and the last item of the page just read minus the deletions started
  since. The larger is used; a page then starts on a seen item and runs on past it, so
  nothing between is missed and seen items are skipped.
- Someone else deleting seen items breaks the first bound; a page that does not start on
  a seen item shows it, and the listing steps back a page and trusts only the second.
- ModelArts documents ``offset`` as a "start page". The first full page is followed by a
  probe at offset 1 (before any item is yielded, so nothing of ours moved): if it starts
  inside the first page, offsets count records, else pages. With page offsets a request
  starts at a multiple of its limit, so each request picks the limit whose page starts
  at or before the bound and reaches furthest past it: every bound stays a lower bound.

Cost: about one page per page of items when nothing is deleted; under deletion, pages
overlap by what was deleted meanwhile, at most about twice the pages of a plain listing.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar

__all__ = ["DeletionWatch", "Listing", "Page"]

T = TypeVar("T")

#: One page: the items, and the service's total (unused: it moves under deletion).
Page = Sequence[Any]
#: Fetches the page at ``offset`` (in the service's unit) of ``limit`` items.
FetchPage = Callable[[int, int], Awaitable[Sequence[T]]]

#: How many times in a row a listing may find its offset past unseen items before it gives
#: up on offsets as a position and starts again from the top (still exactly once).
_MAX_STEP_BACKS: Final = 1_000


class Listing(Generic[T]):
    """One lazy listing: pages fetched as the consumer asks, each item yielded once.

    Args:
        fetch: Fetches one page: ``await fetch(offset, limit)``.
        key: An item's id.
        limit: Items per page.
        offset_unit: 1 when ``offset`` counts records; ``None`` to find out (ModelArts).
        watch: Where this manager announces its deletions; the listing listens while it
            runs, under ``scope``.
        scope: What deletions can take items out of this listing.
    """

    def __init__(
        self,
        fetch: FetchPage[T],
        key: Callable[[T], str],
        *,
        limit: int,
        offset_unit: int | None = 1,
        watch: DeletionWatch | None = None,
        scope: tuple[str, str] = ("", ""),
    ) -> None:
        self._watch = watch
        self._scope = scope
        self._fetch = fetch
        self._key = key
        self._limit = limit
        self._unit = offset_unit
        self._seen: dict[str, bool] = {}  # id -> whether this manager started deleting it
        self._removed = 0  # seen items this manager started deleting
        self.pages = 0  # pages fetched, for tests and benchmarks

    def removing(self, item_id: str) -> None:
        """This manager starts deleting ``item_id``: if it was yielded, it may leave the list."""
        if self._seen.get(item_id) is False:
            self._seen[item_id] = True
            self._removed += 1

    def _window(self, position: int) -> tuple[int, int, int]:
        """The request that starts at or before ``position``: ``(offset, limit, start)``.

        With record offsets, simply ``position`` itself. With page offsets a request can
        only start at a multiple of its own limit: among limits up to the page size, take
        the one whose page starting at or before ``position`` reaches furthest past it.
        """
        if self._unit == 1 or position == 0:
            return position, self._limit, position
        best = (0, self._limit, 0)
        best_end = self._limit
        for limit in range(1, self._limit + 1):
            index = position // limit
            end = (index + 1) * limit
            if end > best_end:
                best, best_end = (index, limit, index * limit), end
        return best

    async def _page(self, position: int) -> tuple[int, int, Sequence[T]]:
        """Fetch a page that starts at or before ``position``: its start, limit and items."""
        offset, limit, start = self._window(position)
        self.pages += 1
        return start, limit, await self._fetch(offset, limit)

    async def _find_unit(self, first: Sequence[T]) -> None:
        """Tell a record offset from a page offset with one probe at offset 1."""
        self.pages += 1
        probe = await self._fetch(1, self._limit)
        first_ids = {self._key(item) for item in first}
        self._unit = 1 if probe and self._key(probe[0]) in first_ids else self._limit

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield every item of the listing once, in the service's order."""
        if self._watch is not None:
            self._watch.add(self._scope, self)
        try:
            position = 0
            trust_count = True  # whether only this manager deleted what we have seen
            step_backs = 0
            while True:
                start, limit, items = await self._page(position)
                if start > 0 and (not items or self._key(items[0]) not in self._seen):
                    # This page may begin past items not yet seen (someone else deleted seen
                    # ones, moving the rest forward): step back a page.
                    trust_count = False
                    step_backs += 1
                    position = 0 if step_backs > _MAX_STEP_BACKS else max(0, start - self._limit)
                    continue
                step_backs = 0
                if self._unit is None:
                    if len(items) < limit:
                        self._unit = 1  # one page holds it all: the unit never matters
                    else:
                        await self._find_unit(items)
                removed_at_fetch = self._removed
                for item in items:
                    item_id = self._key(item)
                    if item_id in self._seen:
                        continue
                    self._seen[item_id] = False
                    yield item
                if len(items) < limit:
                    return  # the end of the list, as it was when this page was read
                # Seen items fill positions [0, start + len(items)) as the page was read; the
                # deletions started since may have removed some of them.
                since = self._removed - removed_at_fetch
                position = max(0, start + len(items) - 1 - since)
                if trust_count:
                    position = max(position, len(self._seen) - self._removed - 1)
        finally:
            if self._watch is not None:
                self._watch.discard(self._scope, self)


class DeletionWatch:
    """The listings of one manager that want to hear of its deletions, by scope.

    A scope is what a deletion can take out of a listing: ``("session", workspace_id)``
    or ``("workspace", "")``. Listings are held weakly: one abandoned mid-way is dropped.
    """

    def __init__(self) -> None:
        #: Scope -> the listings listening there; empty (and cheap to test) when none are.
        self.listings: dict[tuple[str, str], weakref.WeakSet[Listing[Any]]] = {}

    def add(self, scope: tuple[str, str], listing: Listing[Any]) -> None:
        """Tell ``listing`` of every deletion in ``scope`` from now on."""
        self.listings.setdefault(scope, weakref.WeakSet()).add(listing)

    def discard(self, scope: tuple[str, str], listing: Listing[Any]) -> None:
        """Stop telling ``listing``."""
        listings = self.listings.get(scope)
        if listings is not None:
            listings.discard(listing)
            if not listings:
                del self.listings[scope]

    def removing(self, scope: tuple[str, str], item_id: str) -> None:
        """A deletion of ``item_id`` in ``scope`` starts."""
        listings = self.listings.get(scope)
        if listings:
            for listing in list(listings):
                listing.removing(item_id)
