"""uvicorn's HTTP protocol with the API's error shape: a request the HTTP parser rejects
(a method it does not know, two Content-Length headers ...) answers 400 with
``{"error": "<one line>"}`` like every other refusal, not uvicorn's plain text.

``movierec serve`` names :data:`PROTOCOL` as uvicorn's ``http`` (an import string, so each
worker process finds it too).
"""

from __future__ import annotations

import json

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # no httptools on this platform: uvicorn's pure-Python parser
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base

PROTOCOL = "movierec.serve.http:JsonErrors"


def error_body(msg: str) -> bytes:
    text = " ".join(msg.split()) or "malformed request"
    return json.dumps({"error": f"malformed HTTP request: {text}"}).encode()


class JsonErrors(_Base):  # type: ignore[misc, valid-type]
    """The parser's 400, as JSON; the connection closes as uvicorn's own does."""

    def send_400_response(self, msg: str) -> None:
        body = error_body(msg)
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
