"""What a "not found" answer proves: the one table, each code with its source.

A 404 can come from three places, and only one of them speaks about the resource:

- **The API gateway** (``APIG.*`` and ``APIGW.*`` codes, Huawei spells both), a proxy's
  page, an integer ``error_code``, an empty or non-JSON body: the request never reached a
  service that knows the resource. It says *this endpoint does not serve this API*, never
  that anything is gone (``NOT_SERVED``).
- **The service, with the code it uses for this resource being missing** (``GONE_CODE``):
  direct evidence, but about the resource *or its parent*. Fabric may use one code for a
  missing workspace and a missing session (only the text differs, and text is not
  evidence), and ModelArts' ``ModelArts.0104`` is documented nowhere as a 404. So a
  ``GONE_CODE`` still needs its parent proven to exist (``_verify``).
- **The service, with any other code** (``UNKNOWN_CODE``): resolved by a second source
  (the listing), never by guessing, and the code is logged once.

docs/api-facts.md, sections 3 and 8, has the sources of every row below.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

import attrs

from asyncdeleter._models import ErrorBody

__all__ = [
    "FABRIC_NOT_FOUND_CODES",
    "GATEWAY_CODES",
    "MODELARTS_GONE_CODES",
    "GatewayCode",
    "NotFound",
    "gateway_meaning",
    "is_gateway_code",
    "judge_not_found",
]


@attrs.frozen
class GatewayCode:
    """One of the API gateway's own error codes.

    Attributes:
        status: The HTTP status it comes with.
        meaning: What it says, in Huawei's words.
        source: Where that is documented (docs/api-facts.md, section 3, has the links).
    """

    status: int
    meaning: str
    source: str


# Where each row comes from (docs/api-facts.md, section 3, quotes them).
_APIG_TABLE: Final = (
    "https://support.huaweicloud.com/intl/en-us/usermanual-apig/apig-ug-180530090.html"
)
_APIG_TABLE_FULL: Final = (  # T-Systems' export of the same table, with every row's status
    "github.com/opentelekomcloud-docs/api-gateway: "
    "umn/source/api_calling/calling_published_apis/error_codes.rst"
)
_SIGN_TABLE: Final = "https://support.huaweicloud.com/en-us/devg-apisign/api-sign-errorcode.html"
_SIGN_IAM: Final = "https://support.huaweicloud.com/intl/ja-jp/devg-apisign/api-sign-0001.html"
_FABRIC_CLOSE: Final = "https://support.huaweicloud.com/intl/en-us/api-fabric/CloseSqlSession.html"
_THROTTLED: Final = (
    "https://support.huaweicloud.com/intl/en-us/oce_faq/en-us_topic_0000001887959462.html"
)
_NO_SUCH_API: Final = "The API does not exist or has not been published in the environment"

#: The gateway's codes a client meets, with their status and source. Every ``APIG.``/
#: ``APIGW.`` code is the gateway's, listed here or not (``is_gateway_code``): the table
#: says what each means, for messages and for the next reader.
GATEWAY_CODES: Final[Mapping[str, GatewayCode]] = {
    "APIG.0101": GatewayCode(404, _NO_SUCH_API, _APIG_TABLE),
    "APIGW.0101": GatewayCode(404, _NO_SUCH_API, _SIGN_TABLE),
    "APIG.0103": GatewayCode(500, "The backend does not exist", _APIG_TABLE_FULL),
    "APIGW.0103": GatewayCode(404, "The backend does not exist", _SIGN_TABLE),
    "APIG.0202": GatewayCode(502, "Backend unavailable", _APIG_TABLE_FULL),
    "APIG.0203": GatewayCode(504, "Backend timeout", _APIG_TABLE_FULL),
    # A bad AK/SK signature, or a clock more than 15 minutes off.
    "APIG.0301": GatewayCode(401, "Incorrect IAM authentication information", _APIG_TABLE_FULL),
    "APIGW.0301": GatewayCode(401, "Incorrect IAM authentication information", _SIGN_IAM),
    "APIG.0302": GatewayCode(
        403, "The IAM user is not authorized to access the API", _APIG_TABLE_FULL
    ),
    "APIG.0303": GatewayCode(401, "Incorrect app authentication information", _APIG_TABLE_FULL),
    "APIG.0307": GatewayCode(401, "The token must be updated", _APIG_TABLE_FULL),
    "APIG.0308": GatewayCode(429, "The throttling threshold has been reached", _THROTTLED),
    "APIGW.0308": GatewayCode(429, "The throttling threshold has been reached", _SIGN_TABLE),
    "APIG.0310": GatewayCode(403, "The project is unavailable", _APIG_TABLE_FULL),
    "APIG.1002": GatewayCode(401, "Incorrect token or token resolution failed", _FABRIC_CLOSE),
    "APIG.1005": GatewayCode(403, "No permissions to request this method", _APIG_TABLE),
}

#: The code Fabric's session API answers a 404 with, for a missing session and (as far as
#: anyone can tell) a missing workspace alike: so it proves nothing until the workspace is
#: known to exist. Undocumented for the real service (docs/api-facts.md, section 8).
FABRIC_NOT_FOUND_CODES: Final = frozenset({"common.01000001"})
#: "workspace not exist": the only code that says a ModelArts workspace is gone. Unconfirmed
#: as a 404 (two tables list it as a 400 "Parameter error"), so any other service code is
#: resolved by a listing (docs/api-facts.md, section 8).
MODELARTS_GONE_CODES: Final = frozenset({"modelarts.0104"})


class NotFound(enum.Enum):
    """What a 404 says about the resource asked for."""

    NOT_SERVED = "not_served"  #: the gateway's or a proxy's: the endpoint lacks this API
    GONE_CODE = "gone_code"  #: the service's "missing" code: gone once the parent is proven
    UNKNOWN_CODE = "unknown_code"  #: another code of the service's: look before concluding
    CUT_SHORT = "cut_short"  #: the body never arrived whole: no evidence of anything


def is_gateway_code(code: str | None) -> bool:
    """Whether ``code`` is the API gateway's (``APIG.*`` or ``APIGW.*``, any case)."""
    if not code:
        return False
    head = code.lstrip()[:6].upper()
    return head.startswith(("APIG.", "APIGW."))


def gateway_meaning(code: str | None) -> str | None:
    """What the gateway's ``code`` means, in Huawei's words, if the table knows it."""
    if not code:
        return None
    found = GATEWAY_CODES.get(code.strip().upper())
    return found.meaning if found is not None else None


def judge_not_found(gone_codes: frozenset[str], body: ErrorBody, *, complete: bool) -> NotFound:
    """What a 404 with ``body`` says, for an operation whose "missing" codes are ``gone_codes``.

    Args:
        gone_codes: The service's codes for this resource missing (case-folded).
        body: The 404's error body, as parsed.
        complete: The body arrived whole; a 404 cut short is never evidence of "gone".
    """
    if not complete:
        return NotFound.CUT_SHORT
    code = body.error_code
    if not body.service_shaped or is_gateway_code(code):
        return NotFound.NOT_SERVED
    assert code is not None  # noqa: S101 - service_shaped means a string code
    if code.strip().casefold() in gone_codes:
        return NotFound.GONE_CODE
    return NotFound.UNKNOWN_CODE
