"""The lifecycle of a manager's pool: opened on first use, bound to one loop, closed once.

A mixin of ``SessionManager``. The pool (the aiohttp session, the event loop it belongs to,
``closed``) lives on the shared ``Transport``, so a view (``with_options``) sees the
manager's state; a view's ``aclose()`` does nothing, and its session comes from the manager
that owns the pool (``_owner``).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from types import TracebackType
from typing import TYPE_CHECKING, Self

from asyncdeleter._auth import Credentials
from asyncdeleter._errors import ConfigurationError
from asyncdeleter._request import RequestPath, other_loop_error
from asyncdeleter._transport import Transport

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Lifecycle"]


class Lifecycle:
    """``async with``, ``aclose()``, ``closed``, and the session every call is sent on."""

    # Set by SessionManager.__init__.
    max_concurrency: int
    _owner: Lifecycle
    _transport: Transport
    _path: RequestPath
    _credentials: Credentials
    _session: aiohttp.ClientSession | None
    _owns_session: bool
    _ssl: ssl_module.SSLContext | None
    _trace_configs: tuple[aiohttp.TraceConfig, ...]

    async def __aenter__(self) -> Self:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the session was the caller's). Idempotent.

        Calls still waiting (to retry, for a slot, for credentials) end with a
        ``ConfigurationError``; nothing more is sent. On a view (``with_options``) it does
        nothing: the manager owns the pool.
        """
        if self._owner is not self:
            return
        self._transport.closed = True
        await self._credentials.aclose()
        session, self._session = self._session, None
        self._transport.session = None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` has been called (on the manager that owns the pool)."""
        return self._transport.closed

    def _ensure_open(self) -> None:
        if self._transport.closed:
            raise ConfigurationError("this SessionManager is closed")

    def _ensure_session(self) -> aiohttp.ClientSession:
        """The session (created on first use), bound to the running event loop."""
        owner = self._owner
        if owner is not self:
            return owner._ensure_session()  # the pool is the manager's, not the view's
        self._ensure_open()
        transport = self._transport
        loop = asyncio.get_running_loop()
        if transport.loop is None:
            transport.loop = loop
        elif transport.loop is not loop:
            raise other_loop_error()
        session = self._session
        if session is None:
            session = self._session = transport.open_session(
                pool=self.max_concurrency,
                ssl=self._ssl,
                timeouts=self._path.attempt_timeouts,
                trace_configs=self._trace_configs,
            )
        elif session.closed:
            raise ConfigurationError("the aiohttp session given to this SessionManager is closed")
        else:
            transport.borrowed = not self._owns_session
        transport.session = session
        return session
