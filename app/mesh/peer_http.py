"""One HTTP exchange with a peer, reduced to (status, parsed body) or a safe `PeerError`.

Transport failures, timeouts, 5xx answers and unreadable bodies all become `PeerUnavailable`
with a message fit for a user: a peer's 500 body may carry SQL, so it is never read into an
error. 4xx answers come back to the adapter, which alone knows what they mean for its call.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
import structlog

from app.mesh.peers import PeerUnavailable
from app.utils.http_transport import parsed_url

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PeerResponse:
    status_code: int
    body: Any
    """Parsed JSON, or None when a 4xx body was empty or not JSON."""


async def exchange(
    client: httpx2.AsyncClient,
    method: str,
    url: str,
    *,
    peer: str,
    label: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int | float] | None = None,
    json_body: Any = None,
    passthrough: Collection[int] = (),
    auth: httpx2.Auth | None = None,
    accept_text: bool = False,
) -> PeerResponse:
    """Send one request. `passthrough` lists 5xx codes that describe something other than the
    peer's own health (e.g. the Orchestrator's 502 when a *target* droplet is down);
    `accept_text` returns a 2xx body that is not JSON as text (a published PEM)."""
    if params and "?" not in url:
        # The query encoded as httpx2 encodes `params=` (its QueryParams), into a URL parsed
        # once: httpx2 merging `params=` into the URL on every request cost more, ~20 of an
        # exchange's ~120 us besides the network (docs/performance.md, the eighteenth session).
        url, params = f"{url}?{httpx2.QueryParams(params)}", None
    try:
        response = await client.request(
            method, parsed_url(url), headers=headers, params=params, json=json_body, auth=auth
        )
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
        # No connection: the request never left, so the peer cannot have acted on it.
        raise _lost(exc, peer, method, url, f"the {label} is unreachable", reached=False) from exc
    except httpx2.TimeoutException as exc:
        log.warning("peer_timeout", peer=peer, method=method, path=_path(url))
        raise PeerUnavailable(peer, f"the {label} did not answer in time") from exc
    except (httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError) as exc:
        # A connection was had, then lost or answered with something that is not HTTP: said
        # so, since the request may have been acted on ("unreachable" would say it was not).
        raise _lost(exc, peer, method, url, f"the connection to the {label} broke off") from exc
    except httpx2.HTTPError as exc:
        raise _lost(exc, peer, method, url, f"the {label} is unreachable") from exc

    status = response.status_code
    if status >= 500 and status not in passthrough:
        # The body is deliberately not logged: it may carry SQL or stack traces.
        log.warning("peer_server_error", peer=peer, method=method, path=_path(url), status=status)
        raise PeerUnavailable(
            peer, f"the {label} failed to process the request", status_code=status
        )
    body = _parse(response)
    if body is _UNREADABLE and status < 400 and accept_text:
        return PeerResponse(status_code=status, body=response.text)
    if body is _UNREADABLE and status < 400:
        log.warning(
            "peer_unreadable_answer", peer=peer, method=method, path=_path(url), status=status
        )
        raise PeerUnavailable(
            peer, f"the {label} answered with something unreadable", status_code=status
        )
    return PeerResponse(status_code=status, body=None if body is _UNREADABLE else body)


_UNREADABLE = object()


def _parse(response: httpx2.Response) -> Any:
    if not response.content:
        return None if response.status_code >= 400 or response.status_code == 204 else _UNREADABLE
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return _UNREADABLE


def _lost(
    error: Exception, peer: str, method: str, url: str, message: str, *, reached: bool = True
) -> PeerUnavailable:
    """A transport failure, logged (its type, not its text) and said as `message`."""
    log.warning(
        "peer_unreachable", peer=peer, method=method, path=_path(url), error=type(error).__name__
    )
    return PeerUnavailable(peer, message, reached=reached)


def _path(url: str) -> str:
    # Query strings may carry tokens (?token=); only the path is logged.
    return httpx2.URL(url).path


def invalid_fields(body: Any) -> list[str]:
    """Field names from a 422 `{"detail":[{"loc":[...]}]}` body: safe to show, unlike messages."""
    fields: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        for item in body["detail"]:
            if isinstance(item, dict) and isinstance(item.get("loc"), list):
                names = [str(p) for p in item["loc"] if p not in ("body", "payload", "query")]
                if names:
                    fields.append(".".join(names))
    return sorted(set(fields))
