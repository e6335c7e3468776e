"""Real servers for end-to-end tests: `cowatch serve` on a free port, `cowatch worker`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from models import Video, VideoStatus
from models.db import Database
from tests.conftest import REDIS_URL, TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent


def production_env(
    database_url: str, data_dir: Path, redis_url: str | None = None, **settings: str
) -> dict[str, str]:
    """The environment of a `cowatch serve` in the production shape: PostgreSQL, Redis (this
    machine's unless given), local media; rate-limit keys and the transcode queue of its own, so
    runs sharing the Redis do not share budgets or jobs. `settings`: more `COWATCH_*` values."""
    run = uuid.uuid4().hex[:8]
    return {
        "COWATCH_DATABASE_URL": database_url,
        "COWATCH_REDIS_URL": redis_url or REDIS_URL,
        "COWATCH_DATA_DIR": str(data_dir),
        "COWATCH_JWT_SECRET": TEST_SECRET,
        "COWATCH_STORAGE_URL": "",
        "COWATCH_RATE_LIMIT_PREFIX": f"cowatch-test-{run}",
        "COWATCH_TRANSCODE_QUEUE": f"cowatch-test-{run}",
        **settings,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll /healthz until the server answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + 90  # a safety net: start-up on a loaded 2-core machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling a process we do not control: there is no event to await
    raise RuntimeError(f"server did not become healthy:\n{log_path.read_text(errors='replace')}")


@contextmanager
def cowatch_serve(env: dict[str, str], log_dir: Path, port: int | None = None) -> Iterator[Server]:
    """Run `cowatch serve` with the given COWATCH_* environment; stop it afterwards."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"serve-{port}.log"
    full_env = {"COWATCH_PUBLIC_URL": url, "COWATCH_LOG_LEVEL": "warning", **env}
    process = _cli(["serve", "--host", "127.0.0.1", "--port", str(port)], full_env, log_path)
    try:
        wait_until_healthy(url, process, log_path)
        yield Server(url=url, port=port, process=process, log_path=log_path)
    finally:
        _stop(process, timeout=10)


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def cowatch_worker(env: dict[str, str], log_dir: Path, name: str) -> Iterator[WorkerProcess]:
    """Run `cowatch worker` (logging at info) with the given environment; stop it afterwards."""
    log_path = log_dir / f"worker-{name}.log"
    process = _cli(["worker"], {"COWATCH_LOG_LEVEL": "info", **env}, log_path)
    try:
        yield WorkerProcess(process=process, log_path=log_path)
    finally:
        _stop(process, timeout=30)


def _cli(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`cowatch <args>` from this checkout, output to `log_path`, env on top of ours."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def broadcast_ready(server: Server) -> bool:
    """Whether the server's bus is connected (its /readyz says so)."""
    try:
        body = httpx.get(f"{server.url}/readyz", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return False
    return bool(body.get("checks", {}).get("broadcast") == "ok")


async def sign_up(server: Server) -> tuple[str, str]:
    """A new account on the real server, through its API: (user id, token)."""
    name = f"e2e_{uuid.uuid4().hex[:10]}"
    credentials = {"email": f"{name}@example.com", "password": "end to end test password"}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        created = await http.post("/api/auth/signup", json={**credentials, "username": name})
        assert created.status_code == 201, created.text
        login = await http.post("/api/auth/login", json=credentials)
        assert login.status_code == 200, login.text
    body = login.json()
    return body["user"]["id"], body["access_token"]


async def transcoded_video_row(database_url: str, owner_id: str, title: str) -> str:
    """A TRANSCODED video row written straight to the servers' database (the transcoder is
    exercised elsewhere): a video parties can be made of."""
    db = Database(database_url)
    try:
        video = Video(
            owner_id=owner_id,
            title=title,
            duration=300.0,
            status=VideoStatus.TRANSCODED,
            width=1280,
            height=720,
        )
        async with db.session() as session:
            session.add(video)
            await session.commit()
        return video.id
    finally:
        await db.dispose()
