"""Credentials and how they are put on a request.

Every credential class keeps its secret out of ``repr``/``str`` and checks it for CR/LF
once, at construction, so no request can carry an injected header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeAlias, runtime_checkable

import attrs
import yarl

from asyncdeleter._config import check_header_value
from asyncdeleter._errors import ConfigurationError

__all__ = ["Auth", "AuthProvider", "AuthSource", "TokenAuth"]


@runtime_checkable
class Auth(Protocol):
    """What the manager asks of a credential: headers for one attempt of one request."""

    def headers_for(self, method: str, url: yarl.URL) -> dict[str, str]:
        """Return the headers that authenticate this attempt (called once per attempt)."""
        ...


def _check_token(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{attribute.name} must be a non-empty str")
    check_header_value(attribute.name, value)


@attrs.frozen(repr=False)
class TokenAuth:
    """An IAM token, sent as ``X-Auth-Token``.

    Args:
        token: The token from IAM's ``X-Subject-Token`` header (valid 24 hours).
    """

    token: str = attrs.field(validator=_check_token)
    _headers: dict[str, str] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # Built once: every attempt sends the same header, so no per-request dict.
        object.__setattr__(self, "_headers", {"X-Auth-Token": self.token})

    def headers_for(self, method: str, url: yarl.URL) -> dict[str, str]:
        """Return ``{"X-Auth-Token": token}``; the same for every attempt."""
        return self._headers

    def __repr__(self) -> str:
        return "TokenAuth(token='***')"

    __str__ = __repr__


#: An async callable returning fresh credentials, for tokens and keys that expire.
AuthProvider: TypeAlias = Callable[[], Awaitable[Auth]]
#: What ``SessionManager(auth=...)`` accepts.
AuthSource: TypeAlias = Auth | AuthProvider | None
