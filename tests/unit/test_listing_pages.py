"""Paging (``_listing.Listing``) through its injected page fetcher, without sockets.

``Pages`` plays a service's paging: record or page offsets, a cap of its own on the page
size, and what it answers for a request that reaches past the end of its list (an empty
or short page, as documented; or its last page again, as a clamping service does).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncdeleter import MalformedResponseError
from asyncdeleter._listing import Listing

#: What a request reaching past the end gets: the documented cut-off page, the last page
#: for an offset past the end, or the last page for any window that reaches past the end.
CLAMPS = (None, "past-end", "window")


class Pages:
    """A service listing ``n`` items, with a truthful count."""

    def __init__(
        self,
        n: int,
        *,
        reading: str = "record",
        cap: int | None = None,
        clamp: str | None = None,
        echo_count: bool = False,
        counts: bool = True,
    ) -> None:
        self.items = [f"i-{k:03d}" for k in range(n)]
        self.reading = reading
        self.cap = cap
        self.clamp = clamp
        self.echo_count = echo_count
        self.counts = counts
        self.requests = 0

    async def fetch(self, offset: int, limit: int) -> tuple[Sequence[str], int | None]:
        self.requests += 1
        size = limit if self.cap is None else min(limit, self.cap)
        start = offset * limit if self.reading == "page" else offset
        items = self.items
        last = items[max(0, len(items) - size) :]
        if (self.clamp == "past-end" and start >= len(items)) or (
            self.clamp == "window" and start + size > len(items)
        ):
            page = last
        else:
            page = items[start : start + size]
        if not self.counts:
            return page, None
        return page, len(page) if self.echo_count else len(items)


async def listed(
    pages: Pages, *, limit: int, strict: bool = False, ours: str | None = None
) -> tuple[list[str], bool]:
    """Everything the listing yields, in order, and whether it saw the service's count.

    ``ours``: this manager deletes each item as it is yielded, the deletion taking effect
    ``"at-once"`` (Fabric) or ``"later"`` (ModelArts keeps it listed, ``DELETING``).
    """
    listing = Listing(
        pages.fetch,
        lambda item: item,
        limit=limit,
        offset_unit=1 if pages.reading == "record" else None,
        strict=strict,
    )
    seen = []
    async for item in listing:
        seen.append(item)
        if ours is not None:
            listing.removing(item)
            if ours == "at-once":
                pages.items.remove(item)
    return seen, listing.saw_the_count


@pytest.mark.parametrize("strict", [False, True])
async def test_a_service_that_answers_its_last_page_again_ends_normally(strict: bool) -> None:
    """25 items, 10 a page, and a window past the end answered with the last page again:
    the listing sees all 25 once and ends (it used to stall, then raise)."""
    pages = Pages(25, clamp="window")
    seen, _ = await listed(pages, limit=10, strict=strict)
    assert seen == pages.items
    assert pages.requests <= 6


async def test_a_service_that_ignores_offset_still_ends_in_a_typed_error() -> None:
    """The first page whatever is asked, with a count of 50: the listing has not seen the
    count, so it cannot end well; it gives up with a clear error instead of spinning."""

    class FirstPageAlways(Pages):
        async def fetch(self, offset: int, limit: int) -> tuple[Sequence[str], int | None]:
            self.requests += 1
            return self.items[:limit], len(self.items)

    pages = FirstPageAlways(50)
    with pytest.raises(MalformedResponseError, match="no progress"):
        await listed(pages, limit=5)
    assert pages.requests < 200


async def test_a_strict_listing_never_proves_a_count_that_echoes_a_capped_page() -> None:
    """A count equal to each page's own length (100 a page of 300): the listing goes on
    past it, and its proof is spoiled by the pages that lie past their own count."""
    pages = Pages(300, cap=100, echo_count=True)
    seen, saw_the_count = await listed(pages, limit=1000, strict=True)
    assert seen == pages.items
    assert not saw_the_count


@pytest.mark.parametrize("clamp", CLAMPS)
@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 25])
async def test_every_item_once_for_small_lists(clamp: str | None, n: int) -> None:
    for limit in (1, 2, 3, 10):
        pages = Pages(n, clamp=clamp)
        seen, saw_the_count = await listed(pages, limit=limit)
        assert seen == pages.items, (limit, seen)
        if clamp != "window":
            # (A last page answered for a window past the end lies past the offset asked
            # for: the same answer as a count that lies. It ends, and proves nothing.)
            assert saw_the_count


@given(
    n=st.integers(0, 60),
    limit=st.integers(1, 25),
    cap=st.none() | st.integers(1, 25),
    clamp=st.sampled_from(CLAMPS),
    strict=st.booleans(),
    ours=st.sampled_from([None, "at-once", "later"]),
)
async def test_any_page_cap_and_clamp_lists_each_item_once_and_ends(
    *, n: int, limit: int, cap: int | None, clamp: str | None, strict: bool, ours: str | None
) -> None:
    """Record offsets, whatever the service's own page cap, its answer past the end, and
    this manager's deletions of what it lists."""
    pages = Pages(n, cap=cap, clamp=clamp)
    initial = list(pages.items)
    seen, _ = await listed(pages, limit=limit, strict=strict, ours=ours)
    assert seen == initial
    assert pages.requests <= 4 * n + 6  # about two requests a page at most, never a spin


@given(
    n=st.integers(0, 60),
    limit=st.integers(1, 25),
    clamp=st.sampled_from(CLAMPS),
)
async def test_page_offsets_with_any_clamp_list_each_item_once_and_end(
    n: int, limit: int, clamp: str | None
) -> None:
    """ModelArts' "start page" offsets (learned by a probe), whatever is answered past the end."""
    pages = Pages(n, reading="page", clamp=clamp)
    seen, _ = await listed(pages, limit=limit)
    assert sorted(seen) == pages.items
    assert len(seen) == len(set(seen))


@given(n=st.integers(0, 60), cap=st.integers(1, 15), limit=st.integers(2, 30))
async def test_a_service_that_gives_no_count_is_read_until_a_page_brings_nothing(
    n: int, cap: int, limit: int
) -> None:
    """With no count to compare with, a page shorter than asked for is no end: the
    service may cap its pages below the limit asked (found by a review: 7 of 25 listed,
    and a sweep left 18 selected items, reporting success)."""
    pages = Pages(n, cap=cap, counts=False)
    seen, _ = await listed(pages, limit=limit)
    assert seen == pages.items
