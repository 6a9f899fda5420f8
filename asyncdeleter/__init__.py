"""asyncdeleter: tear down Huawei Cloud resources from asyncio, thousands at a time.

Close DataArts Fabric SQL sessions and delete ModelArts workspaces through one shared
connection pool, one concurrency limit, typed errors and retries with backoff.
The emulator for tests lives in ``asyncdeleter.testing``.
"""

from asyncdeleter._auth import AkSkAuth, TokenAuth
from asyncdeleter._bulk import BulkReport, BulkRun, Outcome, OutcomeKind
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
    InternalServerError,
    InvalidIdentifierError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from asyncdeleter._manager import SessionManager
from asyncdeleter._models import DeletedWorkspace
from asyncdeleter._retry import RetryDetails
from asyncdeleter._version import __version__

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
    "Endpoints",
    "InternalServerError",
    "InvalidIdentifierError",
    "NotFoundError",
    "Outcome",
    "OutcomeKind",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryDetails",
    "RetryPolicy",
    "ServerError",
    "SessionManager",
    "Timeouts",
    "TokenAuth",
    "__version__",
]
