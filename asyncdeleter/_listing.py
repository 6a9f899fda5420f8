"""Paging that survives deletion: each item that existed when a listing started, once.

Both services page by offset, and offsets shift under deletion (docs/api-facts.md,
section 5): read page 2 after closing page 1 and a page's worth of items is skipped. A
listing here keeps the ids it has yielded (O(N) ids, by necessity) and chooses every next
request so that it cannot pass an item it has not seen:

- The listing is in a stable order and is read front to back, so the items it has seen
  form a prefix of the current list (items created meanwhile may land anywhere: they may
  or may not be listed).
- Each next request starts at or below a *bound*: a count of seen items certainly still
  in front. Two bounds are known: the seen items minus those this manager has started
  deleting (counted when the DELETE starts, so in-flight deletions are assumed done), and
  the end of the page just read minus the deletions started since. The larger is used.
- A request starts one item below the bound when it can, so its first item must be one
  already seen. If it is not, someone else deleted seen items and the list moved forward:
  the listing steps back a page and stops trusting the first bound.
- Every request reaches past the bound (a continuing request asks for at least two items;
  a service that serves one a page is read on from the bound, unanchored), so each full
  page moves the listing on; a listing that makes no progress for many pages
  in a row (a service that keeps reshuffling) ends with ``MalformedResponseError`` rather
  than spinning.
- ModelArts documents ``offset`` as a "start page". After the first full page, a probe at
  offset 1 (before anything is yielded) is compared with it: if most of the probe was on
  the first page, offsets count records, else pages. The verdict is checked again when a
  request does not start where it should. With page offsets a request starts at a multiple
  of its own limit, so each picks the limit whose page starts below the bound and reaches
  furthest past it.

- A page shorter than asked for is the end only when the service's count agrees; else the
  service caps its pages, and the listing pages by what it returns from then on.
- A page that brings nothing new is the end once the listing has seen every item the
  service counts (and the count fell by no more than this manager's deletions): a service
  may answer a request past its end with its last page again instead of a short one.
- The service's first count of items is checked at the end: if fewer were seen (its order
  moved under us, as ties in a sort may between requests, or others deleted some), the
  listing walks again for what is left, while a walk still finds something.

Cost: about one request per page when nothing is deleted, and about two while the same
manager deletes what it lists and the deletions take effect at once (Fabric). ModelArts
keeps a deleted workspace listed (``DELETING``) until it vanishes later, which moves the
pages again: with small pages that costs up to about four times a plain listing (measured
with pages of 2 to 16; about 2.4 times with pages of 1,000).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Generic, TypeVar

from asyncdeleter._errors import ConfigurationError, MalformedResponseError

__all__ = ["DeletionWatch", "Listing", "check_page_size"]

T = TypeVar("T")

#: Fetches the page at ``offset`` (in the service's unit) of ``limit`` items: the items,
#: and the service's count of all items (``None`` if it gave none).
FetchPage = Callable[[int, int], Awaitable[tuple[Sequence[T], int | None]]]

#: A page-offset request may ask for a few more items than the page size, so that a page
#: boundary can always be found below the bound that reaches past it.
_PAGE_MODE_MIN_LIMIT: Final = 16
#: Walks after the first, at most, when fewer items were seen than the service first said
#: it had: each finds what an unstable order hid from the one before.
_EXTRA_WALKS: Final = 20
#: Requests in a row that bring nothing new before a listing gives up (plus one per page
#: of items seen, so a long listing under heavy deletion has room).
_MAX_STALLED: Final = 50


class Listing(Generic[T]):
    """One lazy listing: pages fetched as the consumer asks, each item yielded once.

    Args:
        fetch: Fetches one page: ``await fetch(offset, limit)``.
        key: An item's id.
        limit: Items per request (a continuing request asks for at least 2).
        offset_unit: 1 when ``offset`` counts records; ``None`` to find out (ModelArts).
        watch: Where this manager announces its deletions; the listing listens while it
            runs, under ``scope``.
        scope: What deletions can take items out of this listing.
        largest: The largest limit the service accepts.
        strict: A listing that must prove it is whole (the second source for a 404): a
            page shorter than asked for ends it only once the next brings nothing new, and
            a page that contradicts the service's count spoils ``saw_the_count``.
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
        largest: int = 1000,
        strict: bool = False,
    ) -> None:
        self._strict = strict
        self._contradicted = False  # a page placed items past the count given with it
        self._watch = watch
        self._scope = scope
        self._fetch = fetch
        self._key = key
        self._limit = limit
        self._one_a_page = False  # the service serves one item a page, whatever is asked
        self._largest = largest
        self._pages_are_records: bool | None = True if offset_unit == 1 else None
        self._unit_probed = False  # the unit was learned (and may be re-learned)
        self._seen: dict[str, bool] = {}  # id -> whether this manager started deleting it
        self._removed = 0  # seen items this manager started deleting
        self._first_total: int | None = None  # the service's count on the first page
        self._last_total: int | None = None  # ...and on the latest
        self.pages = 0  # requests made, for tests and benchmarks

    @property
    def saw_the_count(self) -> bool:
        """Whether the listing has seen as many items as the service last counted.

        ``False`` when the service gave no count: then nothing says the listing is whole.
        """
        total = self._last_total
        return total is not None and len(self._seen) >= total and not self._contradicted

    def removing(self, item_id: str) -> None:
        """This manager starts deleting ``item_id``: if it was yielded, it may leave the list."""
        if self._seen.get(item_id) is False:
            self._seen[item_id] = True
            self._removed += 1

    def _window(self, bound: int) -> tuple[int, int, int, bool]:
        """The next request for ``bound``: ``(offset, limit, start, anchored)``.

        ``start`` is the list position the request begins at; ``anchored`` says whether
        that is below the bound, so that its first item must be a seen one.
        """
        if bound == 0:
            return 0, self._limit, 0, False
        limit = max(self._limit, 2)
        if self._pages_are_records:
            if self._one_a_page:
                # No room for a seen item before the next one: read on from the bound.
                return bound, 1, bound, False
            return bound - 1, limit, bound - 1, True
        # Page offsets: offset k with limit m reads [k*m, (k+1)*m). Take the m whose page
        # starts below the bound and reaches furthest past it.
        ceiling = min(max(limit, _PAGE_MODE_MIN_LIMIT), self._largest)
        best: tuple[int, int, int, bool] | None = None
        best_end = bound
        for size in range(2, ceiling + 1):
            index = (bound - 1) // size
            end = (index + 1) * size
            if end > best_end:
                best, best_end = (index, size, index * size, True), end
        if best is not None:
            return best
        # Every size up to the ceiling divides the bound (rare): start exactly at it.
        return bound // ceiling, ceiling, bound, False

    async def _probe_unit(self, first: Sequence[T]) -> None:
        """Tell record offsets from page offsets: is most of ``offset=1`` on the first page?"""
        self.pages += 1
        self._unit_probed = True
        limit = len(first)
        probe, _ = await self._fetch(1, limit)
        first_ids = {self._key(item) for item in first}
        shared = sum(1 for item in probe if self._key(item) in first_ids)
        # Records: the probe is the first page moved by one (less what changed meanwhile).
        # Pages: it is the second page, sharing nothing with the first unless the list
        # moved by about a page between the two requests.
        self._pages_are_records = shared * 2 >= limit - 1 and shared > 0

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield every item of the listing once, in the service's order."""
        if self._watch is not None:
            self._watch.add(self._scope, self)
        try:
            async for item in self._walk():
                yield item
            # The service said how many there were when we began; fewer seen means that
            # its order moved under us (ties in a sort, say) or others deleted some. Walk
            # again for what is left, while a walk still finds something.
            for _ in range(_EXTRA_WALKS):
                if self._first_total is None or len(self._seen) >= self._first_total:
                    break
                before = len(self._seen)
                async for item in self._walk():
                    yield item
                if len(self._seen) == before and not self._short_of_the_count():
                    break
        finally:
            if self._watch is not None:
                self._watch.discard(self._scope, self)

    async def _walk(self) -> AsyncIterator[T]:
        bound = 0
        trust_count = True  # whether only this manager deleted what we have seen
        stalled = 0
        while True:
            offset, limit, start, anchored = self._window(bound)
            self.pages += 1
            items, total = await self._fetch(offset, limit)
            if self._first_total is None and not self._seen:
                self._first_total = total  # how many there were as the listing began
            self._last_total = total
            if anchored and (not items or self._key(items[0]) not in self._seen):
                # The list moved forward under us (someone else deleted seen items), or
                # the offset unit was misjudged: step back a page, or re-learn the unit.
                trust_count = False
                stalled += 1
                bound = await self._after_a_stall(stalled, trust_count) or max(
                    0, start - max(self._limit, 2) + 1
                )
                continue
            limit = self._page_cap(items, limit, start, total)
            if self._pages_are_records is None:
                if len(items) < limit and not (self._strict and items):
                    self._pages_are_records = True  # one page holds it all
                else:
                    await self._probe_unit(items)
            removed_at_fetch = self._removed
            new = 0
            for item in items:
                item_id = self._key(item)
                if item_id in self._seen:
                    continue
                self._seen[item_id] = False
                new += 1
                yield item
            if self._ends(items, start, limit, new, trust_count):
                return  # the end of the list, as it was when this page was read
            # Seen items fill positions [0, start + len(items)) as the page was read; the
            # deletions started since may have removed some of them.
            since = self._removed - removed_at_fetch
            following = start + len(items) - since
            if trust_count:
                following = max(following, len(self._seen) - self._removed)
            bound = max(0, following)
            if new:
                stalled = 0
            else:
                stalled += 1
                bound = await self._after_a_stall(stalled, trust_count) or bound

    def _ends(self, page: Sequence[T], start: int, limit: int, new: int, trust_count: bool) -> bool:
        """Whether the walk ends after ``page`` (``limit`` asked from ``start``).

        The one place that decides it:

        - A page that brought nothing new ends it once the listing has seen every item the
          service counts (``_saw_everything``). Else a service that answers a request
          past its end with its last page again, instead of a short one, would be read
          until the listing gave up, everything seen. (A strict listing's proof is judged
          apart, by ``saw_the_count``.)
        - A page shorter than asked for that brought something new ends it only when the
          service's count, not contradicted, says every item was seen. Else (no count, a
          count its own pages contradict, or a strict listing, whose proof may not rest
          on a count that may just echo the page's) the service may cap its pages below
          the limit asked for: the walk goes on, asking for what this page held, and
          ends at the first page that shows nothing new.
        """
        if not new and trust_count and self._saw_everything(start + limit):
            return True  # (trust_count: nobody else is known to have deleted seen items)
        if len(page) >= limit:
            return False
        if not new or (not self._strict and self._count_says_all_seen()):
            return True
        self._limit = max(len(page), 2)
        self._one_a_page = len(page) == 1  # no room for a seen item to anchor the next
        return False

    def _count_says_all_seen(self) -> bool:
        total = self._last_total
        return total is not None and not self._contradicted and len(self._seen) >= total

    def _saw_everything(self, reached: int) -> bool:
        """Whether every item the service counts has been seen, after a page of nothing new.

        Not once the count fell by more than this manager's own deletions: others deleted
        items, seen ones maybe, and a count lowered by theirs says nothing of what is left
        unseen. Else, seen items forming a prefix of the list, it holds when:

        - the count alone says so: as many distinct ids, less those this manager started
          deleting (the deletions may have taken effect), as the service counts; or
        - the request reached past the count (to position ``reached``) and found only
          seen items, and as many distinct ids as the count were seen: our deletions may
          still be listed (ModelArts shows ``DELETING``), yet nothing unseen is left.
        """
        total, first = self._last_total, self._first_total
        if total is None or (first is not None and first - total > self._removed):
            return False
        seen = len(self._seen)
        return seen - self._removed >= total or (reached >= total and seen >= total)

    def _page_cap(self, items: Sequence[T], limit: int, start: int, total: int | None) -> int:
        """The page size to go on with after a page of ``items`` asked for ``limit``.

        A page shorter than asked for, while the count says more follow: the service
        serves at most this many (a cap of its own, as a documented default of 10 may
        be). The listing then pages by what it returns, not by what it asked for.
        """
        if total is not None and start + len(items) > total:
            self._contradicted = True  # items past the count given with them
        if items and len(items) < limit and total is not None and start + len(items) < total:
            self._limit = len(items)
            self._one_a_page = len(items) == 1
            return len(items)
        return limit

    async def _after_a_stall(self, stalled: int, trust_count: bool) -> int | None:
        """A request that brought nothing new, or did not start on a seen item.

        Gives up past the limit. With a learned offset unit, the second stall in a row
        probes the unit again (someone changing the list during the first probe can fool
        it); if the verdict changes, returns where to go on from: the seen items still
        surely in front, which holds whatever the unit was.
        """
        # Each of our own deletions may move the list once more when it takes effect
        # (ModelArts keeps a workspace listed while DELETING, then drops it): allow for it.
        allowance = _MAX_STALLED + self._removed + len(self._seen) // max(self._limit, 2)
        if stalled > allowance:
            raise MalformedResponseError(
                f"the listing made no progress in {stalled} requests in a row: the service "
                "keeps moving its pages (or ignores offset); listed "
                f"{len(self._seen)} items before giving up"
            )
        if self._unit_probed and stalled == 2 and await self._recheck_unit():
            return max(0, len(self._seen) - self._removed) if trust_count else 0
        return None

    def _short_of_the_count(self) -> bool:
        """Nothing of ours deleted, yet the service still counts more than we have seen.

        A walk that found nothing new may just have been unlucky with a shuffling order;
        while the count says more are there, walk again. (With deletions of ours under
        way the count moves for reasons of ours, and a walk that finds nothing ends it.)
        """
        total = self._last_total
        return self._removed == 0 and total is not None and len(self._seen) < total

    async def _recheck_unit(self) -> bool:
        """Probe the offset unit again; return whether the verdict changed."""
        before = self._pages_are_records
        self.pages += 1
        first, _ = await self._fetch(0, max(self._limit, 2))
        if len(first) < max(self._limit, 2):
            return False  # the whole list fits one page: no unit to learn
        await self._probe_unit(first)
        return self._pages_are_records != before


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


def check_page_size(page_size: object, largest: int) -> None:
    """Refuse a page size that is not an int from 1 to ``largest`` (the service's most).

    Raises:
        ConfigurationError: It is not.
    """
    if (
        not isinstance(page_size, int)
        or isinstance(page_size, bool)
        or not (1 <= page_size <= largest)
    ):
        raise ConfigurationError(f"page_size must be an int from 1 to {largest}, got {page_size!r}")
