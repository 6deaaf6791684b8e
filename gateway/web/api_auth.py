"""The API key a request presents (``Authorization: Bearer cg_...``), checked before anything else.

Without a valid key nothing else is looked at (401), so only a key holder learns whether a site
exists; the caller then compares the key's site and permissions with what is asked.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.accounts.api_keys import ApiKey, bearer_key, verify_api_key
from gateway.context import GatewayContext
from gateway.web.errors import ClientError

_CHALLENGE = {"www-authenticate": 'Bearer realm="consent-gateway"'}
# RFC 6750 section 3.1: a token was sent but is not valid.
_INVALID = {"www-authenticate": 'Bearer realm="consent-gateway", error="invalid_token"'}


async def presented_key(context: GatewayContext, request: Request) -> ApiKey:
    """The live key of the request; a 401 ``ClientError`` when it is missing, malformed, unknown or revoked."""
    header = request.headers.get("authorization")
    presented = bearer_key(header)
    if presented is None:
        if header is None:
            raise ClientError(401, "send the site's API key: 'Authorization: Bearer cg_...'", headers=_CHALLENGE)
        raise ClientError(401, "the Authorization header is not 'Bearer cg_...' with a valid key", headers=_INVALID)
    key = await verify_api_key(context.database, presented, now=context.clock.now())
    if key is None:
        raise ClientError(401, "the API key is unknown or revoked", headers=_INVALID)
    return key
