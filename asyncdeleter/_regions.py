"""Where each service answers: the official SDK's region tables as data, and one manager's hosts.

The tables are copied from the official Python SDK (docs/api-facts.md, section 7):
``huaweicloudsdkmodelarts/v1/region/modelarts_region.py`` for ModelArts and
``huaweicloudsdkdataartsfabricep/v1/region/dataartsfabricep_region.py`` for the Fabric
session API, whose published pages link to the *DataArtsFabricEp* product. No official SDK
has the v1 session calls, so the Fabric list is ordered by evidence: ``fabric-ep`` first,
then the DataArts Fabric SDK's ``fabric`` host as the one documented alternative.

``Hosts`` resolves a service's base URL at its first use (a ModelArts-only user is never
refused for Fabric's shorter region list) and moves a region-derived Fabric endpoint to
its next candidate at most once, when the gateway says the host does not serve the API.
An endpoint given explicitly never moves.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Final

import yarl

from asyncdeleter._errors import ConfigurationError

__all__ = [
    "FABRIC_SESSION_REGIONS",
    "MODELARTS_REGIONS",
    "REGION_ENV_PREFIX",
    "SERVICE_NAMES",
    "Hosts",
    "override_name",
    "region_candidates",
    "region_overrides",
]

_log: Final = logging.getLogger("asyncdeleter")

#: The official SDK's override variables: ``HUAWEICLOUD_SDK_REGION_{SERVICE}_{REGION}``,
#: the region upper-cased with ``-`` as ``_``; the value is one or more base URLs joined
#: by ``,`` (``huaweicloudsdkcore/region/provider.py``, ``EnvRegionProvider``).
REGION_ENV_PREFIX: Final = "HUAWEICLOUD_SDK_REGION_"

_COM: Final = "myhuaweicloud.com"


def _modelarts(region: str, domain: str = _COM) -> tuple[str, ...]:
    return (f"https://modelarts.{region}.{domain}",)


#: ModelArts: the 22 regions of ``huaweicloudsdkmodelarts`` 3.1.219,
#: ``v1/region/modelarts_region.py``; ``ap-southeast-1`` is under ``.myhuaweicloud.cn``.
MODELARTS_REGIONS: Final[Mapping[str, tuple[str, ...]]] = {
    region: _modelarts(region, "myhuaweicloud.cn" if region == "ap-southeast-1" else _COM)
    for region in (
        "cn-north-1",
        "cn-north-4",
        "cn-south-1",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "cn-east-3",
        "cn-east-4",
        "la-south-2",
        "af-south-1",
        "cn-north-9",
        "tr-west-1",
        "ap-southeast-4",
        "me-east-1",
        "cn-southwest-2",
        "cn-north-2",
        "sa-brazil-1",
        "la-north-2",
        "af-north-1",
        "cn-north-12",
        "cn-southwest-3",
        "cn-north-11",
    )
}

#: The Fabric session API: ``huaweicloudsdkdataartsfabricep`` 3.1.219,
#: ``v1/region/dataartsfabricep_region.py`` (``fabric-ep``), then
#: ``huaweicloudsdkdataartsfabric`` 3.1.219, ``v1/region/dataartsfabric_region.py``
#: (``fabric``, which has no session API in its SDK: the fallback, inferred).
FABRIC_SESSION_REGIONS: Final[Mapping[str, tuple[str, ...]]] = {
    region: (f"https://fabric-ep.{region}.{_COM}", f"https://fabric.{region}.{_COM}")
    for region in ("cn-north-4", "cn-southwest-2")
}

#: Our service names -> (the official SDK's service name in override variables, table).
SERVICE_NAMES: Final[Mapping[str, str]] = {"fabric": "DATAARTSFABRICEP", "modelarts": "MODELARTS"}
_TABLES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "fabric": FABRIC_SESSION_REGIONS,
    "modelarts": MODELARTS_REGIONS,
}
#: What a user reads about a service in an error.
_SHOWN: Final = {"fabric": "DataArts Fabric (SQL sessions)", "modelarts": "ModelArts"}


def override_name(service: str, region: str) -> str:
    """The variable that overrides ``service``'s endpoints in ``region``."""
    return f"{REGION_ENV_PREFIX}{SERVICE_NAMES[service]}_{region.replace('-', '_').upper()}"


def region_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``HUAWEICLOUD_SDK_REGION_{SERVICE}_{REGION}`` variables of ``environ``."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(REGION_ENV_PREFIX) and value.strip()
    }


