"""The HTTP API and gateway as an ASGI app (Starlette), over any :class:`ApiNode`.

Routes (docs/specs/http.md has the full contract):

* ``GET``/``HEAD /content/{cid}``: the work's bytes, whole (200) or one range
  (206), streamed as the fetcher decodes them, so a player starts as soon as
  the first stripe is rebuilt and seeks with Range requests.
* ``GET /api/status``: the node's status as JSON.
* ``GET /``: the dashboard (:mod:`storenode.api.dashboard`).

Errors are JSON ``{"error": "<what happened and what to do>"}``. Each
:class:`~storenode.client.content.ContentError` has its own status: not found
404, payment required 402, too few hosts 503, hosts sent bad data 502. The
headers wait for the first piece of the body, so an error before it still
gets its status; an error after it cannot change the status any more: the
response is cut short (the connection closes before Content-Length bytes),
which every HTTP client reports as an incomplete body, and the node logs why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from storenode.api.dashboard import render_dashboard
from storenode.api.headers import (
    CidSyntaxError,
    content_disposition,
    etag_of,
    media_type_header,
    parse_cid,
)
from storenode.api.ranges import ByteRange, RangeNotSatisfiableError, if_range_holds, parse_range
from storenode.client.content import (
    ContentCorruptError,
    ContentError,
    ContentInfo,
    ContentNotFoundError,
    ContentSource,
    ContentUnavailableError,
    PaymentRequiredError,
)

logger = logging.getLogger(__name__)

# A work's bytes never change under its CID: any cache may keep them for good.
_CACHE_CONTROL = "public, max-age=31536000, immutable"
# Served works come from any publisher; as a document, a work must not run
# scripts on the gateway's origin (media elements that play it are unaffected).
_WORK_CSP = "sandbox"
_DASHBOARD_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; media-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class ApiNode(Protocol):
    """What the API needs from a node: a reader of works and a status report."""

    @property
    def content(self) -> ContentSource: ...

    def status(self) -> Mapping[str, object]:
        """The node's state for an operator; JSON-able (str keys, plain values)."""
        ...


def build_app(node: ApiNode) -> Starlette:
    """The ASGI app of the API and gateway over ``node``."""
    routes = _Routes(node)
    return Starlette(
        routes=[
            Route("/", routes.dashboard, methods=["GET"]),
            Route("/api/status", routes.status, methods=["GET"]),
            Route("/content/{cid}", routes.content, methods=["GET", "HEAD"]),
        ],
        exception_handlers={HTTPException: _http_exception},
    )


