"""A starting server removes the upload staging files a killed one left, never a live one's."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.media import make_clip
from tests.servers import Server, cowatch_serve

PASSWORD = "a long and unusual passphrase 7"
BOUNDARY = "cowatch-test-boundary"
DEADLINE_S = 30


def _signup(server: Server) -> str:
    account = {"email": "stager@example.com", "password": PASSWORD, "username": "stager"}
    assert httpx.post(f"{server.url}/api/auth/signup", json=account).status_code == 201
    login = httpx.post(f"{server.url}/api/auth/login", json=account)
    assert login.status_code == 200, login.text
    token: str = login.json()["access_token"]
    return token


def _form(clip: bytes) -> tuple[bytes, bytes]:
    """A multipart body cut inside the file part: what is sent first, then the rest."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("title", "slow"), ("category", "tests"))
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    half = len(clip) // 2
    return head + clip[:half], clip[half:] + f"\r\n--{BOUNDARY}--\r\n".encode()


def _live_parts(uploads: Path, besides: set[Path]) -> list[Path]:
    return [path for path in uploads.glob("*.part") if path not in besides]


async def test_start_up_sweeps_orphans_and_keeps_another_servers_live_upload(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {"COWATCH_DATA_DIR": str(data_dir), "COWATCH_RATE_LIMIT_ENABLED": "false"}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    first, rest = _form(make_clip(tmp_path / "c.mp4", 320, 240).read_bytes())
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield first
        await release.wait()
        yield rest

    with cowatch_serve(env, tmp_path) as serving:
        token = _signup(serving)
        uploads = data_dir / "uploads"
        uploads.mkdir(exist_ok=True)
        orphan = uploads / "0123456789abcdef.part"
        orphan.write_bytes(b"left by a server killed mid-upload")  # fresh: no age rule spares it
        unnamed = uploads / ".fedcba9876543210.new"
        unnamed.write_bytes(b"")
        os.utime(unnamed, (time.time() - 7200, time.time() - 7200))
        async with httpx.AsyncClient(base_url=serving.url, timeout=DEADLINE_S) as client:
            upload = asyncio.create_task(
                client.post(
                    "/api/videos/upload",
                    content=body(),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                    },
                )
            )
            deadline = time.monotonic() + DEADLINE_S
            while not (live := _live_parts(uploads, {orphan})):
                assert time.monotonic() < deadline, "the upload never reached the staging dir"
                await asyncio.sleep(0.05)  # another process's file: there is no event to await
            (live_part,) = live

            with cowatch_serve(env, tmp_path):  # a second server on the same data dir starts
                assert not orphan.exists()
                assert not unnamed.exists()
                assert live_part.exists()

            release.set()
            response = await upload
        assert response.status_code == 202, response.text
        assert not live_part.exists()
        assert list(uploads.iterdir()) == []
