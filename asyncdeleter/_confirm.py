"""Confirmed deletion: after DeleteWorkspace is accepted, poll until the workspace is gone.

A ModelArts deletion finishes in the background (docs/api-facts.md, section 5): the 200 means
"accepted", the workspace shows ``DELETING``, then either vanishes (ShowWorkspace answers
404 ``ModelArts.0104``) or ends ``DELETE_FAILED`` with the reason in ``status_info``.

Each poll is an ordinary ShowWorkspace call through the request path (limits, rate, retries,
deadline); between polls nothing is held, no slot and no turn. ``wait_timeout`` alone
bounds the whole wait, counted from the moment the deletion was accepted: it is the one
deadline, and each poll (its turn, its attempts, its retries) gets at most what is left of
it, however long ``max_time`` is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator

from asyncdeleter._calls import Stopped, Tracker
from asyncdeleter._config import RetryPolicy
from asyncdeleter._decide import transient
from asyncdeleter._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    DeletionFailedError,
    WaitTimeoutError,
)
from asyncdeleter._models import Workspace

__all__ = ["DELETE_FAILED", "poll_waits", "wait_until_gone"]

DELETE_FAILED = "DELETE_FAILED"


def poll_waits(policy: RetryPolicy) -> Iterator[float]:
    """The waits between polls: from ``poll_initial_wait``, doubling to ``poll_max_wait``.

    Each is drawn between half and all of its ceiling ("equal jitter"): spread out, so a
    bulk run's polls do not come in waves, yet never much shorter than asked.
    """
    ceiling = policy.poll_initial_wait
    while True:
        yield random.uniform(ceiling / 2, ceiling)
        ceiling = min(ceiling * 2, policy.poll_max_wait)


async def wait_until_gone(
    show: Callable[[float], Awaitable[Workspace | None]],
    *,
    workspace_id: str,
    policy: RetryPolicy,
    wait_timeout: float,
    tracker: Tracker | None,
) -> None:
    """Return once ShowWorkspace says 404; raise if the deletion failed or outlasts the wait.

    Args:
        show: Makes one ShowWorkspace call (with its own retries) that ends by the loop
            time it is given; ``None`` means gone.
        workspace_id: For the messages.
        policy: The manager's retry policy (its poll waits).
        wait_timeout: Seconds from now (the deletion's acceptance) to give up.
        tracker: A bulk item's: its run's stop signal (a stopped run sends no more
            polls), and what the item reports if it stops from now on.

    Raises:
        DeletionFailedError: The workspace ended ``DELETE_FAILED``.
        WaitTimeoutError: It was still there at ``wait_timeout``.
        APIStatusError: A poll was refused (401, 403, 400), with a message saying the
            deletion was accepted but not confirmed.
        Stopped: The bulk run stopped while this item waited to poll, or while a poll
            waited (for its turn, a slot or a retry).
    """
    loop = asyncio.get_running_loop()
    accepted_at = loop.time()
    deadline = accepted_at + wait_timeout
    last_status: str | None = None
    last_error: APIError | None = None

    def stopped() -> WaitTimeoutError:
        # The DELETE went out and was accepted: say so, not "never sent", whichever wait
        # of the confirmation (between polls, or a poll's own) the stop ended.
        return WaitTimeoutError(
            f"delete_workspace {workspace_id}: accepted, but the run stopped before it was "
            "confirmed gone; waiting or deleting again is safe",
            workspace_id=workspace_id,
            last_status=last_status,
            waited=loop.time() - accepted_at,
            stopped=True,
        )

    if tracker is not None:
        tracker.confirming = stopped
    for planned in poll_waits(policy):
        wait = min(planned, max(0.0, deadline - loop.time()))
        if tracker is None:
            await asyncio.sleep(wait)
        else:
            await tracker.stop.sleep(wait)
            if tracker.stop.stopped:
                raise Stopped
        if loop.time() >= deadline:
            break
        try:
            workspace = await show(deadline)
            if workspace is None:
                # The service's own "gone" (ModelArts.0104), and nothing else: the poll asks
                # for it (missing_ok), so any other 404 (a gateway's, a proxy's page, "no
                # such project") is a refusal below, never a confirmation.
                return
        except (APIConnectionError, APIStatusError) as exc:
            # A refusal (401, 403, 400) stays one; the service struggling or throttling
            # may not last.
            if isinstance(exc, APIStatusError) and (
                exc.status is None or not transient(exc.status)
            ):
                raise _not_confirmed(exc) from None
            last_error = exc  # a poll that failed after its retries: poll again later
            continue
        last_status = workspace.status
        if workspace.status == DELETE_FAILED:
            reason = workspace.status_info or "no reason given"
            raise DeletionFailedError(
                f"delete_workspace {workspace_id}: the service accepted the deletion, then "
                f"marked the workspace DELETE_FAILED: {reason}",
                workspace_id=workspace_id,
                status_info=workspace.status_info,
                request_id=None,
            )
    waited = loop.time() - accepted_at
    seen = f"still {last_status}" if last_status else "no poll answered"
    if last_error is not None and not last_status:
        seen += f" (last poll: {last_error})"
    raise WaitTimeoutError(
        f"delete_workspace {workspace_id}: accepted, but not confirmed gone within "
        f"wait_timeout={wait_timeout:g}s ({seen}); waiting or deleting again is safe",
        workspace_id=workspace_id,
        last_status=last_status,
        waited=waited,
    )


def _not_confirmed(error: APIStatusError) -> APIStatusError:
    """The same error, its message saying that the deletion was accepted all the same."""
    error.message = f"{error.message}; the deletion was accepted but not confirmed"
    error.args = (error.message,)
    return error