class _Routes:
    def __init__(self, node: ApiNode) -> None:
        self._node = node

    async def dashboard(self, request: Request) -> Response:
        page = render_dashboard(self._node.status(), request.query_params.get("cid"))
        return HTMLResponse(page, headers={"Content-Security-Policy": _DASHBOARD_CSP})

    async def status(self, request: Request) -> Response:
        return JSONResponse(dict(self._node.status()), headers={"Cache-Control": "no-store"})

    async def content(self, request: Request) -> Response:
        try:
            cid = parse_cid(request.path_params["cid"])
        except CidSyntaxError as error:
            return _error(400, str(error))
        source = self._node.content
        try:
            info = await source.open(cid)
        except ContentError as error:
            return _content_error(cid, error)

        etag = etag_of(cid)
        headers = {
            "ETag": etag,
            "Cache-Control": _CACHE_CONTROL,
            "Accept-Ranges": "bytes",
        }
        if _none_match(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        headers |= {
            "Content-Type": media_type_header(info.media_type),
            "Content-Disposition": content_disposition(info.name),
            "Content-Security-Policy": _WORK_CSP,
            "X-Content-Type-Options": "nosniff",
            "Storenode-Manifest": "registered" if info.registered else "unregistered",
        }
        if request.method == "HEAD":  # Range is defined for GET only (RFC 9110 §14.2)
            headers["Content-Length"] = str(info.length)
            return Response(status_code=200, headers=headers)

        byte_range: ByteRange | None = None
        if if_range_holds(request.headers.get("if-range"), etag):
            try:
                byte_range = parse_range(request.headers.get("range"), info.length)
            except RangeNotSatisfiableError as error:
                return _error(416, str(error), headers={"Content-Range": error.content_range})
        if byte_range is None:
            status, byte_range = 200, ByteRange(0, info.length)
        else:
            status = 206
            headers["Content-Range"] = byte_range.content_range(info.length)
        headers["Content-Length"] = str(byte_range.end - byte_range.start)
        return _WorkResponse(source, info, byte_range, status_code=status, headers=headers)


class _WorkResponse(Response):
    """Streams bytes of a work from a :class:`ContentSource` as they come.

    The status and Content-Length go out with the first piece; a
    :class:`ContentError` before it becomes an error response instead. One in
    the middle ends the response without its last message, so the server closes
    the connection and the client sees fewer bytes than announced: the only
    honest signal left once a 200 is on the wire. A client that hangs up
    cancels the read, so the node stops fetching stripes nobody will get.
    """

    def __init__(
        self,
        source: ContentSource,
        info: ContentInfo,
        byte_range: ByteRange,
        *,
        status_code: int,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self._source = source
        self._info = info
        self._range = byte_range

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
            await self._stream(scope, receive, send)
            nursery.cancel_scope.cancel()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        cid, start, end = self._info.cid, self._range.start, self._range.end
        pieces = _read(self._source, cid, start, end)
        try:
            # Hold the headers until the first piece: a work that fails before
            # its first byte still gets its own status instead of a cut 200.
            try:
                first = await anext(pieces, b"")
            except ContentError as error:
                await _content_error(cid, error)(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            sent = start
            try:
                if first:
                    await send({"type": "http.response.body", "body": first, "more_body": True})
                    sent += len(first)
                async for piece in pieces:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    sent += len(piece)
            except ContentError as error:
                logger.warning(
                    "Cut short the response for work %s (%s) at byte %d of bytes %d-%d: %s",
                    cid.hex(),
                    self._info.name,
                    sent,
                    start,
                    end - 1,
                    error,
                )
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await pieces.aclose()


async def _read(
    source: ContentSource, cid: bytes, start: int, end: int
) -> AsyncGenerator[bytes, None]:
    """The non-empty pieces of ``source.read``, which is closed however the reading ends.

    Calling ``read`` in here also turns an error it raises straight away into
    one raised at the first piece, where the caller handles them all.
    """
    pieces = source.read(cid, start, end)
    try:
        async for piece in pieces:
            if piece:
                yield piece
    finally:
        if isinstance(pieces, AsyncGenerator):
            await pieces.aclose()


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names our ETag (weak comparison, RFC 9110 §13.1.2)."""
    if if_none_match is None:
        return False
    tags = [tag.strip(" \t") for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def _content_error(cid: bytes, error: ContentError) -> Response:
    if isinstance(error, ContentNotFoundError):
        return _error(404, str(error))
    if isinstance(error, PaymentRequiredError):
        return JSONResponse(
            {"error": str(error), "price": error.price, "cap": error.cap}, status_code=402
        )
    if isinstance(error, ContentUnavailableError):
        logger.info("Work %s is unavailable: %s", cid.hex(), error)
        return _error(503, str(error), headers={"Retry-After": "30"})
    if isinstance(error, ContentCorruptError):
        logger.warning("Work %s could not be rebuilt from what hosts sent: %s", cid.hex(), error)
        return _error(502, str(error))
    logger.warning("Reading work %s failed: %s", cid.hex(), error)
    return _error(502, str(error))


def _error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) as JSON like ours."""
    assert isinstance(exc, HTTPException)
    message = exc.detail
    if exc.status_code == 404:
        message = (
            f"there is nothing at {request.url.path}: works are at /content/<cid>, "
            "the node's status at /api/status and the dashboard at /"
        )
    return _error(exc.status_code, message, headers=exc.headers)
