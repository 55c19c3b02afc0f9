"""An app served by ``kehu serve`` on a free loopback port, for tests that need a real server
(browser tests, API fuzzing, several processes)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(
    kehu: list[str], env: dict[str, str], log_path: Path, within: float = 60
) -> Iterator[str]:
    """``kehu serve`` (``kehu``: the command that runs the CLI) until the block ends; its base
    URL once it answers ``/healthz``. Its output goes to ``log_path``."""
    port = free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
            [*kehu, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def server_log() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + within
        while True:
            if server.poll() is not None:
                pytest.fail(f"the app exited with {server.returncode}:\n{server_log()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer /healthz in {within:.0f} s:\n{server_log()}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
