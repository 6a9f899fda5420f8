"""From flags and the environment to a manager, speaking in flags when something is wrong.

The library's own messages are written for Python callers (``pass region= or
endpoints=``); everything a person can get wrong on the command line is checked here
first and explained with the flag or variable to change.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from asyncdeleter import (
    AkSkAuth,
    AsyncDeleterError,
    ConfigurationError,
    Endpoints,
    InvalidIdentifierError,
    RetryPolicy,
    SessionManager,
    TokenAuth,
    check_session_target,
)
from asyncdeleter._auth import ENV_AK, ENV_SECURITY_TOKEN, ENV_SK  # what from_env reads
from asyncdeleter._cli.lines import printable
from asyncdeleter._cli.operations import Operation, check_project_id
from asyncdeleter._regions import region_candidates, region_overrides

__all__ = [
    "ENV_AK",
    "ENV_SECURITY_TOKEN",
    "ENV_SK",
    "PROTECTED_ENV",
    "Protection",
    "Settings",
    "UsageError",
    "build_manager",
    "flag_for",
    "in_flags",
    "resolve",
    "scope_problem",
    "translate",
]

PROTECTED_ENV: Final = "ASYNCDELETER_PROTECTED_IDS"
_PROTECTED_ENTRY: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
#: Python names in library messages, and the flag a command-line user sets instead.
_FLAG_NAMES: Final = (
    ("pass region= or endpoints=", "pass --region or an endpoint flag"),
    ("allow_insecure_http=True", "--allow-insecure-http"),
    (" on the SessionManager", ""),
    ("max_concurrency", "--concurrency"),
    ("max_tries", "--max-tries"),
    ("max_time", "--max-time"),
    ("project_id", "--project-id"),
    ("fabric endpoint", "--fabric-endpoint"),
    ("modelarts endpoint", "--modelarts-endpoint"),
    ("delete_workspace", "delete-workspaces"),
)
#: The library's ``setting`` of an error (the argument at fault, DESIGN rule 9), as the
#: command line names it: the flag, or the environment variable it is read from.
_SETTINGS: Final = {
    "workspace_id": "--workspace-id (or the workspace in the input)",
    "project_id": "--project-id",
    "region": "--region",
    "endpoints.fabric": "--fabric-endpoint",
    "endpoints.modelarts": "--modelarts-endpoint",
    "ak": ENV_AK,
    "sk": ENV_SK,
    "security_token": ENV_SECURITY_TOKEN,
    "token": "the token in --token-file",
}
_CREDENTIALS_HINT: Final = f"set {ENV_AK} and {ENV_SK}, or pass --token-file PATH"


class UsageError(Exception):
    """The command cannot run as asked; nothing was sent. The message names the fix."""


def translate(message: str) -> str:
    """A library message with its Python names replaced by the flags that set them."""
    for python, flag in _FLAG_NAMES:
        message = message.replace(python, flag)
    return message


def flag_for(setting: str) -> str | None:
    """The flag or variable that sets the library's ``setting`` (``sk``), or ``None``."""
    return _SETTINGS.get(setting)


def in_flags(error: BaseException, *, token_file: str | None = None) -> str:
    """A library error's message as the command line says it.

    The library begins a message with the argument at fault, and the variable
    ``from_env`` read it from (``sk (HUAWEICLOUD_SDK_SK) must be...``), and says which in
    its ``setting``: that beginning becomes the flag or variable a person sets
    (``HUAWEICLOUD_SDK_SK must be...``; ``token_file``: the path ``--token-file`` named).
    Other Python names are then replaced as ``translate`` does.
    """
    message, setting = str(error), getattr(error, "setting", "")
    name = flag_for(setting) if isinstance(setting, str) and setting else None
    if name is not None:
        if setting == "token" and token_file is not None:
            name = f"{name} {token_file}"
        message = re.sub(rf"^{re.escape(setting)}(?: \([A-Z0-9_]+\))?(?= )", name, message)
    return translate(message)


