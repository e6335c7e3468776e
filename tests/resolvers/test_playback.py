"""Setting the shared playhead: validation, storage and versions, on both faces and backends."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from resolvers import playback
from resolvers.services import Services
from tests.factories import error_code, gql, make_user, make_videos

MUTATION = """
mutation Seek($id: ID!, $t: Float!, $playing: Boolean, $rate: Float, $at: Float) {
  updateVideoTimestamp(videoId: $id, timestamp: $t, playing: $playing, rate: $rate, at: $at) {
    videoId timestamp userId playing rate serverTime version
  }
}
"""


async def test_put_time_stores_the_state_and_returns_201(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=120.0)
    response = await client.put(
        f"/api/videos/{video.id}/time",
        json={"video_id": video.id, "timestamp": 45.5, "playing": True, "rate": 1.5},
        headers=account.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["timestamp"] == 45.5
    assert body["user_id"] == account.user.id
    assert (body["playing"], body["rate"], body["version"]) == (True, 1.5, 1)
    stored = await playback.current_state(db=services.db, video_id=video.id)
    assert stored.version == 1 and stored.timestamp == 45.5 and stored.playing
    # `playing` and `rate` stay as they were when left out.
    again = await client.put(
        f"/api/videos/{video.id}/time", json={"timestamp": 10}, headers=account.headers
    )
    assert again.status_code == 201
    assert (again.json()["playing"], again.json()["rate"], again.json()["version"]) == (
        True,
        1.5,
        2,
    )
    details = (await client.get(f"/api/videos/{video.id}")).json()
    assert details["current_timestamp"] >= 10


@pytest.mark.parametrize(
    "body",
    [
        {"timestamp": -1},
        {"timestamp": 121.01},
        {"timestamp": "12"},
        {"timestamp": True},
        {"timestamp": None},
        {},
        {"timestamp": 5, "rate": 0},
        {"timestamp": 5, "playing": "yes"},
        {"timestamp": 5, "video_id": "another"},
    ],
)
async def test_put_time_rejects_bad_input_with_400(
    client: httpx.AsyncClient, services: Services, body: dict[str, object]
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=120.0)
    response = await client.put(f"/api/videos/{video.id}/time", json=body, headers=account.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_put_time_rejects_non_finite_numbers(
    client: httpx.AsyncClient, services: Services, raw: str
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1)
    response = await client.put(
        f"/api/videos/{video.id}/time",
        content=f'{{"timestamp": {raw}}}',
        headers={**account.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text


async def test_positions_up_to_a_second_past_the_end_are_the_end(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Players report durations a few ms long: "the end" is clamped, not refused (issue 13)."""
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=120.0)
    url = f"/api/videos/{video.id}/time"
    for sent, version in ((120.004, 1), (121.0, 2)):
        response = await client.put(url, json={"timestamp": sent}, headers=account.headers)
        assert response.status_code == 201, response.text
        assert (response.json()["timestamp"], response.json()["version"]) == (120.0, version)
    refused = await client.put(url, json={"timestamp": 121.001}, headers=account.headers)
    assert refused.status_code == 400
    assert "past the end" in refused.json()["error"]["message"]
    stored = await playback.current_state(db=services.db, video_id=video.id)
    assert (stored.timestamp, stored.version) == (120.0, 2)


async def test_put_time_auth_and_missing_video(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1)
    url = f"/api/videos/{video.id}/time"
    assert (await client.put(url, json={"timestamp": 1})).status_code == 403
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await client.put(url, json={"timestamp": 1}, headers=bad)).status_code == 401
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        response = await client.put(
            f"/api/videos/{missing}/time", json={"timestamp": 1}, headers=account.headers
        )
        assert response.status_code == 404, response.text


async def test_unknown_duration_only_rejects_negatives(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=None)
    url = f"/api/videos/{video.id}/time"
    ok = await client.put(url, json={"timestamp": 99999}, headers=account.headers)
    assert ok.status_code == 201
    bad = await client.put(url, json={"timestamp": -0.5}, headers=account.headers)
    assert bad.status_code == 400