def region_candidates(
    service: str, region: str, overrides: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The base URLs of ``service`` in ``region``, in the order to try them.

    An override variable wins over the table (and may name a region the table does not
    know yet), as in the official SDK.

    Raises:
        ConfigurationError: The region is not a str, or neither the table nor an override
            knows it for this service.
    """
    if not isinstance(region, str) or not region or not region.isprintable():
        raise ConfigurationError(f"region must be a region id such as 'cn-north-4', got {region!r}")
    variable = override_name(service, region)
    value = (overrides or {}).get(variable)
    if value:
        return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    found = _TABLES[service].get(region)
    if found is None:
        known = ", ".join(sorted(_TABLES[service]))
        raise ConfigurationError(
            f"region {region!r} is not a {_SHOWN[service]} region asyncdeleter knows "
            f"({known}); pass endpoints=Endpoints({service}='https://...') for it, or set "
            f"{variable}"
        )
    return found


class Hosts:
    """The base URL of each service for one manager.

    Args:
        explicit: Base URLs given by the caller, by service (``None``: not given).
        region: The region the others derive from, if any.
        overrides: ``HUAWEICLOUD_SDK_REGION_*`` variables (see ``region_candidates``).
        check: Called with (service, base URL) once per URL it resolves to, before use
            (the transport-security rule).

    ``generation`` grows each time a service moves, so a call built before a move can
    tell that its URL is stale.
    """

    def __init__(
        self,
        explicit: Mapping[str, str | None],
        region: str | None,
        overrides: Mapping[str, str] | None,
        check: Callable[[str, str], None],
    ) -> None:
        self._explicit = dict(explicit)
        self.region = region
        self._overrides = dict(overrides or {})
        self._check = check
        self._candidates: dict[str, tuple[str, ...]] = {}
        self._current: dict[str, int] = {}
        # Services that moved off a host shown not to serve their API at all (so nothing
        # sent there can have taken effect), as opposed to one that stopped answering.
        self._left_unserved: set[str] = set()
        self.generation = 0

    def candidates(self, service: str) -> tuple[str, ...]:
        """The base URLs ``service`` may use, in order; the first is tried first.

        Raises:
            ConfigurationError: No explicit endpoint and no usable region for ``service``.
        """
        found = self._candidates.get(service)
        if found is not None:
            return found
        given = self._explicit.get(service)
        if given is not None:
            found = (given,)
        elif self.region is None:
            raise ConfigurationError(
                f"no {_SHOWN[service]} endpoint: pass region= or "
                f"endpoints=Endpoints({service}='https://...')"
            )
        else:
            found = region_candidates(service, self.region, self._overrides)
        for url in found:
            self._check(service, url)
        self._candidates[service] = found
        self._current.setdefault(service, 0)
        return found

    def base(self, service: str) -> str:
        """The base URL ``service``'s calls go to now.

        Raises:
            ConfigurationError: See ``candidates``.
        """
        return self.candidates(service)[self._current.get(service, 0)]

    def known(self, service: str) -> str | None:
        """The base URL of ``service`` if it can be resolved, else ``None`` (never raises)."""
        with contextlib.suppress(ConfigurationError):
            return self.base(service)
        return None

    def explicit(self, service: str) -> bool:
        """Whether ``service``'s endpoint was given explicitly (it never moves)."""
        return self._explicit.get(service) is not None

    def movable(self, service: str) -> bool:
        """Whether ``service`` may still move: region-derived, with a candidate left."""
        if self.explicit(service):
            return False
        found = self._candidates.get(service, ())
        return self._current.get(service, 0) + 1 < len(found)

    def left_unserved(self, service: str) -> bool:
        """Whether ``service`` moved off a host whose gateway said it has no such API."""
        return service in self._left_unserved

    def move(self, service: str, from_base: str, *, unserved: bool) -> bool:
        """Move ``service`` off ``from_base`` to its next candidate, at most once.

        Synchronous, so no other call can interleave: the first call to see the host
        refuse moves it; a later one that was sent to the same host finds it moved already
        and just resends.

        Args:
            service: The service.
            from_base: The host the caller's request went to.
            unserved: The host's gateway said "no such API" (else: it never connected).

        Returns:
            Whether calls of ``service`` now go elsewhere than ``from_base``.
        """
        if self.base(service) != from_base:
            return True  # moved already (by another call)
        if not self.movable(service) or self._current[service] > 0:
            return False  # at most one move per manager
        self._current[service] += 1
        self.generation += 1
        if unserved:
            self._left_unserved.add(service)
        _log.info(
            "%s endpoint %s does not serve its API (the gateway answered 'no such API' or "
            "never connected); using %s for the rest of this manager's life",
            _SHOWN[service],
            yarl.URL(from_base).host,
            yarl.URL(self.base(service)).host,
        )
        return True
