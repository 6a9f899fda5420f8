"""asyncdeleter: tear down Huawei Cloud resources from asyncio, thousands at a time.

Close DataArts Fabric SQL sessions and delete ModelArts workspaces through one shared
connection pool, one concurrency limit, typed errors and retries with backoff; list and
show both services; confirm that a workspace deletion really finished.
The emulator for tests lives in ``asyncdeleter.testing``.
"""

from typing import TYPE_CHECKING, Any

from asyncdeleter._auth import AkSkAuth, TokenAuth
from asyncdeleter._config import Endpoints, RetryPolicy, Timeouts
from asyncdeleter._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AsyncDeleterError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DeletionFailedError,
    EndpointNotServedError,
    InternalServerError,
    InvalidIdentifierError,
    MalformedResponseError,
    NotFoundError,
    ParentNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnverifiedNotFoundError,
    WaitTimeoutError,
)
from asyncdeleter._ids import session_target as check_session_target
from asyncdeleter._ids import workspace_target as check_workspace_id
from asyncdeleter._manager import SessionManager
from asyncdeleter._models import DeletedWorkspace, SqlSession, Workspace
from asyncdeleter._records import RequestRecord, RetryDetails
from asyncdeleter._version import __version__

if TYPE_CHECKING:
    from asyncdeleter._bulk import BulkReport, BulkRun, Outcome, OutcomeKind

_LAZY = frozenset({"BulkReport", "BulkRun", "Outcome", "OutcomeKind"})


def __getattr__(name: str) -> Any:
    # The bulk-run names load on first use: most programs that only delete one thing at a
    # time never pay for them at import (see the import-time target in benchmarks/).
    if name in _LAZY:
        from asyncdeleter import _bulk  # noqa: PLC0415

        return getattr(_bulk, name)
    raise AttributeError(f"module 'asyncdeleter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AkSkAuth",
    "AsyncDeleterError",
    "AuthenticationError",
    "BadRequestError",
    "BulkReport",
    "BulkRun",
    "ConfigurationError",
    "DeletedWorkspace",
    "DeletionFailedError",
    "EndpointNotServedError",
    "Endpoints",
    "InternalServerError",
    "InvalidIdentifierError",
    "MalformedResponseError",
    "NotFoundError",
    "Outcome",
    "OutcomeKind",
    "ParentNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestRecord",
    "RequestTimeoutError",
    "RetryDetails",
    "RetryPolicy",
    "ServerError",
    "SessionManager",
    "SqlSession",
    "Timeouts",
    "TokenAuth",
    "TransportError",
    "UnverifiedNotFoundError",
    "WaitTimeoutError",
    "Workspace",
    "__version__",
    "check_session_target",
    "check_workspace_id",
]
