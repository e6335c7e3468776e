"""The per-user daily transcode-seconds budget: every run is counted, and an upload is refused
with 429 and Retry-After while the last 24 h of runs use the budget."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from sqlmodel import col, select

from config import Settings
from models import TranscodeRun, VideoStatus
from models.base import utcnow
from resolvers.services import Services
from tests.factories import make_user
from tests.live import live_server
from tests.media import make_clip, row_count, wait_for_status
from tests.resolvers.test_uploads import rest_upload

BUDGET_S = 600


async def _runs(services: Services, owner_id: str) -> list[TranscodeRun]:
    async with services.db.session() as session:
        query = select(TranscodeRun).where(col(TranscodeRun.owner_id) == owner_id)
        return list((await session.exec(query)).all())


async def test_an_upload_is_refused_while_the_days_transcoding_budget_is_used(
    settings: Settings, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "c.mp4", 160, 120, seconds=0.5, audio=False).read_bytes()
    settings = settings.model_copy(update={"transcode_seconds_per_day": BUDGET_S})
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        services = server.services
        account = await make_user(services)
        first = await rest_upload(http, account, clip)
        assert first.status_code == 202, first.text
        video = await wait_for_status(services, first.json()["id"])
        assert video.status == VideoStatus.TRANSCODED
        (run,) = await _runs(services, account.user.id)
        assert run.video_id == video.id and 0 < run.seconds < BUDGET_S

        async with services.db.session() as session:
            # Earlier runs: 25 h ago (no longer counted) and 2 h ago (the rest of the budget).
            for hours, seconds in ((25, 9999.0), (2, float(BUDGET_S))):
                started_at = utcnow() - timedelta(hours=hours)
                run = TranscodeRun(
                    owner_id=account.user.id, video_id=video.id, started_at=started_at,
                    seconds=seconds,
                )  # fmt: skip
                session.add(run)
            await session.commit()
        refused = await rest_upload(http, account, clip)
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "RATE_LIMITED"
        assert error["message"].startswith("daily transcoding budget used: ")
        assert error["message"].endswith(f" of {BUDGET_S} s in the last 24 h")
        # Free once the run of 2 h ago leaves the window, 22 h from now.
        retry_after = int(refused.headers["retry-after"])
        assert 22 * 3600 - 60 <= retry_after <= 22 * 3600
        assert await row_count(services) == 1

        other = await make_user(services)  # the budget is per user
        assert (await rest_upload(http, other, clip)).status_code == 202