async def test_mutation_sets_the_same_state(client: httpx.AsyncClient, services: Services) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=60.0)
    body = await gql(
        client, MUTATION, {"id": video.id, "t": 30.25, "playing": True}, token=account.token
    )
    event = body["data"]["updateVideoTimestamp"]
    assert event["videoId"] == video.id and event["timestamp"] == 30.25
    assert event["userId"] == account.user.id and event["playing"] is True
    assert event["version"] == 1 and event["serverTime"] > 0
    past_end = await gql(client, MUTATION, {"id": video.id, "t": 61.5}, token=account.token)
    assert error_code(past_end) == "BAD_USER_INPUT"
    at_end = await gql(client, MUTATION, {"id": video.id, "t": 60.75}, token=account.token)
    assert at_end["data"]["updateVideoTimestamp"]["timestamp"] == 60.0
    missing = await gql(client, MUTATION, {"id": str(uuid.uuid4()), "t": 1}, token=account.token)
    assert error_code(missing) == "NOT_FOUND"
    anonymous = await gql(client, MUTATION, {"id": video.id, "t": 1})
    assert error_code(anonymous) == "UNAUTHENTICATED"


def server_ms_ago(ms: float) -> float:
    """A server-clock reading `ms` before now (this process shares the server's clock)."""
    return time.time_ns() / 1_000_000 - ms


@pytest.mark.parametrize(
    ("sent", "ago_ms", "moves"),
    [
        ({"timestamp": 10, "playing": True}, 300, 1.0),  # arrived 300 ms after it was read
        ({"timestamp": 10, "playing": True, "rate": 2}, 300, 2.0),  # at the new rate
        ({"timestamp": 10, "playing": True}, -200, 1.0),  # sooner than the sender expected
        ({"timestamp": 0.1, "playing": True}, -600, None),  # never before 0
        ({"timestamp": 10, "playing": False}, 300, 0.0),  # a paused position does not move
        ({"timestamp": 10}, 300, 0.0),  # nor one whose `playing` is left as it was
        ({"timestamp": 10, "playing": True}, 5000, 0.0),  # a clock not synced: as it is
        ({"timestamp": 119.9, "playing": True}, 900, None),  # never past the end
    ],
)
async def test_at_moves_a_playing_position_by_the_time_it_took_to_arrive(
    client: httpx.AsyncClient,
    services: Services,
    sent: dict[str, object],
    ago_ms: float,
    moves: float | None,
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=120.0)
    at = server_ms_ago(ago_ms)
    response = await client.put(
        f"/api/videos/{video.id}/time", json={**sent, "at": at}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    stored = await playback.current_state(db=services.db, video_id=video.id)
    assert stored.timestamp == body["timestamp"]
    lead = (body["server_time"] - at) / 1000
    if moves is not None:
        assert body["timestamp"] == pytest.approx(float(sent["timestamp"]) + moves * lead)  # type: ignore[arg-type]
    elif ago_ms < 0:
        assert body["timestamp"] == 0.0
    else:
        assert body["timestamp"] == 120.0


async def test_at_must_be_a_number_and_is_the_same_on_graphql(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, duration=120.0)
    url = f"/api/videos/{video.id}/time"
    for bad in ("soon", True, [1]):
        response = await client.put(
            url, json={"timestamp": 5, "playing": True, "at": bad}, headers=account.headers
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    assert (await playback.current_state(db=services.db, video_id=video.id)).version == 0
    at = server_ms_ago(250)
    body = await gql(
        client,
        MUTATION,
        {"id": video.id, "t": 20.0, "playing": True, "at": at},
        token=account.token,
    )
    event = body["data"]["updateVideoTimestamp"]
    assert event["timestamp"] == pytest.approx(20.0 + (event["serverTime"] - at) / 1000)
    assert event["timestamp"] > 20.2


async def test_concurrent_seeks_get_distinct_increasing_versions(services: Services) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1)
    states = await asyncio.gather(
        *(
            playback.set_playback(
                db=services.db,
                publisher=services.bus,
                user=account.user,
                video_id=video.id,
                timestamp=float(i),
            )
            for i in range(20)
        )
    )
    assert sorted(state.version for state in states) == list(range(1, 21))
    stored = await playback.current_state(db=services.db, video_id=video.id)
    assert stored.version == 20


async def test_clock_sync_endpoints(client: httpx.AsyncClient, services: Services) -> None:
    before = playback.precise_now_ms()
    rest = (await client.get("/api/time")).json()
    body = await gql(client, "{ serverClock { receivedAt sentAt } }")
    after = playback.precise_now_ms()
    clock = body["data"]["serverClock"]
    for received, sent in ((rest["received_at"], rest["sent_at"]), tuple(clock.values())):
        assert before <= received <= sent <= after
