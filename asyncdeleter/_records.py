"""The frozen records that hooks are handed: plain data, never a header value or a secret.

A module of its own so that ``_config`` (which names them in ``RetryPolicy``) and the
request path (which builds them) both import it, and not each other.
"""

from __future__ import annotations

import attrs

__all__ = ["RetryDetails"]


@attrs.frozen(kw_only=True)
class RetryDetails:
    """What a retry hook is told, just before the manager waits and tries again.

    Attributes:
        operation: The public method, such as ``close_session`` or ``show_workspace``.
        target: The ids the call is about, such as ``ws-1/sess-9``.
        attempt: The number of the attempt that just failed (1 for the first).
        wait: How long the manager will now wait, in seconds.
        cause: The typed error of the failed attempt.
        status: Its HTTP status, or ``None`` when no answer arrived.
    """

    operation: str
    target: str
    attempt: int
    wait: float
    cause: BaseException
    status: int | None
