"""The transcode job under the arq worker on the real Redis: failures, retries; local storage."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, update

from config import Settings
from models import Video, VideoStatus
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import make_user
from tests.live import live_server
from tests.media import make_clip, renditions, wait_for_status
from tests.resolvers.test_uploads import rest_upload
from workers.jobs import MAX_ATTEMPTS, transcode_video
from workers.queue import ArqQueue
from workers.worker import build_worker


def job_ctx(services: Services, **extra: Any) -> dict[str, Any]:
    return {"db": services.db, "storage": services.storage, **extra}


# arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_arq_worker_transcodes_an_upload(
    settings: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = settings.model_copy(
        update={"redis_url": REDIS_URL, "transcode_queue": f"cowatch-test:{uuid.uuid4().hex}"}
    )
    async with live_server(settings) as server:
        services = server.services
        assert isinstance(services.queue, ArqQueue)
        account = await make_user(services)
        clip = make_clip(tmp_path / "480.mp4", 854, 480).read_bytes()
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await rest_upload(client, account, clip)
        assert response.status_code == 202, response.text
        assert response.json()["qualities"] == ["240p", "480p"]
        video_id = response.json()["id"]
        await services.queue.enqueue_transcode(video_id, owner_id=account.user.id)  # a duplicate

        worker = build_worker(settings, burst=True, poll_delay=0, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()
        assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
        video = await wait_for_status(services, video_id)
        assert video.status == VideoStatus.TRANSCODED, video.failure_reason
        assert [r.quality for r in await renditions(services, video_id)] == ["240p", "480p"]


async def test_a_truncated_video_ends_failed_with_a_reason(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    clip = make_clip(tmp_path / "whole.mp4", 640, 360, seconds=2).read_bytes()
    response = await rest_upload(client, account, clip[: len(clip) // 2])
    assert response.status_code == 202, response.text  # the header and first frames are fine
    video = await wait_for_status(services, response.json()["id"])
    assert video.status == VideoStatus.FAILED
    assert video.failure_reason is not None
    assert "truncated or corrupt" in video.failure_reason
    details = (await client.get(f"/api/videos/{video.id}")).json()
    assert details["status"] == "FAILED"
    assert details["failure_reason"] == video.failure_reason
    assert "video_urls" not in details
    assert await services.storage.keys() == [f"videos/{video.id}/source"]


async def test_a_rerun_job_replaces_its_outputs_and_timeouts_and_retries_end_failed(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    clip = make_clip(tmp_path / "small.mp4", 426, 240, audio=False).read_bytes()
    video_id = (await rest_upload(client, account, clip)).json()["id"]
    assert (await wait_for_status(services, video_id)).status == VideoStatus.TRANSCODED
    keys = await services.storage.keys()

    async def reset() -> None:  # as a worker killed after writing its outputs would leave it
        async with services.db.session() as session:
            await session.exec(
                update(Video)
                .where(col(Video.id) == video_id)
                .values(status=VideoStatus.PROCESSING, progress=40)
            )
            await session.commit()

    await reset()
    assert await transcode_video(job_ctx(services, job_try=2), video_id) == "TRANSCODED"
    assert [r.quality for r in await renditions(services, video_id)] == ["240p"]
    assert await services.storage.keys() == keys
    assert await transcode_video(job_ctx(services), video_id) == "skipped"

    await reset()
    assert await transcode_video(job_ctx(services, timeout_s=0), video_id) == "FAILED"
    video = await wait_for_status(services, video_id)
    assert video.failure_reason == "transcoding took longer than 0 s"
    assert await services.storage.keys() == [f"videos/{video_id}/source"]

    await reset()
    outcome = await transcode_video(job_ctx(services, job_try=MAX_ATTEMPTS + 1), video_id)
    assert outcome == "FAILED"
    video = await wait_for_status(services, video_id)
    assert video.failure_reason == f"transcoding was interrupted {MAX_ATTEMPTS} times"
