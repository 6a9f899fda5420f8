"""Configuration as data: frozen, keyword-only attrs classes and their default constants.

Change one option with ``attrs.evolve(policy, max_tries=3)``; nothing here has a setter.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

import attrs
import yarl

from asyncdeleter._errors import ConfigurationError
from asyncdeleter._regions import region_candidates

if TYPE_CHECKING:
    from asyncdeleter._records import RetryDetails

__all__ = [
    "CONFIRMING_PER_SLOT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_INITIAL_WAIT",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_MAX_TIME",
    "DEFAULT_MAX_TRIES",
    "DEFAULT_MAX_WAIT",
    "DEFAULT_POLL_INITIAL_WAIT",
    "DEFAULT_POLL_MAX_WAIT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRY_BUDGET",
    "DEFAULT_RETRY_STATUSES",
    "DEFAULT_WAIT_TIMEOUT",
    "FABRIC_PAGE_MAX",
    "MAX_BODY_BYTES",
    "MODELARTS_PAGE_MAX",
    "NEVER_RETRIED_STATUSES",
    "RETRY_COST",
    "TIMEOUT_RETRY_COST",
    "Endpoints",
    "RetryPolicy",
    "Timeouts",
    "check_header_value",
    "check_url_security",
    "check_wait_timeout",
]

DEFAULT_MAX_CONCURRENCY: Final = 64
DEFAULT_MAX_TRIES: Final = 5
DEFAULT_INITIAL_WAIT: Final = 0.5
DEFAULT_MAX_WAIT: Final = 20.0
DEFAULT_MAX_TIME: Final = 120.0
DEFAULT_MAX_RETRY_AFTER: Final = 60.0
DEFAULT_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: A client error that retrying cannot fix (401 has its own rule: see the auth provider).
NEVER_RETRIED_STATUSES: Final = frozenset({400, 401, 403, 404})
#: The manager-wide retry budget (in the spirit of botocore's retry quota): each retry
#: spends RETRY_COST (a timeout TIMEOUT_RETRY_COST), each success refills 1.
DEFAULT_RETRY_BUDGET: Final = 500
RETRY_COST: Final = 5
TIMEOUT_RETRY_COST: Final = 10
#: A ``wait=True`` deletion polls ShowWorkspace after about this long, the waits growing
#: (doubling, jittered) to POLL_MAX_WAIT; DEFAULT_WAIT_TIMEOUT bounds the whole wait.
DEFAULT_POLL_INITIAL_WAIT: Final = 1.0
DEFAULT_POLL_MAX_WAIT: Final = 15.0
DEFAULT_WAIT_TIMEOUT: Final = 600.0
#: A bulk ``wait=True`` run keeps up to this many items in progress per concurrency slot:
#: most of them wait between polls, holding no slot.
CONFIRMING_PER_SLOT: Final = 8
#: The largest pages the services serve (ListSqlSessions, ListWorkspace): the defaults.
FABRIC_PAGE_MAX: Final = 100
MODELARTS_PAGE_MAX: Final = 1000
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 30.0
#: A response body is read up to this many bytes; a misbehaving gateway cannot exhaust memory.
MAX_BODY_BYTES: Final = 1024 * 1024


def check_header_value(name: str, value: str) -> str:
    """Return ``value`` if it is safe in an HTTP header, else raise ``ConfigurationError``.

    A CR or LF would let a value inject headers, and no control character (ESC, DEL, VT,
    NUL...) belongs in a header or a URL; the error never repeats the value, which may be
    a secret.
    """
    if not value.isprintable() and any(c < " " or c == "\x7f" for c in value):
        raise ConfigurationError(f"{name} contains a control character (CR, LF, ESC, DEL...)")
    return value


def _shown(value: object) -> str:
    """An endpoint as an error message may quote it: any ``user:password@`` masked."""
    text = repr(value)
    at = text.rfind("@")
    if at != -1:
        scheme_end = text.find("//")
        start = scheme_end + 2 if scheme_end != -1 and scheme_end < at else 1
        text = f"{text[:start]}***@{text[at + 1 :]}"
    return text


def _base_url(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str URL, got {type(value).__name__}")
    check_header_value(name, value)
    url: yarl.URL | None = None
    with contextlib.suppress(TypeError, ValueError):
        url = yarl.URL(value)
    if url is None:
        # Raised outside the except block: the parser's error (which may quote the
        # password) must not ride along as __context__.
        raise ConfigurationError(f"{name} is not a URL: {_shown(value)}")
    if url.user is not None or url.password is not None or "@" in (url.raw_authority or ""):
        # Never echo the value: the part before '@' is a password more often than not.
        raise ConfigurationError(
            f"{name} must not carry credentials (user:password@): {_shown(value)}"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL, got {_shown(value)}")
    if url.query_string or url.fragment:
        raise ConfigurationError(f"{name} must not carry a query or a fragment: {_shown(value)}")
    return str(url).rstrip("/")


def _strip_slash(value: object) -> str:
    return str(value).rstrip("/")


def _endpoint_validator(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None:
        _base_url(attribute.name, value)


def _optional_url(value: object) -> str | None:
    return None if value is None else str(value).rstrip("/")


@attrs.frozen(kw_only=True)
class Endpoints:
    """Base URLs of the two services, given explicitly: they are different hosts.

    A field left ``None`` is derived from the manager's ``region`` at its first use
    (docs/api-facts.md, section 7). An endpoint given here is used as it is and never
    moves; a region-derived Fabric endpoint may move once to the other documented host.

    Attributes:
        fabric: The DataArts Fabric SQL session API, e.g.
            ``https://fabric-ep.cn-north-4.myhuaweicloud.com``.
        modelarts: ModelArts, e.g. ``https://modelarts.cn-north-4.myhuaweicloud.com``.
    """

    fabric: str | None = attrs.field(
        default=None, converter=_optional_url, validator=_endpoint_validator
    )
    modelarts: str | None = attrs.field(
        default=None, converter=_optional_url, validator=_endpoint_validator
    )

    @classmethod
    def for_region(
        cls, region: str, *, fabric: str | None = None, modelarts: str | None = None
    ) -> Endpoints:
        """The first documented base URL of each service in ``region``; either overridable.

        A service the region tables do not know in ``region`` is left ``None``. Prefer
        ``SessionManager(region=...)``, which resolves each service at first use and may
        move a Fabric endpoint to its second documented host; endpoints fixed here never
        move.

        Args:
            region: A Huawei Cloud region id such as ``cn-north-4``.
            fabric: Use this DataArts Fabric base URL instead of the derived one.
            modelarts: Use this ModelArts base URL instead of the derived one.

        Raises:
            ConfigurationError: Neither service is known in ``region``.
        """
        found: dict[str, str | None] = {"fabric": fabric, "modelarts": modelarts}
        problems = []
        for service, given in found.items():
            if given is None:
                try:
                    found[service] = region_candidates(service, region)[0]
                except ConfigurationError as exc:
                    problems.append(str(exc))
        if len(problems) == 2:
            raise ConfigurationError(problems[1])
        return cls(**found)


def _is_loopback(host: str) -> bool:
    # No DNS lookup: only literal loopback addresses and the name localhost itself count.
    # (``*.localhost`` names are loopback only by convention: a resolver, /etc/hosts or a
    # proxy may send them anywhere, so they are as remote as any other name.)
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url_security(name: str, value: str, *, allow_insecure_http: bool) -> None:
    """Refuse one base URL that is plain ``http://`` to a non-loopback host.

    Raises:
        ConfigurationError: ``value`` is plain HTTP to a non-loopback host.
    """
    url = yarl.URL(value)
    if not allow_insecure_http and url.scheme == "http" and not _is_loopback(url.host or ""):
        raise ConfigurationError(
            f"{name} endpoint {url} is plain HTTP to a non-loopback host; tokens and "
            "signatures would travel in clear text (pass allow_insecure_http=True to "
            "accept that)"
        )


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ConfigurationError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _retry_statuses(
    instance: object, attribute: attrs.Attribute[frozenset[int]], value: frozenset[int]
) -> None:
    bad = sorted(s for s in value if s in NEVER_RETRIED_STATUSES or not 400 <= s <= 599)
    if bad:
        raise ConfigurationError(
            f"retry_statuses may not contain {bad}: 400, 401, 403 and 404 are never "
            "retried and only 4xx/5xx statuses can be"
        )


# Converters are plain functions rather than the frozenset/tuple builtins: attrs inspects a
# converter's signature, which for a builtin means parsing text, slowly, at import.
def _statuses(value: Iterable[int]) -> frozenset[int]:
    return frozenset(value)


def check_hook(name: str, hook: object) -> None:
    """Refuse a hook that is not a plain callable (an ``async def`` would never run).

    Raises:
        ConfigurationError: ``hook`` is not callable, or is a coroutine function.
    """
    if not callable(hook):
        raise ConfigurationError(f"{name} must be a callable, got {hook!r}")
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    ):
        raise ConfigurationError(
            f"{name} must be a plain callable, not a coroutine function: it is called "
            "inline, on the request path, and never awaited"
        )


def _hooks(
    value: Iterable[Callable[[RetryDetails], object]],
) -> tuple[Callable[[RetryDetails], object], ...]:
    hooks = tuple(value)
    for hook in hooks:
        check_hook("on_retry", hook)
    return hooks


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """What is retried, how long to wait, and when to stop.

    Waits grow exponentially from ``initial_wait`` (doubling, capped at ``max_wait``) with
    full jitter; a ``Retry-After`` answer sets the wait instead, capped at
    ``max_retry_after``. ``max_time`` is the one overall deadline of a call, counted from
    its first send: a wait that would end past it gives up at once with the last error.

    Attributes:
        max_tries: Failed requests a call may send in all (1 turns retrying off). A 429 is
            pushback, not failure: it does not count, and is retried while ``max_time``
            lasts (unless 429 is left out of ``retry_statuses``).
        initial_wait: The first backoff ceiling, in seconds.
        max_wait: The cap on any single backoff wait, in seconds.
        max_time: The overall deadline of a call, in seconds.
        max_retry_after: The cap on a server-requested ``Retry-After`` wait, in seconds.
        retry_statuses: The HTTP statuses that are retried.
        retry_connection_errors: Retry dropped or reset connections and timeouts.
        on_retry: Plain callables, each called with a frozen ``RetryDetails`` before every
            retry wait. A hook that raises is logged and otherwise ignored.
        wait: ``False`` turns every wait (backoff and ``Retry-After``) into zero: the
            public switch for tests.
        retry_budget: The manager-wide retry budget, for failures only (a 429 spends
            nothing). Every retry spends 5 units (10 after a timeout), every success gives
            back 1 (or what its retries spent), so that in
            a full outage N calls send about N requests, not ``max_tries`` x N. When it is
            spent, failing calls stop retrying (their error says so) until successes
            refill it. ``None`` turns it off.
        poll_initial_wait: A ``wait=True`` deletion first asks whether the workspace is
            gone about this many seconds after the deletion was accepted (jittered).
        poll_max_wait: The waits between those polls double up to this. ``wait=False``
            does not shorten them (they are not retries).
    """

    max_tries: int = attrs.field(default=DEFAULT_MAX_TRIES, validator=_at_least_one)
    initial_wait: float = attrs.field(default=DEFAULT_INITIAL_WAIT, validator=_non_negative)
    max_wait: float = attrs.field(default=DEFAULT_MAX_WAIT, validator=_non_negative)
    max_time: float = attrs.field(default=DEFAULT_MAX_TIME, validator=_positive)
    max_retry_after: float = attrs.field(default=DEFAULT_MAX_RETRY_AFTER, validator=_non_negative)
    retry_statuses: frozenset[int] = attrs.field(
        default=DEFAULT_RETRY_STATUSES, converter=_statuses, validator=_retry_statuses
    )
    retry_connection_errors: bool = True
    on_retry: tuple[Callable[[RetryDetails], object], ...] = attrs.field(
        default=(), converter=_hooks
    )
    wait: bool = True
    retry_budget: int | None = attrs.field(default=DEFAULT_RETRY_BUDGET)
    poll_initial_wait: float = attrs.field(default=DEFAULT_POLL_INITIAL_WAIT, validator=_positive)
    poll_max_wait: float = attrs.field(default=DEFAULT_POLL_MAX_WAIT, validator=_positive)

    @retry_budget.validator
    def _check_budget(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ConfigurationError(f"retry_budget must be None or an int >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-attempt timeouts, in seconds. Time spent queueing for the semaphore never counts.

    Attributes:
        connect: Establishing a connection (TCP and TLS).
        read: The longest silence while waiting for or reading the answer.
    """

    connect: float = attrs.field(default=DEFAULT_CONNECT_TIMEOUT, validator=_positive)
    read: float = attrs.field(default=DEFAULT_READ_TIMEOUT, validator=_positive)


def check_wait_timeout(wait_timeout: object) -> None:
    """Refuse a ``wait_timeout`` that is not a positive number of seconds."""
    if not isinstance(wait_timeout, int | float) or not wait_timeout > 0:
        raise ConfigurationError(f"wait_timeout must be > 0 seconds, got {wait_timeout!r}")
