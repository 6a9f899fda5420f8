"""Credentials and how they are put on a request.

Every credential class keeps its secret out of ``repr``/``str`` and checks it once, at
construction (visible ASCII only: no CR, LF or other control character), so no request
can carry an injected header.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol, Self, TypeAlias, runtime_checkable

import yarl

from asyncdeleter._config import check_header_value
from asyncdeleter._errors import ConfigurationError
from asyncdeleter._redact import SHORTEST_SECRET, secret_forms
from asyncdeleter._signer import authorization, sdk_date

__all__ = [
    "ENV_AK",
    "ENV_SECURITY_TOKEN",
    "ENV_SK",
    "AkSkAuth",
    "Auth",
    "AuthProvider",
    "AuthSource",
    "Credentials",
    "TokenAuth",
]

# The names the official Huawei Cloud SDK reads (docs/api-facts.md, section 4).
ENV_AK: Final = "HUAWEICLOUD_SDK_AK"
ENV_SK: Final = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN: Final = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a name, not a secret


@runtime_checkable
class Auth(Protocol):
    """What the manager asks of a credential: headers for one attempt of one request."""

    def headers_for(
        self, method: str, url: yarl.URL, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Return the headers that authenticate this attempt (called once per attempt).

        ``extra`` are the request's own headers (``X-Project-Id``): a signature covers
        them, and returns them among its headers.
        """
        ...

    def secrets(self) -> tuple[str, ...]:
        """The values no error or log line may show."""
        ...


def _checked(name: str, value: object, variable: str | None = None) -> str:
    """A credential: a str of at least ``SHORTEST_SECRET`` visible ASCII characters.

    Refused at once, never echoed. The error names the argument, and the environment
    variable when ``from_env`` read it there (``variable``); its ``setting`` is the
    argument, for a command line to name its own flag.
    """
    named = f"{name} ({variable})" if variable else name
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{named} must be a non-empty str", setting=name)
    try:
        check_header_value(named, value)
    except ConfigurationError as exc:
        raise ConfigurationError(str(exc), setting=name) from None
    if not (value.isascii() and value.isprintable()) or " " in value:
        # Tokens, access keys and secret keys are visible ASCII; anything else would be
        # refused by the gateway (or by aiohttp, untyped, at send time).
        raise ConfigurationError(f"{named} must be visible ASCII characters only", setting=name)
    if len(value) < SHORTEST_SECRET:
        # No real IAM token, access key or secret key is this short, and one this short
        # could not be cut out of what a server echoes without mangling ordinary text.
        raise ConfigurationError(
            f"{named} is {len(value)} characters long: real credentials have at least "
            f"{SHORTEST_SECRET} (is it the right value?)",
            setting=name,
        )
    return value


class _Credential:
    """Immutable, compared by value, never shown: the base of the credential classes.

    Plain slotted classes rather than attrs ones: they are few, and attrs' generated
    methods would cost import time for no gain here.
    """

    __slots__ = ()

    def _key(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))


class TokenAuth(_Credential):
    """An IAM token, sent as ``X-Auth-Token``.

    Args:
        token: The token from IAM's ``X-Subject-Token`` header (valid 24 hours).

    Raises:
        ConfigurationError: The token is empty, shorter than 8 characters, or holds
            anything but visible ASCII (a CR, LF, NUL, space...).
    """

    __slots__ = ("_headers", "token")
    token: str
    _headers: dict[str, str]

    def __init__(self, token: str) -> None:
        object.__setattr__(self, "token", _checked("token", token))
        # Built once: every attempt sends the same header, so no per-request dict.
        object.__setattr__(self, "_headers", {"X-Auth-Token": token})

    def _key(self) -> tuple[object, ...]:
        return (self.token,)

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error or a log line (a server may echo it)."""
        return (self.token,)

    def headers_for(
        self, method: str, url: yarl.URL, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Return ``{"X-Auth-Token": token}``; the same for every attempt (``extra`` unused)."""
        return self._headers

    def __repr__(self) -> str:
        return "TokenAuth(token='***')"

    __str__ = __repr__


