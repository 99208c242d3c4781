"""What keeps a server on localhost out of reach of other web sites.

A page on any site can make the browser send requests to ``127.0.0.1``: with a name it
controls that resolves to this machine (DNS rebinding) it can even read the answers,
and a plain HTML form can POST without asking. So, as Jupyter and Starlette's
``TrustedHostMiddleware`` do, every request must name an allowed host, and every POST
must be JSON (a cross-site form cannot send ``application/json`` without the browser
asking the server first) from the page's own origin when the browser says where it came
from. Refusals are the API's one-line JSON, 4xx.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8000`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _is_address(name: str) -> bool:
    """An IP literal cannot be rebound to another machine: only names can."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class LocalOnly:
    """Refuses a request whose ``Host`` is not allowed (421), and a POST that is not
    ``application/json`` (415) or comes from another origin (403).

    ``hosts``: names allowed beside the localhost names and IP literals (``*``: any).
    Plain ASGI, like the body limit: no per-request task group.
    """

    def __init__(self, app: Any, hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.any_host = "*" in hosts
        self.hosts = LOCAL_NAMES | {h.strip().lower() for h in hosts}

    def allowed(self, name: str) -> bool:
        return self.any_host or name in self.hosts or _is_address(name)

    def refusal(self, scope: dict) -> tuple[int, str] | None:
        headers = {k.lower(): v for k, v in scope["headers"]}
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if not name or not self.allowed(name):
            return 421, (
                f"Host {host!r} is not this server's; open it as http://localhost:<port> "
                "(or start it with --allow-host NAME)"
            )
        if scope["method"] != "POST":
            return None
        kind = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, f"a POST must be application/json (got {kind or 'no Content-Type'})"
        origin = headers.get(b"origin")
        if origin is not None:
            parts = urlsplit(origin.decode("latin-1"))
            if parts.netloc.lower() != host.lower():
                return 403, f"a POST from {origin.decode('latin-1')!r}: only this server's page may"
        return None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refused = self.refusal(scope)
            if refused:
                await JSONResponse({"error": refused[1]}, status_code=refused[0])(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)