@attrs.frozen
class Protection:
    """The ids ``ASYNCDELETER_PROTECTED_IDS`` protects: the one place that says what is.

    Every id a command would send, wherever it goes (a path, the ``X-Project-Id`` header,
    a query) is checked here before anything is deleted and before the prompt: the
    project, the ``--workspace-id`` scope, each line's workspace and session, each listed
    item's id and name. Matching ignores case (and the spaces around a listed name).

    Attributes:
        ids: The protected ids, case-folded.
    """

    ids: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Protection:
        """The ids in ``ASYNCDELETER_PROTECTED_IDS`` (none when it is unset).

        Raises:
            UsageError: The variable is set but is not a comma-separated list of ids: a
                protection that silently protects nothing is worse than none.
        """
        value = environ.get(PROTECTED_ENV)
        if value is None:
            return cls()
        if not value.strip():
            # Set but blank (an empty file read into it, say): fail closed, as for any
            # value that names nothing; unsetting the variable is how to protect nothing.
            raise UsageError(
                f"{PROTECTED_ENV} is set but blank; name the ids to protect (comma-separated), "
                "or unset it"
            )
        entries = [entry.strip(" \t") for entry in value.split(",")]
        bad = [entry for entry in entries if entry and not _PROTECTED_ENTRY.fullmatch(entry)]
        if bad or not any(entries):
            shown = f"entry {printable(bad[0])!r} is not an id" if bad else "it names no id"
            raise UsageError(
                f"{PROTECTED_ENV} cannot be parsed: {shown}; expected comma-separated ids of "
                "letters, digits and hyphens, such as prod-project,ws-keep"
            )
        return cls(frozenset(entry.casefold() for entry in entries if entry))

    def named(self, ids: Iterable[str | None]) -> list[str]:
        """Those of ``ids`` that are protected, sorted (``None``: no id there)."""
        return sorted({i for i in ids if i is not None and i.strip().casefold() in self.ids})

    def refusal(self, ids: Iterable[str | None]) -> str | None:
        """Why an item naming ``ids`` (its ids, or a listed item's name) is refused, or ``None``."""
        named = self.named(ids)
        if not named:
            return None
        return f"protected by {PROTECTED_ENV}: {', '.join(printable(i) for i in named)}"

    def check_scope(self, project_id: str | None, workspace_id: str | None) -> None:
        """Refuse a run whose every call would carry a protected id.

        ``project_id`` goes into every call (the path of a ModelArts call, the
        ``X-Project-Id`` header of a Fabric one); ``workspace_id`` (``--workspace-id``)
        into the path of every session call.

        Raises:
            UsageError: One of them is protected.
        """
        for flag, value in (("--project-id", project_id), ("--workspace-id", workspace_id)):
            if self.named([value]):
                raise UsageError(f"{flag} {printable(str(value))} is protected by {PROTECTED_ENV}")


@attrs.frozen
class Settings:
    """What one bulk command runs against, resolved from flags and the environment."""

    op: Operation
    endpoints: Endpoints
    region: str | None
    project_id: str | None
    auth: TokenAuth | AkSkAuth | None
    warnings: tuple[str, ...] = ()
    #: The endpoint a flag gave (it never moves), else ``None``: derived from the region,
    #: where the library may move the Fabric session API once to its other documented host.
    explicit_endpoint: str | None = None
    #: The official ``HUAWEICLOUD_SDK_REGION_{SERVICE}_{REGION}`` variables in force.
    region_overrides: Mapping[str, str] = attrs.field(factory=dict)
    #: Every credential the command was given (the token, the environment's keys): an
    #: input line holding one is withheld. Never in a repr.
    credentials: frozenset[str] = attrs.field(factory=frozenset, repr=False)

    @property
    def service(self) -> str:
        """``fabric`` or ``modelarts``: the one service this command calls."""
        return self.op.service

    @property
    def endpoint(self) -> str:
        """The base URL this run sends to."""
        return str(getattr(self.endpoints, self.service))

    def header_fields(self) -> dict[str, object]:
        """What a report records about the target of the run."""
        return {
            "endpoints": {self.service: self.endpoint},
            "region": self.region,
            "project_id": self.project_id,
        }


def _endpoints(
    service: str, region: str | None, url: str | None, overrides: Mapping[str, str]
) -> Endpoints:
    flag = f"--{service}-endpoint"
    if url is not None:
        shown = "<hidden: it carries credentials>" if "@" in url else repr(printable(url))
        try:
            Endpoints(fabric=url, modelarts=url)
        except (ConfigurationError, ValueError, TypeError):
            raise UsageError(
                f"{flag} {shown} is not usable: give an absolute http(s) URL without "
                "credentials, query or fragment, such as https://host:443"
            ) from None
    if region is None:
        if url is None:
            raise UsageError(
                f"no endpoint: pass --region (or set HUAWEICLOUD_SDK_REGION) or {flag} URL"
            )
        return Endpoints(fabric=url, modelarts=url)
    if url is not None:
        return Endpoints(**{service: url})
    try:
        # The region's first documented host (or the official override variable's).
        first = region_candidates(service, region, overrides)[0]
        return Endpoints(**{service: first})
    except (ConfigurationError, IndexError) as exc:
        raise UsageError(
            f"--region {printable(region)!r}: {translate(str(exc))}; or pass {flag} URL"
        ) from None


