"""Start a real server process on 127.0.0.1 for a test, wait until it answers, and always stop it by its pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url: str, payload: dict, timeout: float = 120) -> tuple[int, dict]:
    """POST ``payload`` as JSON; ``(status, decoded body)`` also for HTTP errors."""
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@contextmanager
def running_server(cmd: Sequence[str], ready_url: str, log_file: Path, cwd: Path, env: dict[str, str],
                   timeout: float = 180) -> Iterator[bytes]:
    """Run ``cmd`` in its own process group until the block ends; yields the first body ``ready_url`` answered.

    Fails the test with the end of the server log if the process exits or ``ready_url`` does not answer
    200 within ``timeout`` seconds. The whole process group is stopped (SIGTERM, then SIGKILL) afterwards.
    """
    with open(log_file, "w") as log:
        server = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.time() + timeout
            while True:
                if server.poll() is not None:
                    pytest.fail(f"server exited with {server.returncode}: {log_file.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(ready_url, timeout=5) as response:
                        if response.status == 200:
                            body = response.read()
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.time() > deadline:
                    pytest.fail(f"{ready_url} did not answer within {timeout:.0f} s: {log_file.read_text()[-3000:]}")
                time.sleep(1)
            yield body
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
