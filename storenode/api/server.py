"""Serve the API and gateway over HTTP with hypercorn's trio worker.

We bind the listening socket ourselves and hand hypercorn its file
descriptor (``fd://``): a bind failure is then ours to report in words an
operator can act on, and the port bound for port 0 is read straight off the
socket instead of parsed back out of hypercorn's log text.
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from storenode.api.app import ApiNode, build_app

logger = logging.getLogger(__name__)

# Hypercorn reports its own errors (a broken ASGI message, an app crash)
# through this logger, under ours, so a node's logging setup covers them.
_HYPERCORN_LOGGER = logging.getLogger(f"{__name__}.hypercorn")
_BACKLOG = 128


class HttpBindError(Exception):
    """The HTTP port could not be opened."""


async def serve_api(
    node: ApiNode,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``node``'s API on ``host:port`` until cancelled.

    ``port`` 0 binds a free port; ``task_status.started`` gets the port
    bound, once the socket listens. Raises :class:`HttpBindError` if the
    address cannot be bound. Cancelling stops at once: open responses, an
    audio stream included, are cut off, since a stream may last as long as the
    track and a node that is stopping should not wait for its listeners.
    """
    sock = await _bind(host, port)
    bound = sock.getsockname()[1]
    config = HypercornConfig()
    # Hypercorn wraps the descriptor in a socket object of its own, which it
    # closes; ours lets go of it so the descriptor is closed exactly once.
    config.bind = [f"fd://{sock.detach()}"]
    config.backlog = _BACKLOG
    config.accesslog = None
    config.errorlog = _HYPERCORN_LOGGER
    config.include_server_header = False
    # Starlette's ASGI types are looser than hypercorn's; the app is plain ASGI 3.
    app = cast(ASGIFramework, build_app(node))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app, config))
        logger.info("HTTP API and gateway on http://%s:%d", _url_host(host), bound)
        task_status.started(bound)


async def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening)."""
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as error:
        raise HttpBindError(
            f"cannot resolve the HTTP host {host!r}: {error}; set [http] host in the "
            "node's config.toml to an address of this machine, such as 127.0.0.1"
        ) from error
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise HttpBindError(
            f"cannot listen for HTTP on {_url_host(host)}:{port}: {error.strerror}; "
            "set another [http] port in the node's config.toml, or stop what uses this one"
        ) from error
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
