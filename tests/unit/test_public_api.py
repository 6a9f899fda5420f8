"""The public surface: exactly the names in __all__, each documented."""

from __future__ import annotations

import inspect

import asyncdeleter
import asyncdeleter.testing

EXPECTED = {
    "APIConnectionError", "APIError", "APIStatusError", "APITimeoutError", "AkSkAuth",
    "AsyncDeleterError",
    "AuthenticationError", "BadRequestError", "BulkReport", "BulkRun", "ConfigurationError",
    "DeletedWorkspace", "Endpoints", "InternalServerError", "InvalidIdentifierError",
    "NotFoundError", "Outcome", "OutcomeKind", "PermissionDeniedError", "RateLimitError",
    "RequestTimeoutError", "RetryDetails", "RetryPolicy", "ServerError", "SessionManager",
    "Timeouts", "TokenAuth",
    # Observability.
    "RequestRecord",
    "TransportError", "__version__",
    # The read side and confirmed deletion.
    "SqlSession", "Workspace", "DeletionFailedError", "WaitTimeoutError",
    "MalformedResponseError", "check_session_target", "check_workspace_id",
    # A 404 only on evidence: the three that are not a NotFoundError.
    "EndpointNotServedError", "ParentNotFoundError", "UnverifiedNotFoundError",
}  # fmt: skip


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        n
        for n in dir(asyncdeleter)
        if not n.startswith("_") and not inspect.ismodule(getattr(asyncdeleter, n))
    }
    assert set(asyncdeleter.__all__) == EXPECTED
    assert public | {"__version__"} == EXPECTED


def test_every_public_name_has_a_docstring() -> None:
    for module in (asyncdeleter, asyncdeleter.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_error_tree_matches_the_design() -> None:
    ad = asyncdeleter
    assert issubclass(ad.ConfigurationError, ad.AsyncDeleterError)
    assert issubclass(ad.ConfigurationError, ValueError)
    assert issubclass(ad.InvalidIdentifierError, ValueError)
    for cls in (
        ad.BadRequestError,
        ad.AuthenticationError,
        ad.PermissionDeniedError,
        ad.NotFoundError,
        ad.RequestTimeoutError,
        ad.RateLimitError,
        ad.ServerError,
    ):
        assert issubclass(cls, ad.APIStatusError)
    assert issubclass(ad.InternalServerError, ad.ServerError)
    # A wrong endpoint, a missing parent or an unchecked 404 is an APIStatusError that
    # `except NotFoundError: pass` cannot swallow.
    evidence: tuple[type[ad.APIStatusError], ...] = (
        ad.EndpointNotServedError,
        ad.ParentNotFoundError,
        ad.UnverifiedNotFoundError,
    )
    for evidence_cls in evidence:
        assert issubclass(evidence_cls, ad.APIStatusError)
        assert not issubclass(evidence_cls, ad.NotFoundError)
    assert issubclass(ad.APITimeoutError, ad.APIConnectionError)
    assert issubclass(ad.APIStatusError, ad.AsyncDeleterError)
    assert issubclass(ad.APIConnectionError, ad.AsyncDeleterError)
    # No name shadows a built-in.
    assert not {"TimeoutError", "ConnectionError"} & set(ad.__all__)


def test_version_is_a_string() -> None:
    assert asyncdeleter.__version__.count(".") == 2


def test_importing_the_library_loads_neither_the_cli_nor_the_emulator() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncdeleter\n"
        "loaded = [m for m in ('asyncdeleter._cli', 'asyncdeleter.testing', 'click', 'rich')"
        " if m in sys.modules]\n"
        "print(','.join(loaded))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
