"""`movierec serve` as a process, over real sockets: what only the HTTP server itself
decides (the parser's refusals, a port in use, workers that cannot load) is still one
line or one JSON error, and a server that cannot serve exits non-zero."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from served_project import trained_project

from movierec.store.paths import MODELS_DIR

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(port: int, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _get(port: int, path: str, host: str = "localhost") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host})
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())


def _up(port: int, server: subprocess.Popen, seconds: float = 60) -> None:
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if server.poll() is not None:
            pytest.fail(f"the server stopped: {server.communicate()[1]}")
        try:
            if _get(port, "/api/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not come up")


def _raw(port: int, request: bytes) -> tuple[str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_a_running_server_refuses_in_json_and_a_second_one_names_the_port(tiny_project):
    trained_project()
    port = _free_port()
    server = _serve(port, "--models", "ease", "bias", "--watch", "0")
    try:
        _up(port, server)
        assert _get(port, "/api/health", host="evil.example")[0] == 421
        for request in (
            b"FOO / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"POST /api/reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\n\r\n{}",
        ):
            head, body = _raw(port, request)
            assert head.startswith("HTTP/1.1 400") and "application/json" in head.lower()
            assert set(json.loads(body)) == {"error"}
        second = subprocess.run(
            [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1 and "already in use" in lines[0]
        assert f"--port {port}" in lines[0] and "serving" not in second.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_workers_that_cannot_load_stop_the_server_with_a_non_zero_exit(tiny_project):
    trained_project()
    model = MODELS_DIR / "ease" / "model.npz"
    model.write_bytes(model.read_bytes()[:100])  # truncated
    server = _serve(_free_port(), "--models", "ease", "bias", "--workers", "2")
    try:
        _, err = server.communicate(timeout=120)
    finally:
        server.kill()
    assert server.returncode == 1, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: not serving: data/models/ease/model.npz")