def _token(path: str, warnings: list[str]) -> TokenAuth:
    try:
        mode = os.stat(path).st_mode
        with open(path, "rb") as stream:
            data = stream.read(64 * 1024)
    except OSError as exc:
        raise UsageError(f"cannot read --token-file {path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode) and mode & 0o077:
        warnings.append(
            f"warning: --token-file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(mode):04o}): anyone who can read it can act as you; "
            f"chmod 600 {path}"
        )
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UsageError(f"--token-file {path} is not UTF-8 text") from None
    if not token:
        raise UsageError(f"--token-file {path} is empty")
    try:
        return TokenAuth(token)
    except ConfigurationError as exc:
        raise UsageError(in_flags(exc, token_file=path)) from None


def _check_transport(endpoints: Endpoints, *, allow_insecure_http: bool) -> None:
    """The library's own check of plain HTTP (a manager that is never opened makes it).

    Raises:
        ConfigurationError: An endpoint is plain HTTP to a non-loopback host.
    """
    SessionManager(endpoints=endpoints, allow_insecure_http=allow_insecure_http)


def resolve(
    op: Operation,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    dry_run: bool,
    command: str | None = None,
) -> Settings:
    """Check and resolve the flags of a command that calls ``op``'s service.

    ``dry_run``: nothing will be sent, so no credentials are needed; ``command`` names
    the command in messages (by default ``op``'s).

    Raises:
        UsageError: What is missing or wrong, in terms of flags and variables.
    """
    command = command or op.command
    service = op.service
    region = flags.get("region") or None
    overrides = region_overrides(environ)
    endpoints = _endpoints(service, region, flags.get(f"{service}_endpoint") or None, overrides)
    try:
        _check_transport(endpoints, allow_insecure_http=bool(flags["allow_insecure_http"]))
    except ConfigurationError:
        raise UsageError(
            f"--{service}-endpoint {getattr(endpoints, service)} is plain HTTP to a "
            "non-loopback host: the token or signature would travel in clear text; pass "
            "--allow-insecure-http to accept that"
        ) from None
    project_id = flags.get("project_id") or None
    if project_id is not None:
        try:
            check_project_id(project_id)
        except InvalidIdentifierError as exc:
            raise UsageError(
                f"--project-id {printable(project_id)!r} is not a project id: {exc.reason}"
            ) from None
    elif op.project_scoped:
        raise UsageError(
            f"{command} needs --project-id (or HUAWEICLOUD_SDK_PROJECT_ID): "
            "ModelArts workspaces live in a project"
        )
    warnings: list[str] = []
    auth: TokenAuth | AkSkAuth | None = None
    if flags.get("token_file"):
        auth = _token(str(flags["token_file"]), warnings)
    elif environ.get(ENV_AK) or environ.get(ENV_SK):
        try:
            auth = AkSkAuth.from_env(environ)
        except ConfigurationError as exc:
            raise UsageError(in_flags(exc)) from None
    if auth is None and not dry_run:
        if op.project_scoped:  # ModelArts refuses every unauthenticated call
            raise UsageError(f"{command} needs credentials: {_CREDENTIALS_HINT}")
        warnings.append(
            f"warning: no credentials ({_CREDENTIALS_HINT}): requests go out unauthenticated, "
            "and a real service refuses them"
        )
    return Settings(
        op=op,
        endpoints=endpoints,
        region=region,
        project_id=project_id,
        auth=auth,
        warnings=tuple(warnings),
        explicit_endpoint=flags.get(f"{service}_endpoint") or None,
        region_overrides=overrides,
        credentials=_credentials(auth, environ),
    )


def _credentials(auth: TokenAuth | AkSkAuth | None, environ: Mapping[str, str]) -> frozenset[str]:
    """The credentials in use, and those the environment holds even when a flag won."""
    given = [environ.get(name) for name in (ENV_AK, ENV_SK, ENV_SECURITY_TOKEN)]
    if isinstance(auth, TokenAuth):
        given.append(auth.token)
    elif isinstance(auth, AkSkAuth):
        given += [auth.ak, auth.sk, auth.security_token]
    return frozenset(value.strip() for value in given if value and value.strip())


def build_manager(settings: Settings, flags: Mapping[str, Any]) -> SessionManager:
    """The manager for a resolved command.

    Raises:
        UsageError: The library refused an option (its message, in flags).
    """
    endpoints = settings.endpoints
    if settings.region is not None:
        # Only what a flag gave is fixed; the rest comes from the region, and may move.
        explicit = settings.explicit_endpoint
        endpoints = Endpoints(**{settings.service: explicit}) if explicit else Endpoints()
    try:
        return SessionManager(
            region=settings.region,
            region_overrides=settings.region_overrides,
            endpoints=endpoints,
            project_id=settings.project_id,
            auth=settings.auth,
            max_concurrency=flags["concurrency"],
            retry=_retry_policy(flags),
            allow_insecure_http=bool(flags["allow_insecure_http"]),
        )
    except AsyncDeleterError as exc:
        raise UsageError(in_flags(exc)) from None


def _retry_policy(flags: Mapping[str, Any]) -> RetryPolicy:
    max_tries, max_time = flags["max_tries"], flags["max_time"]
    poll_wait = flags.get("poll_wait")  # hidden, for tests: how soon --wait polls
    if poll_wait is None:
        return RetryPolicy(max_tries=max_tries, max_time=max_time)
    return RetryPolicy(
        max_tries=max_tries,
        max_time=max_time,
        poll_initial_wait=poll_wait,
        poll_max_wait=poll_wait,
    )


def scope_problem(workspace_id: str | None) -> str | None:
    """Why ``--workspace-id`` is unusable, or ``None``."""
    if workspace_id is None:
        return None
    try:
        # A Fabric workspace id, checked as the workspace half of a session target.
        check_session_target((workspace_id, "session"))
    except InvalidIdentifierError as exc:
        return f"--workspace-id {printable(workspace_id)!r} is not a workspace id: {exc.reason}"
    return None