class AkSkAuth(_Credential):
    """An access key pair: every attempt is signed with ``SDK-HMAC-SHA256``.

    Each attempt gets a fresh ``X-Sdk-Date`` (the gateway rejects clocks more than 15
    minutes off, and a retry may come long after the first send), the ``Host`` it is sent
    to (with the port when it is not the default) and, for temporary credentials, the
    ``X-Security-Token``.

    Args:
        ak: The access key id.
        sk: The secret access key.
        security_token: The token of temporary credentials, if these are.

    Raises:
        ConfigurationError: A value is empty, shorter than 8 characters, or holds
            anything but visible ASCII (a CR, LF, NUL, space...).
    """

    __slots__ = ("_sk_bytes", "ak", "security_token", "sk")
    ak: str
    sk: str
    security_token: str | None
    _sk_bytes: bytes

    def __init__(self, ak: str, sk: str, security_token: str | None = None) -> None:
        object.__setattr__(self, "ak", _checked("ak", ak))
        object.__setattr__(self, "sk", _checked("sk", sk))
        if security_token is not None:
            _checked("security_token", security_token)
        object.__setattr__(self, "security_token", security_token)
        object.__setattr__(self, "_sk_bytes", sk.encode())

    def _key(self) -> tuple[object, ...]:
        return (self.ak, self.sk, self.security_token)

    def secrets(self) -> tuple[str, ...]:
        """What must never appear in an error or a log line (a server may echo it)."""
        return (self.sk,) if self.security_token is None else (self.sk, self.security_token)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read ``HUAWEICLOUD_SDK_AK``, ``_SK`` and ``_SECURITY_TOKEN``, as the official SDK does.

        Raises:
            ConfigurationError: The access key id or the secret key is not set.
        """
        env = os.environ if environ is None else environ
        ak, sk = env.get(ENV_AK), env.get(ENV_SK)
        if not ak or not sk:
            missing = ENV_SK if ak else ENV_AK
            raise ConfigurationError(
                f"{ENV_AK} and {ENV_SK} must both be set ({missing} is not)",
                setting="sk" if ak else "ak",
            )
        security_token = env.get(ENV_SECURITY_TOKEN) or None
        # Checked here first so that a refusal names the variable it was read from.
        _checked("ak", ak, ENV_AK)
        _checked("sk", sk, ENV_SK)
        if security_token is not None:
            _checked("security_token", security_token, ENV_SECURITY_TOKEN)
        return cls(ak, sk, security_token)

    def headers_for(
        self, method: str, url: yarl.URL, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Sign one attempt: ``Host``, ``X-Sdk-Date``, ``Authorization`` (and the token).

        ``extra`` (the request's own headers, such as ``X-Project-Id``) are signed too and
        returned with the rest.
        """
        headers = dict(extra) if extra else {}
        headers["Host"] = url.host_port_subcomponent or ""
        headers["X-Sdk-Date"] = sdk_date()
        if self.security_token is not None:
            headers["X-Security-Token"] = self.security_token
        headers["Authorization"] = authorization(
            ak=self.ak,
            sk=self._sk_bytes,
            method=method,
            raw_path=url.raw_path,
            query=url.query.items(),
            headers=headers,
        )
        return headers

    def __repr__(self) -> str:
        token = ", security_token='***'" if self.security_token is not None else ""
        return f"AkSkAuth(ak={self.ak!r}, sk='***'{token})"

    __str__ = __repr__


#: An async callable returning fresh credentials, for tokens and keys that expire.
AuthProvider: TypeAlias = Callable[[], Awaitable[Auth]]
#: What ``SessionManager(auth=...)`` accepts.
AuthSource: TypeAlias = Auth | AuthProvider | None


#: How many of a provider's secrets (tokens, SKs, security tokens) are cut out of errors.
_SECRETS_KEPT: Final = 32


class Credentials:
    """The manager's view of ``auth=``: fixed credentials, or a provider asked on demand.

    A provider is asked once before the first request, and again when the service refuses
    the credentials it gave; concurrent refusals share one refresh, and a refusal of
    credentials already replaced triggers none.
    """

    __slots__ = (
        "_closed",
        "_current",
        "_generation",
        "_refreshing",
        "_sent",
        "fixed",
        "provider",
        "secrets",
    )

    def __init__(self, auth: AuthSource) -> None:
        self.fixed: Auth | None = None
        self.provider: AuthProvider | None = None
        if auth is None or isinstance(auth, Auth):
            self.fixed = auth
        elif callable(auth):
            self.provider = auth
        else:
            raise ConfigurationError(
                "auth must be TokenAuth, AkSkAuth, an async callable returning one, or None; "
                f"got {type(auth).__name__}"
            )
        self._current: Auth | None = None
        self._generation = 0
        self._refreshing: asyncio.Future[None] | None = None
        self._closed = False
        # Every secret this manager has sent (a provider's earlier ones too: a server may
        # echo an old token long after a refresh), and the forms an echo gives them, for
        # cutting out of what servers say (_redact).
        self._sent: tuple[str, ...] = self.fixed.secrets() if self.fixed is not None else ()
        self.secrets: tuple[str, ...] = secret_forms(self._sent)

    @property
    def present(self) -> bool:
        """Whether requests will carry credentials at all."""
        return self.fixed is not None or self.provider is not None

    async def current(self) -> tuple[Auth | None, int]:
        """The credentials to use now, and their generation (for ``refresh``)."""
        if self.provider is None:
            return self.fixed, 0
        if self._current is None:
            await self.refresh(self._generation)
        return self._current, self._generation

    async def refresh(self, seen_generation: int) -> None:
        """Ask the provider for new credentials unless a newer generation already exists."""
        if self._current is not None and self._generation > seen_generation:
            return
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._fetch())
        refreshing = self._refreshing
        # Shielded: one caller's cancellation must not cancel the refresh the others await.
        try:
            await asyncio.shield(refreshing)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if (
                self._closed
                and refreshing.cancelled()
                and (current is None or not current.cancelling())
            ):
                # Nobody cancelled this caller: the manager closed and cancelled the fetch.
                raise ConfigurationError(
                    "the SessionManager was closed while fetching credentials"
                ) from None
            raise

    async def _fetch(self) -> None:
        assert self.provider is not None  # noqa: S101 - only called with a provider
        try:
            auth = await self.provider()
            if not isinstance(auth, Auth):
                raise ConfigurationError(
                    f"the auth provider returned {type(auth).__name__}, not TokenAuth or AkSkAuth"
                )
            self._current = auth
            self._generation += 1
            fresh = tuple(secret for secret in auth.secrets() if secret not in self._sent)
            # The newest first, and a bounded number: a provider asked for years keeps
            # its recent credentials, which are the ones a server could still echo.
            self._sent = (fresh + self._sent)[:_SECRETS_KEPT]
            self.secrets = secret_forms(self._sent)
        finally:
            self._refreshing = None

    async def aclose(self) -> None:
        """Cancel a refresh still under way (the manager is closing)."""
        self._closed = True
        refreshing, self._refreshing = self._refreshing, None
        if refreshing is not None and not refreshing.done():
            refreshing.cancel()
            with contextlib.suppress(BaseException):
                await refreshing
