"""Faults with processes the test starts itself: a transcoding worker SIGKILLed mid-transcode."""

from __future__ import annotations

import fcntl
import os
import signal
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from config import Settings
from storage.s3 import S3Storage
from tests.conftest import TEST_SECRET, empty_pg_database, run_blocking
from tests.live import wait_for
from tests.media import create_bucket, make_clip, moto_endpoint, s3_settings
from tests.servers import cowatch_serve, cowatch_worker
from tests.workers.test_worker import REDIS_URL
from workers.jobs import rendition_key, source_key, thumbnail_key
from workers.lease import in_progress_key
from workers.scratch import LOCK_NAME, PREFIX, Scratch, sweep

__all__ = ["moto_endpoint"]
LEASE_S = 5
QUALITIES = ["240p", "480p", "720p"]
ACCOUNT = {"email": "killed@example.com", "password": "killed password", "username": "killed"}


def _query(pg_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return run_blocking(run())


def _video(pg_url: str, video_id: str) -> asyncpg.Record:
    (row,) = _query(pg_url, "SELECT status, progress FROM videos WHERE id = $1", video_id)
    return row


async def _bucket_keys(settings: Settings) -> list[str]:
    storage = S3Storage.from_settings(settings)
    try:
        return await storage.keys()
    finally:
        await storage.close()


def _alive_descendants(pid: int) -> set[int]:
    """Live (not zombie) processes under `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _still_running(pids: set[int]) -> set[int]:
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def _ours(directory: Path) -> list[str]:
    """Cowatch's entries in a temporary directory (multiprocessing keeps its own there too)."""
    return sorted(p.name for p in directory.iterdir() if p.name.lstrip(".").startswith("cowatch-"))


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_transcode_is_replaced_and_the_video_transcodes_once(
    pg_url: str, moto_endpoint: str, tmp_path: Path
) -> None:
    run_blocking(empty_pg_database(pg_url))
    settings = s3_settings(Settings(), moto_endpoint)
    run_blocking(create_bucket(settings))
    queue = f"cowatch-test:{uuid.uuid4().hex}"
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    env = {
        "COWATCH_DATA_DIR": str(tmp_path / "data"),
        "COWATCH_DATABASE_URL": pg_url,
        "COWATCH_REDIS_URL": REDIS_URL,
        "COWATCH_TRANSCODE_QUEUE": queue,
        "COWATCH_TRANSCODE_LEASE_S": str(LEASE_S),
        "COWATCH_STORAGE_URL": str(settings.storage_url),
        "COWATCH_S3_ENDPOINT_URL": moto_endpoint,
        "COWATCH_S3_ACCESS_KEY_ID": "testing",
        "COWATCH_S3_SECRET_ACCESS_KEY": "testing",
        "COWATCH_JWT_SECRET": TEST_SECRET,
        "COWATCH_RATE_LIMIT_PREFIX": f"cowatch-rl-test:{uuid.uuid4().hex}",
    }
    worker_env = {**env, "TMPDIR": str(worker_tmp)}  # where the test sees what workers leave
    # 15 s of 720p at 10 fps: ~5 s to transcode on an idle 2-core machine, longer under load,
    # so a kill as soon as progress shows lands well before the end.
    clip = make_clip(tmp_path / "long.mp4", 1280, 720, seconds=15).read_bytes()

    with cowatch_serve(env, tmp_path) as server, ExitStack() as workers:
        first = workers.enter_context(cowatch_worker(worker_env, tmp_path, "first"))
        assert httpx.post(f"{server.url}/api/auth/signup", json=ACCOUNT).status_code == 201
        token = httpx.post(f"{server.url}/api/auth/login", json=ACCOUNT).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        upload = httpx.post(
            f"{server.url}/api/videos/upload",
            data={"title": "Killed mid-transcode"},
            files={"file": ("long.mp4", clip, "video/mp4")},
            headers=headers,
            timeout=60,
        )
        assert upload.status_code == 202, upload.text
        assert upload.json()["qualities"] == QUALITIES
        video_id = upload.json()["id"]

        def under_way() -> bool:
            video = _video(pg_url, video_id)
            return bool(video["progress"] > 0 or video["status"] != "PROCESSING")

        wait_for(under_way, "the first worker reports progress", timeout_s=90)
        media_processes = _alive_descendants(first.process.pid)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        killed_at = _video(pg_url, video_id)
        assert killed_at["status"] == "PROCESSING", "the transcode ended before the kill"
        assert 0 < killed_at["progress"] < 100
        assert media_processes, "no media process under the first worker"
        wait_for(
            lambda: not _still_running(media_processes),
            "the killed worker's media processes exit",
        )
        (abandoned,) = worker_tmp.glob(f"{PREFIX}*")
        assert [p.name for p in abandoned.glob("cowatch-transcode-*")], "no job files left"

        second = workers.enter_context(cowatch_worker(worker_env, tmp_path, "second"))
        wait_for(
            lambda: _video(pg_url, video_id)["status"] != "PROCESSING",
            "the second worker finishes the transcode",
            timeout_s=120,
        )
        assert _video(pg_url, video_id)["status"] == "TRANSCODED", second.log()
        assert not abandoned.exists(), "the second worker did not sweep the first one's files"

        # The retry: arq's try counter, as the job logs it.
        assert f"video {video_id}: transcoding, try 1" in first.log()
        assert f"video {video_id} transcoded" not in first.log()
        assert second.log().count(f"video {video_id}: transcoding, try 2") == 1, second.log()
        assert second.log().count(f"video {video_id} transcoded") == 1, second.log()

        rows = _query(
            pg_url,
            "SELECT quality, count(*) AS n FROM renditions WHERE video_id = $1 GROUP BY quality",
            video_id,
        )
        assert {row["quality"]: row["n"] for row in rows} == dict.fromkeys(QUALITIES, 1)
        details = httpx.get(f"{server.url}/api/videos/{video_id}", headers=headers).json()
        assert details["status"] == "TRANSCODED"
        assert sorted(details["video_urls"]) == QUALITIES
        for url in [*details["video_urls"].values(), details["thumbnail_url"]]:
            download = httpx.get(url, timeout=30)
            assert download.status_code == 200, url
            assert download.content

        keys = run_blocking(_bucket_keys(settings))
        expected = [source_key(video_id), thumbnail_key(video_id)]
        expected += [rendition_key(video_id, quality) for quality in QUALITIES]
        assert keys == sorted(expected)

        with redis.Redis.from_url(REDIS_URL) as arq_redis:
            assert arq_redis.zcard(queue) == 0
            assert not arq_redis.exists(in_progress_key(f"transcode:{video_id}"))
            assert not arq_redis.exists(f"arq:retry:transcode:{video_id}")

    assert _ours(worker_tmp) == [], "a stopped worker left files behind"


def test_scratch_directories_of_dead_workers_are_swept_and_live_ones_kept(
    tmp_path: Path,
) -> None:
    live = Scratch(tmp_path)
    (live.path / "cowatch-transcode-x").mkdir()
    dead = tmp_path / f"{PREFIX}dead"
    (dead / "cowatch-transcode-y").mkdir(parents=True)
    (dead / LOCK_NAME).touch()  # no process holds its lock: its worker is gone
    half_removed = tmp_path / f"{PREFIX}half"
    half_removed.mkdir()
    unrelated = tmp_path / "pymp-abc"
    unrelated.mkdir()

    assert sweep(tmp_path) == [dead, half_removed]
    assert sorted(tmp_path.iterdir()) == [live.path, unrelated]
    # Another process (a second worker on the host) cannot take the live one's lock either.
    fd = os.open(live.path / LOCK_NAME, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)

    second = Scratch(tmp_path)
    assert live.path.exists()
    live.close()
    live.close()
    assert sorted(tmp_path.iterdir()) == [second.path, unrelated]
    second.close()
