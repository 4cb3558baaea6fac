"""The node's HTTP API and gateway: works by CID with Range, status, a dashboard.

:func:`build_app` is the ASGI app over any :class:`ApiNode`; :func:`serve_api`
serves it with hypercorn's trio worker. The contract is docs/specs/http.md.
"""

from __future__ import annotations

from storenode.api.app import ApiNode, build_app
from storenode.api.server import HttpBindError, serve_api

__all__ = ["ApiNode", "HttpBindError", "build_app", "serve_api"]
