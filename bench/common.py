"""What the benches share: free ports, `cowatch serve` processes, throw-away databases, a viewer."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
#: One bench user holds thousands of sockets from one address: lift the per-user/address caps.
SOCKET_CAPS_OFF = {
    "COWATCH_MAX_SOCKETS_PER_USER": "1000000",
    "COWATCH_MAX_SOCKETS_PER_ADDRESS": "1000000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_files(need: int) -> None:
    """Let this process (and the clients it spawns) hold `need` sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, need), hard), hard))


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def start_cowatch(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`cowatch serve` on `port`, answering /healthz before this returns."""
    process = start([sys.executable, "-m", "cli", "serve", "--port", str(port)], env, log)
    wait_healthy(f"http://127.0.0.1:{port}/healthz")
    return process


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # a process we started: nothing to await but its port
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runnable_wait_seconds(pid: int) -> float:
    """Seconds a process's main thread has waited for a CPU while ready to run (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def error_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if "ERROR" in line]


async def create_database(admin_url: str) -> str:
    """A new, empty PostgreSQL database on the admin URL's server (cowatch serve migrates it)."""
    import asyncpg

    name = f"cowatch_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


async def drop_database(admin_url: str, database_url: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)'
        )
    finally:
        await admin.close()


async def viewer_with_videos(
    url: str,
    database_url: str,
    titles: list[str],
    *,
    duration: float = 3600.0,
    transcoded: bool = False,
) -> tuple[str, list[str]]:
    """A signed-up user's token, and ready videos of theirs (rows written straight to the db;
    `transcoded` marks them so, as a watch party needs)."""
    sys.path.insert(0, str(ROOT))
    from models import Video, VideoStatus
    from models.db import Database

    name = f"bench_{uuid.uuid4().hex[:8]}"
    creds = {"email": f"{name}@example.com", "password": "cowatch bench password"}
    # Generous timeouts: argon2 on a loaded 2-core machine can take seconds.
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        signup = await http.post("/api/auth/signup", json={**creds, "username": name})
        assert signup.status_code == 201, f"signup: {signup.status_code} {signup.text}"
        answer = await http.post("/api/auth/login", json=creds)
        assert answer.status_code == 200, f"login: {answer.status_code} {answer.text}"
        login = answer.json()
    db = Database(database_url)
    videos = [
        Video(owner_id=login["user"]["id"], title=title, duration=duration) for title in titles
    ]
    if transcoded:
        for video in videos:
            video.status = VideoStatus.TRANSCODED
    async with db.session() as session:
        session.add_all(videos)
        await session.commit()
    await db.dispose()
    return login["access_token"], [video.id for video in videos]
