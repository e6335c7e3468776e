"""Fair queuing: user A's five uploads cannot hold user B's one behind them all, whether the
in-process queue or arq on the real Redis runs them."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlmodel import col, select

from config import Settings
from models import TranscodeRun, VideoStatus
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import Account, make_user
from tests.live import live_server
from tests.media import make_clip, wait_for_status
from tests.resolvers.test_uploads import rest_upload
from workers.queue import ArqQueue, InProcessQueue
from workers.worker import build_worker


async def _upload_backlog(
    http: httpx.AsyncClient, a: Account, b: Account, clip: bytes
) -> dict[str, str]:
    """A uploads five, then B one; video id -> who uploaded it (A1..A5, B1)."""
    names = {}
    for name, account in [*((f"A{n}", a) for n in range(1, 6)), ("B1", b)]:
        response = await rest_upload(http, account, clip, fields={"title": name})
        assert response.status_code == 202, response.text
        names[response.json()["id"]] = name
    return names


async def _run_order(services: Services, names: dict[str, str]) -> list[str]:
    async with services.db.session() as session:
        runs = (
            await session.exec(
                select(TranscodeRun.video_id)
                .where(col(TranscodeRun.video_id).in_(list(names)))
                .order_by(col(TranscodeRun.started_at))
            )
        ).all()
    return [names[video_id] for video_id in runs]


# arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_users_take_turns_under_arq_and_in_process(
    settings: Settings, tmp_path: Path
) -> None:
    queue_name = f"cowatch-test:{uuid.uuid4().hex}"
    production = settings.model_copy(
        update={"redis_url": REDIS_URL, "transcode_queue": queue_name, "transcode_workers": 1}
    )
    clip = make_clip(tmp_path / "c.mp4", 160, 120, seconds=0.5, audio=False).read_bytes()
    async with live_server(production) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert isinstance(server.services.queue, ArqQueue)
        a, b = await make_user(server.services), await make_user(server.services)
        # Queued in Redis while no worker runs: the whole backlog is there when one starts.
        under_arq = await _upload_backlog(http, a, b, clip)
        worker = build_worker(production, burst=True, poll_delay=0, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        assert (worker.jobs_complete, worker.jobs_failed) == (6, 0)
        arq_order = await _run_order(server.services, under_arq)

        # A second backlog, left PROCESSING for an embedded server to pick up when it starts.
        in_process = await _upload_backlog(http, a, b, clip)
    redis = Redis.from_url(REDIS_URL)
    try:
        # The second backlog's jobs never run under arq: drop them and the queue's keys.
        await redis.delete(
            queue_name, *(f"arq:job:transcode:{video_id}" for video_id in in_process)
        )
        async for key in redis.scan_iter(match=f"{queue_name}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()

    async with live_server(settings.model_copy(update={"transcode_workers": 1})) as server:
        assert isinstance(server.services.queue, InProcessQueue)
        await server.services.queue.join()
        for video_id in in_process:
            video = await wait_for_status(server.services, video_id)
            assert video.status == VideoStatus.TRANSCODED, video.failure_reason
        in_process_order = await _run_order(server.services, in_process)

    # One of each user's videos before anyone's next: B's one comes second, not sixth.
    assert arq_order == ["A1", "B1", "A2", "A3", "A4", "A5"]
    assert in_process_order == ["A1", "B1", "A2", "A3", "A4", "A5"]
