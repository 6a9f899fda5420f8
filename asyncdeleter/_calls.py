"""Calls: what a call carries across its attempts, how one is made, and how it ended.

Plain slotted classes, not attrs ones: they are built on every request, and attrs' class
creation would also add to import time.

One ``CallFactory`` per manager turns an operation and its ids into a ``Call``: it
validates every id before anything is built (nothing unvalidated reaches a URL), checks
what the operation needs (a project id, credentials), keeps one rate gate per (host, API),
adds ``X-Project-Id`` to every call when the manager has a project id (signed under AK/SK,
as the official SDK does: docs/api-facts.md, section 4), and tells the manager's listings
of each deletion it builds. Where each service is comes from ``_regions.Hosts``, asked at
a service's first call.

A call's deadline lives here, in one place: every wait and attempt of a call ends by it.
It is ``max_time`` from the call's first send (not from queueing for the semaphore), and
never past ``ends_by`` when the call has one (what is left of a confirmation's
``wait_timeout``); before its first send only ``ends_by`` bounds it
(``Call.start_deadline``, ``Call.ends_at``). Every wait of the request path (for a turn,
for fresh credentials, for a 404's evidence) goes through ``within_deadline``; a retry's
wait is given up when the call ``ends_before`` it would end (a throttled one shrinks to
what is ``left``); an attempt is handed
``Call.deadline``, which the transport enforces (``_transport.Expiry``: its connect-phase
timeout is set from the same number, so the deadline tells which phase it ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import yarl

from asyncdeleter._errors import APIError, ConfigurationError, raise_error
from asyncdeleter._ids import validate_id
from asyncdeleter._operations import OPERATIONS, Operation
from asyncdeleter._throttle import ApiGate

if TYPE_CHECKING:
    from asyncdeleter._auth import Credentials
    from asyncdeleter._listing import DeletionWatch
    from asyncdeleter._regions import Hosts

__all__ = [
    "Answer",
    "Call",
    "CallFactory",
    "Failure",
    "StopSignal",
    "Stopped",
    "Tracker",
    "within_deadline",
]

T = TypeVar("T")

PROJECT_HEADER: Final = "X-Project-Id"
_PLACEHOLDER: Final = re.compile(r"\{[a-z_]+\}")


class StopSignal:
    """Set by a bulk run that must send nothing more (``stop()``, ``fail_fast``, ``break``).

    The request path reads it after its last wait, right before a request would go out,
    and a call sleeping before a retry wakes at once when it is set.
    """

    __slots__ = ("_sleepers", "stopped")

    def __init__(self) -> None:
        self.stopped = False
        self._sleepers: set[asyncio.Future[None]] = set()

    def set(self) -> None:
        """Stop: nothing more is sent, and sleeping calls wake to end."""
        self.stopped = True
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)

    async def unless_stopped(self, waiting: Coroutine[Any, Any, float]) -> float:
        """Await ``waiting``, unless the signal is set first: then cancel it, raise ``Stopped``."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(waiting)
        waker = loop.create_future()
        self._sleepers.add(waker)
        try:
            await asyncio.wait((task, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleepers.discard(waker)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise Stopped
        return task.result()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the signal is set meanwhile."""
        if self.stopped:
            return
        loop = asyncio.get_running_loop()
        sleeper = loop.create_future()
        self._sleepers.add(sleeper)
        timer = loop.call_later(seconds, _wake, sleeper)
        try:
            await sleeper
        finally:
            timer.cancel()
            self._sleepers.discard(sleeper)


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)


class Tracker:
    """What one item of a bulk run shares with the calls made for it.

    Attributes:
        stop: The run's stop signal.
        adaptive: Whether its sends pass the learned rate of their (host, API).
        attempts: Requests sent for the item, over all its calls; 0 means nothing went out.
        throttled: Throttling answers (429) it met.
        throttled_seconds: Time it spent waiting because of throttling: after a 429, and
            for its turn under a learned rate.
        last_error: The error of the item's last attempt that was to be retried (set by
            the request path before the retry waits for anything).
        confirming: Set by a confirming wait once the deletion was accepted: makes the
            error that says "accepted, not confirmed" for a stop from then on.
    """

    __slots__ = (
        "adaptive",
        "attempts",
        "confirming",
        "last_error",
        "stop",
        "throttled",
        "throttled_seconds",
    )

    def __init__(self, stop: StopSignal, *, adaptive: bool = True) -> None:
        self.stop = stop
        self.adaptive = adaptive
        self.attempts = 0
        self.throttled = 0
        self.throttled_seconds = 0.0
        self.last_error: Exception | None = None
        self.confirming: Callable[[], Exception] | None = None

    def stopped_error(self) -> BaseException | None:
        """What the item reports when its run stopped it mid-way (``Stopped`` was raised).

        The one place that turns the internal signal into an error users see, wherever
        the item was waiting (a slot, a rate turn, a retry's wait, a poll's):

        - waiting to confirm an accepted deletion: ``WaitTimeoutError(stopped=True)``;
        - waiting to retry: the error of the attempt it would have retried;
        - nothing sent: ``None`` (the item is ``skipped``).
        """
        if self.confirming is not None:
            return self.confirming()
        if self.last_error is not None:
            return self.last_error
        if self.attempts:
            # Not reached by the request path (it records every retried attempt's error);
            # an item that sent something never ends without an error all the same.
            return asyncio.CancelledError("the bulk run stopped before this item ended")
        return None


class Stopped(Exception):  # noqa: N818 - a signal between modules, not an error users see
    """A bulk item's call ended because its run was stopped, before its next request.

    Internal: it carries nothing, and never reaches users. The bulk run catches it and
    reports ``Tracker.stopped_error()`` instead.
    """

    def __init__(self) -> None:
        super().__init__("stopped before sending")


class Answer:
    """How a call ended when it did not raise: for a read, ``result`` is the parsed body."""

    __slots__ = ("already_gone", "attempts", "planned", "request_id", "result")

    def __init__(
        self,
        already_gone: bool,
        attempts: int,
        request_id: str | None,
        result: Any = None,
        *,
        planned: bool = False,
    ) -> None:
        self.already_gone = already_gone
        self.attempts = attempts
        self.request_id = request_id
        self.result = result
        self.planned = planned  # a dry run's item: it would have been sent


class Call:
    """The state of one call (one operation on one target) across its attempts.

    ``attempts`` counts requests that went out (or started to: a refused connect counts);
    a bulk run reads it to tell an item never sent from one cut off mid-way.
    """

    __slots__ = (
        "attempts",
        "base",
        "budget_spent",
        "deadline",
        "ends_by",
        "gate",
        "generation",
        "headers",
        "ids",
        "may_have_taken_effect",
        "missing_ok",
        "op",
        "refreshed",
        "rerouted",
        "resent_after_drop",
        "target",
        "throttled",
        "tracker",
        "url",
        "waits",
    )

    def __init__(
        self,
        *,
        op: Operation,
        url: yarl.URL,
        gate: ApiGate,
        ids: tuple[str, ...],
        target: str,
        missing_ok: bool = False,
        headers: dict[str, str] | None = None,
        tracker: Tracker | None = None,
        base: str = "",
        generation: int = 0,
    ) -> None:
        self.op = op
        self.url = url
        # The service's base URL the call was built for, and the hosts' generation then:
        # a call built before its service moved is readdressed before it is sent.
        self.base = base
        self.generation = generation
        self.rerouted = 0  # attempts a host never processed (it moved): no try spent
        self.gate = gate
        self.ids = ids  # the path's ids, for the parser (a session's workspace id)
        self.target = target
        self.missing_ok = missing_ok
        self.headers = headers  # headers of the call itself (X-Project-Id), signed too
        self.tracker = tracker  # a bulk item's: its stop signal, and its counts to keep
        self.attempts = 0
        self.deadline = 0.0
        # A deadline the call must meet whatever ``max_time`` says (loop time), or None:
        # a confirmation poll's is the end of its ``wait_timeout``, which bounds the poll,
        # its retries and its waits (see ``start_deadline``).
        self.ends_by: float | None = None
        # Set once an attempt may have deleted the resource without us seeing the answer
        # (sent, then dropped or timed out; 408; 5xx): a later 404 then means success.
        self.may_have_taken_effect = False
        self.refreshed = False  # the auth provider was asked once already for this call
        self.resent_after_drop = False  # the one immediate resend after a dropped connection
        self.budget_spent = 0  # what this call's retries took from the retry budget
        self.throttled = 0  # 429s met: pushback, never counted toward max_tries
        self.waits: Iterator[float] | None = None  # backoff generator, made on the 1st retry

    def start_deadline(self, now: float, max_time: float) -> None:
        """The first attempt starts at ``now``: the call ends by ``max_time`` from now.

        Or by ``ends_by``, if the call has one and it comes first.
        """
        deadline = now + max_time
        ends_by = self.ends_by
        self.deadline = deadline if ends_by is None or ends_by > deadline else ends_by

    @property
    def ends_at(self) -> float | None:
        """When what the call does now must end (loop time); ``None``: no bound yet.

        From its first send on, its deadline; before that, ``ends_by`` (``max_time`` only
        starts at the first send).
        """
        return self.deadline if self.attempts else self.ends_by

    def left(self, now: float) -> float:
        """Seconds from ``now`` (loop time) to the call's deadline (negative: past it)."""
        return self.deadline - now

    def ends_before(self, when: float) -> bool:
        """Whether the call's deadline comes before ``when`` (loop time) or at it."""
        return when >= self.deadline


async def within_deadline(call: Call, waiting: Awaitable[T], late: Callable[[], APIError]) -> T:
    """Await ``waiting``, but not past what is left of ``call`` (``Call.ends_at``).

    Past it, raise ``late()``: its chain as built (``raise_error``), so each wait says
    what it ran out on (the last attempt's error, or what was never checked or sent).
    """
    ends_at = call.ends_at
    if ends_at is None:
        return await waiting
    done = False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout_at(ends_at):
            result = await waiting
            done = True
    if not done:
        raise_error(late())
    return result


class Failure:
    """An attempt to be retried: its typed error, and what was decided about the wait."""

    __slots__ = ("error", "refresh", "rerouted", "throttled", "wait")

    def __init__(
        self,
        error: APIError,
        wait: float | None,
        refresh: int | None = None,
        *,
        throttled: bool = False,
        rerouted: bool = False,
    ) -> None:
        self.error = error
        # The host did not serve the call and its service moved: resend at once.
        self.rerouted = rerouted
        # A 429: pushback, not failure. It spends no retry budget and no try.
        self.throttled = throttled
        # A wait already decided: the server's Retry-After, or 0 for the immediate resend
        # after a dropped connection. None: back off as the policy says.
        self.wait = wait
        # The credentials generation the service refused: refresh past it, then retry.
        self.refresh = refresh


class CallFactory:
    """Builds the calls of one manager."""

    def __init__(
        self,
        hosts: Hosts,
        project_id: str | None,
        max_rate: float | None,
        credentials: Credentials,
        watch: DeletionWatch,
    ) -> None:
        self.project_id = project_id
        self.hosts = hosts
        self._credentials = credentials
        self._watch = watch
        # One gate per (host, API): the gateway's quota is per API, so is the learned rate.
        self._gates = {op.name: ApiGate(max_rate) for op in OPERATIONS}
        self._project_headers = {PROJECT_HEADER: project_id} if project_id is not None else None
        # Per service, resolved at its first call and again after it moves: its base URL
        # (parsed once), and each operation's path under it as a %-template of its ids.
        self._bases: dict[str, tuple[int, str, yarl.URL]] = {}
        self._paths: dict[str, str] = {}

    def _base(self, service: str) -> tuple[int, str, yarl.URL]:
        """The service's (generation, base URL, parsed URL), resolved now if it changed.

        Raises:
            ConfigurationError: The service has no usable endpoint (an unknown region).
        """
        found = self._bases.get(service)
        generation = self.hosts.generation
        if found is not None and found[0] == generation:
            return found
        base = self.hosts.base(service)
        url = yarl.URL(base)
        # Each URL is the endpoint with a new path: with_path() skips re-parsing the whole
        # URL per call. The endpoint's own path (a proxy prefix, say) is kept in front, a %
        # in it escaped, and the project filled in once: building a URL is then one % and
        # one with_path().
        prefix = url.raw_path.rstrip("/").replace("%", "%%")
        project = self.project_id or "{project_id}"
        for op in OPERATIONS:
            if op.service == service:
                self._paths[op.name] = _PLACEHOLDER.sub(
                    "%s", prefix + op.path.replace("{project_id}", project)
                )
        found = (generation, base, url)
        self._bases[service] = found
        return found

    def check(self, op: Operation) -> None:
        """Refuse, before anything is read or sent, an operation this manager cannot make.

        Raises:
            ConfigurationError: No usable endpoint for its service (a region without it),
                or a ModelArts call without a project id or credentials.
        """
        self._base(op.service)
        if op.needs_project:
            if self.project_id is None:
                raise ConfigurationError(
                    f"{op.label} needs a project_id on the SessionManager (--project-id)"
                )
            if not self._credentials.present:
                raise ConfigurationError(
                    f"{op.label} needs credentials: ModelArts requires X-Auth-Token or an "
                    "AK/SK signature"
                )

    def ids(self, op: Operation, values: tuple[object, ...]) -> tuple[str, ...]:
        """Validate the path ids of ``op``, given in the order of ``op.ids``.

        Raises:
            InvalidIdentifierError: An id is malformed.
        """
        specs = op.ids
        if len(specs) == 1 and len(values) == 1:  # the common case, without the loop
            name, longest = specs[0]
            return (validate_id(name, values[0], longest),)
        return tuple(
            [
                validate_id(name, value, longest)
                for (name, longest), value in zip(specs, values, strict=True)
            ]
        )

    def call(
        self,
        op: Operation,
        ids: tuple[str, ...],
        *,
        missing_ok: bool = False,
        tracker: Tracker | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Call:
        """The call of ``op`` on validated ``ids``.

        Raises:
            ConfigurationError: ``op``'s service has no usable endpoint (an unknown region).
        """
        generation, base, parsed = self._base(op.service)
        url = parsed.with_path(self._paths[op.name] % ids, encoded=True)
        if query:
            url = url.with_query(query)
        if op.deletes and self._watch.listings:
            self._watch.removing((op.name, ids[0] if len(ids) > 1 else ""), ids[-1])
        return Call(
            op=op,
            url=url,
            gate=self._gates[op.name],
            ids=ids,
            target="/".join(ids) if ids else str(self.project_id),
            missing_ok=missing_ok,
            headers=self._project_headers,
            tracker=tracker,
            base=base,
            generation=generation,
        )

    def readdress(self, call: Call) -> None:
        """Point ``call`` at its service's current host (after the service moved)."""
        generation, base, parsed = self._base(call.op.service)
        old = call.url
        call.url = parsed.with_path(self._paths[call.op.name] % call.ids, encoded=True)
        if old.raw_query_string:
            call.url = call.url.with_query(old.query)
        call.base, call.generation = base, generation
        if self.hosts.left_unserved(call.op.service):
            # The old host's gateway serves no such API: whatever an attempt there seemed
            # to do (a 500 of that gateway's) says nothing of the new host's 404. (A host
            # that stopped connecting may have done what it was asked: that stays known.)
            call.may_have_taken_effect = False
