"""Looking before concluding: the second reads that turn a 404 into evidence, or into an error.

``_evidence`` says what a 404 claims; this module checks the claim, the only way a client
can (DESIGN.md, "Settled", rules 1 to 3):

- **The parent exists.** A 404 about a session counts (as gone, or as ``NotFoundError``)
  only once its Fabric workspace is known to exist; a workspace's, once its ModelArts
  project is. Known means: a 200 that shows it (a one-item listing with an item in it), or
  an earlier success on something inside it. A listing of it that answers the service's
  404 proves it missing (``ParentNotFoundError``); an empty 200, a refusal, a stop or the
  deadline prove nothing (``UnverifiedNotFoundError``).
- **An unknown code is resolved by a listing.** A session: a listing filtered to its id
  (the server must really have filtered); a workspace: one complete walk of the project's
  workspaces, begun after the 404, shared by every item waiting for one.

The reads are made only when such a 404 arrives, hold no concurrency slot while waiting
(each is an ordinary call of the request path), run within the waiting call's deadline,
count in its attempts, never ask for a check of their own, and are shared: one read per
parent at a time (single-flight), its answer cached with a bound and a time limit, so a
workspace created later is seen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final

from asyncdeleter._calls import Answer, Call, Stopped, within_deadline
from asyncdeleter._errors import (
    APIError,
    APIStatusError,
    ParentNotFoundError,
    UnverifiedNotFoundError,
    reclassified,
)
from asyncdeleter._evidence import NotFound
from asyncdeleter._listing import Listing
from asyncdeleter._operations import FABRIC, Operation

__all__ = ["Prover", "Unproven", "listing_missing_parent"]

_log: Final = logging.getLogger("asyncdeleter")

#: How long a proof is trusted, in seconds: a workspace seen to exist, one seen missing
#: (short: it may be created meanwhile).
EXISTS_FOR: Final = 300.0
MISSING_FOR: Final = 10.0
#: Parents remembered at most (the oldest is forgotten first).
REMEMBERED: Final = 4096

#: Reads one page of a listing: (listing operation, its ids, query) -> (items, the
#: service's total, requests sent). Raises what the request path raises.
ReadPage = Callable[
    [Operation, tuple[str, ...], dict[str, str]], Awaitable[tuple[Any, int | None, int]]
]
#: A listing of every workspace of the manager's project (iterate it to its end).
WalkWorkspaces = Callable[[], "Listing[Any]"]


class Unproven:
    """A 404 that awaits its evidence before it may end the call.

    Attributes:
        error: The 404's typed error (a ``NotFoundError``), as read (its request id is
            the answer's).
        gone: What the call makes of it once proven: ``True`` for "already gone" (or, for
            a deletion after an attempt that may have taken effect, done), ``False`` for
            raising ``error``.
        already_gone: For ``gone``: whether the answer is "already gone" (else "done").
        verdict: What the 404 itself said (``GONE_CODE`` or ``UNKNOWN_CODE``).
    """

    __slots__ = ("already_gone", "error", "gone", "verdict")

    def __init__(
        self,
        error: APIStatusError,
        *,
        gone: bool,
        already_gone: bool,
        verdict: NotFound,
    ) -> None:
        self.error = error
        self.gone = gone
        self.already_gone = already_gone
        self.verdict = verdict


class _Shared:
    """One read in progress, and when it began (loop time)."""

    __slots__ = ("began", "task")

    def __init__(self, task: asyncio.Task[Any], began: float) -> None:
        self.task = task
        self.began = began


class Prover:
    """The evidence checks of one manager (shared by its views).

    Args:
        read_page: How to read one page of a listing for a call.
        walk_workspaces: How to walk the project's workspaces to the end.
        project_id: The manager's project (the parent of every workspace).
        clock: The time, in seconds (the running loop's by default).
    """

    def __init__(
        self,
        read_page: ReadPage,
        walk_workspaces: WalkWorkspaces,
        project_id: str | None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._read_page = read_page
        self._walk_workspaces = walk_workspaces
        self._project_id = project_id
        self._clock = clock or _loop_time
        # (service, parent id) -> (exists, trusted until)
        self._known: dict[tuple[str, str], tuple[bool, float]] = {}
        self._checks: dict[tuple[str, str], _Shared] = {}
        self._walks: dict[str, _Shared] = {}
        self._next_walk: dict[str, asyncio.Future[Any]] = {}
        self._codes_logged: set[tuple[str, str]] = set()

    # -- what successes prove ----------------------------------------------------------

    def parent_of(self, call: Call) -> tuple[str, str]:
        """The key of the container ``call`` acts in: its Fabric workspace, or the project."""
        if call.op.service == FABRIC:
            return FABRIC, call.ids[0]
        return "modelarts", self._project_id or ""

    def seen(self, call: Call) -> None:
        """A 2xx on ``call``: its container exists.

        On every success, so it is kept cheap: a container already known to exist is left
        as it is (once that proof expires, a later 404 makes one read again).
        """
        key = self.parent_of(call)
        known = self._known.get(key)
        if known is None or not known[0]:
            self._remember(key, True, self._clock())

    def _remember(self, key: tuple[str, str], exists: bool, now: float) -> None:
        self._known.pop(key, None)
        self._known[key] = (exists, now + (EXISTS_FOR if exists else MISSING_FOR))
        if len(self._known) > REMEMBERED:
            del self._known[next(iter(self._known))]

    # -- settling a 404 ----------------------------------------------------------------

    async def settle(self, call: Call, unproven: Unproven) -> Answer:
        """Prove ``unproven`` before it ends ``call``: return the answer, or raise.

        Raises:
            NotFoundError: Proven: missing, in a container that exists.
            ParentNotFoundError: The container itself does not exist.
            UnverifiedNotFoundError: Neither could be shown.
            ConfigurationError: The manager closed meanwhile.
        """
        error = unproven.error
        try:
            found = await within_deadline(
                call,
                self._look(call, unproven),
                lambda: self._unverified(
                    call, error, "the call's max_time ran out before it could be checked"
                ),
            )
        except Stopped:
            raise self._unverified(
                call, error, "the run stopped before it could be checked"
            ) from None
        if found is not None:
            return found
        if unproven.gone:
            return Answer(unproven.already_gone, call.attempts, error.request_id)
        raise error from error.__cause__

    async def _look(self, call: Call, unproven: Unproven) -> Answer | None:
        op = call.op
        error = unproven.error
        if unproven.verdict is NotFound.UNKNOWN_CODE:
            self._log_code(op, error.error_code)
        if op.service == FABRIC:
            await self._parent_exists(call, error)
            if unproven.verdict is NotFound.UNKNOWN_CODE:
                return await self._session_absent(call, error)
            return None
        if unproven.verdict is NotFound.GONE_CODE:
            await self._parent_exists(call, error)
            return None
        return await self._workspace_absent(call, error)

    # -- is the parent there? ----------------------------------------------------------

    async def _parent_exists(self, call: Call, error: APIStatusError) -> None:
        key = self.parent_of(call)
        known = self._known.get(key)
        if known is not None and known[1] > self._clock():
            if not known[0]:
                raise self._parent_missing(call, error)
            return
        shared = self._checks.get(key)
        if shared is None or shared.task.done():
            _check_not_stopped(call)
            task = asyncio.ensure_future(self._peek(call, key))
            shared = _Shared(task, self._clock())
            self._checks[key] = shared
            task.add_done_callback(functools.partial(self._forget, self._checks, key, shared))
        try:
            exists, requests = await asyncio.shield(shared.task)
        except ParentNotFoundError:
            raise self._parent_missing(call, error) from None
        except (APIError, Stopped) as exc:
            reason = (
                "the run stopped first" if isinstance(exc, Stopped) else f"reading it failed: {exc}"
            )
            raise self._unverified(
                call, error, f"its {self._parent_kind(call)} could not be checked ({reason})"
            ) from None
        _count(call, requests)  # the read was made for this call too
        if not exists:
            raise self._unverified(
                call,
                error,
                f"its {self._parent_kind(call)} showed nothing (an empty listing proves "
                "neither that it exists nor that it does not)",
            )

    async def _peek(self, call: Call, key: tuple[str, str]) -> tuple[bool, int]:
        """A one-item listing of the parent: whether it shows an item, and requests sent.

        Made for no run in particular (every waiter shares it), so no run's stop ends it.
        """
        listing = call.op.lists_with
        assert listing is not None  # noqa: S101 - every operation with a parent has one
        ids = (call.ids[0],) if call.op.service == FABRIC else ()
        items, _, requests = await self._read_page(listing, ids, {"limit": "1", "offset": "0"})
        exists = bool(items)
        if exists:
            self._remember(key, True, self._clock())
        return exists, requests

    @staticmethod
    def _forget(
        table: dict[Any, _Shared], key: Hashable, shared: _Shared, _: object = None
    ) -> None:
        if table.get(key) is shared:
            del table[key]
        if not shared.task.cancelled():
            shared.task.exception()  # retrieved: waiters that gave up must not leave it unread

    # -- is the item absent from a listing? --------------------------------------------

    async def _session_absent(self, call: Call, error: APIStatusError) -> Answer | None:
        workspace_id, session_id = call.ids[0], call.ids[-1]
        listing = call.op.lists_with
        assert listing is not None  # noqa: S101
        _check_not_stopped(call)
        try:
            items, total, requests = await self._read_page(
                listing, (workspace_id,), {"session_id": session_id, "limit": "100"}
            )
        except APIError as exc:
            raise self._unverified(call, error, f"looking it up failed: {exc}") from None
        _count(call, requests)
        ids = [getattr(item, "session_id", None) for item in items]
        if any(found != session_id for found in ids) or total is None or total != len(items):
            # Another session listed, or a count that is not what was shown: the filter
            # (or the paging) was not honoured, and an empty page proves nothing.
            raise self._unverified(
                call, error, "the service's listing filtered by session_id is not to be trusted"
            )
        if not items:
            return None  # absent: the 404 stands
        session = items[0]
        if call.op.deletes:
            if session.status == "CLOSED":
                return None  # listed as closed: gone, as far as closing goes
            raise self._unverified(call, error, f"the listing still shows it ({session.status})")
        return Answer(False, call.attempts, error.request_id, session)

    async def _workspace_absent(self, call: Call, error: APIStatusError) -> Answer | None:
        """Look for the workspace in a complete walk of the project begun after the 404."""
        workspace_id = call.ids[0]
        walk = self._walk_after(self._clock())
        try:
            present, requests = await asyncio.shield(walk)
        except ParentNotFoundError:
            raise self._parent_missing(call, error) from None
        except (APIError, Stopped) as exc:
            raise self._unverified(call, error, f"listing the project failed: {exc}") from None
        _count(call, requests)
        if present is None:
            raise self._unverified(
                call,
                error,
                "the project's listing was empty, or ended before it showed as many "
                "workspaces as the service counts (it proves nothing)",
            )
        item = present.get(workspace_id)
        if item is None:
            return None  # absent from a complete listing: the 404 stands
        if call.op.deletes:
            raise self._unverified(
                call, error, f"the project's listing still shows it ({item.status})"
            )
        return Answer(False, call.attempts, error.request_id, item)

    def _walk_after(self, when: float) -> asyncio.Future[Any]:
        """The walk of the project that began at or after ``when``: shared, at most one next."""
        key = self._project_id or ""
        current = self._walks.get(key)
        if current is None or current.task.done():
            return self._start_walk(key)
        if current.began >= when:
            return current.task
        pending = self._next_walk.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            pending.add_done_callback(_retrieved)  # a walk nobody waits for any more
            self._next_walk[key] = pending

            def chain(_: object) -> None:
                del self._next_walk[key]
                task = self._start_walk(key)
                task.add_done_callback(lambda done: _copy(done, pending))

            current.task.add_done_callback(chain)
        return pending

    def _start_walk(self, key: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(self._walk())
        shared = _Shared(task, self._clock())
        self._walks[key] = shared
        task.add_done_callback(functools.partial(self._forget, self._walks, key, shared))
        return task

    async def _walk(self) -> tuple[dict[str, Any] | None, int]:
        """Every workspace of the project by id, and the requests it took.

        ``None`` unless the walk proves something: it showed at least one workspace (so the
        project exists) and as many as the service counted (so none was left unread).
        """
        listing = self._walk_workspaces()
        seen: dict[str, Any] = {}
        async for workspace in listing:
            seen[workspace.workspace_id] = workspace
        if not seen or not listing.saw_the_count:
            return None, listing.pages
        self._remember(("modelarts", self._project_id or ""), True, self._clock())
        return seen, listing.pages

    # -- errors ------------------------------------------------------------------------

    @staticmethod
    def _parent_kind(call: Call) -> str:
        return "workspace" if call.op.service == FABRIC else "project"

    def _parent_missing(self, call: Call, error: APIStatusError) -> ParentNotFoundError:
        key = self.parent_of(call)
        self._remember(key, False, self._clock())
        return parent_missing(error, call, key[1], "its listing answered 404")

    def _unverified(
        self, call: Call, error: APIStatusError, reason: str
    ) -> UnverifiedNotFoundError:
        return reclassified(
            error,
            UnverifiedNotFoundError,
            f"{call.op.label} {call.target}: HTTP 404 {error.error_code or ''} could not be "
            f"taken as 'gone': {reason}; it may still exist (safe to re-run)",
            reason=reason,
        )

    def _log_code(self, op: Operation, code: str | None) -> None:
        shown = code or "(none)"
        if (op.name, shown) in self._codes_logged:
            return
        self._codes_logged.add((op.name, shown))
        _log.warning(
            "%s answered 404 with error code %r, which asyncdeleter does not know as "
            "'not found' for it; checking with a listing instead (please report this code)",
            op.name,
            shown[:64],
        )


def _count(call: Call, requests: int) -> None:
    """Requests a check sent on ``call``'s behalf count in its attempts (and its item's)."""
    call.attempts += requests
    if call.tracker is not None:
        call.tracker.attempts += requests


def _check_not_stopped(call: Call) -> None:
    """A stopped run sends nothing more: no check starts for it (joining one sends nothing)."""
    if call.tracker is not None and call.tracker.stop.stopped:
        raise Stopped


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _copy(done: asyncio.Future[Any], into: asyncio.Future[Any]) -> None:
    if into.done():
        return
    if done.cancelled():
        into.cancel()
    elif (exc := done.exception()) is not None:
        into.set_exception(exc)
    else:
        into.set_result(done.result())


def parent_missing(
    error: APIStatusError, call: Call, parent_id: str, evidence: str
) -> ParentNotFoundError:
    """``error`` (the item's own 404, kept for the report) as its container's absence."""
    kind, setting = (
        ("workspace", "workspace_id")
        if call.op.service == FABRIC
        else (
            "project",
            "project_id",
        )
    )
    return reclassified(
        error,
        ParentNotFoundError,
        f"{call.op.label} {call.target}: {kind} {parent_id} does not exist ({evidence}): "
        f"this call deleted nothing; check {setting}",
        parent_kind=kind,
        parent_id=parent_id,
        setting=setting,
    )


def listing_missing_parent(error: APIStatusError, call: Call) -> ParentNotFoundError:
    """A listing's own service 404: the container it lists does not exist."""
    parent_id = call.ids[0] if call.op.service == FABRIC else call.target
    code = f" {error.error_code}" if error.error_code else ""
    return parent_missing(error, call, parent_id, f"HTTP 404{code}")
