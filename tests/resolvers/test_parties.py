"""Parties through their resolvers on both databases: joining, passwords, roles, the log."""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.parties import PartyEvent, PartyRole, PartyVisibility
from resolvers import parties
from resolvers.auth import Caller, member_claims
from resolvers.errors import BadInput, Forbidden, NotFound
from resolvers.party_rules import BadPassword, PartyEnded, PartyFull
from resolvers.party_state import Live
from resolvers.services import Services
from tests.factories import Account, make_user, make_videos


async def _party(services: Services, **options: object) -> tuple[Account, Live]:
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1)
    live = await parties.create_party(
        runtime=services.parties,
        hashing=services.hashing,
        user=host.user,
        video_id=video.id,
        **options,  # type: ignore[arg-type]
    )
    return host, live


async def _join(
    services: Services, code: str, caller: Caller | None = None, **extra: object
) -> parties.Joined:
    return await parties.join_party(
        runtime=services.parties,
        hashing=services.hashing,
        limiter=services.rate_limiter,
        settings=services.settings,
        secret=services.jwt_secret,
        caller=caller or Caller(),
        address="127.0.0.1",
        code=code,
        **extra,  # type: ignore[arg-type]
    )


async def test_a_party_has_its_host_first_and_guests_join_with_a_scoped_token(
    services: Services,
) -> None:
    _, live = await _party(services, name="Movie night")
    assert len(live.code) >= 11  # 64 random bits, URL-safe
    assert [m.role for m in live.members.values()] == [PartyRole.HOST]
    joined = await _join(services, live.code, display_name="  Ana  ")
    assert joined.member.role == PartyRole.GUEST and joined.member.name == "Ana"
    claims = member_claims(secret=services.jwt_secret, token=joined.member_token)
    assert claims is not None and claims.party_id == live.id
    twin = await _join(services, live.code, display_name="ana")
    assert twin.member.name == "ana (2)"
    for bad in ("", " ", "x" * 41, "bell\x07"):
        with pytest.raises(BadInput):
            await _join(services, live.code, display_name=bad)
    with pytest.raises(NotFound):
        await _join(services, "no-such-code", display_name="Bo")


async def test_private_parties_need_the_password_and_are_invisible_to_outsiders(
    services: Services,
) -> None:
    with pytest.raises(BadInput):
        await _party(services, visibility=PartyVisibility.PRIVATE)
    _, live = await _party(services, visibility=PartyVisibility.PRIVATE, password="s3cret!")
    for wrong in (None, "guess"):
        with pytest.raises(BadPassword):
            await _join(services, live.code, display_name="Bo", password=wrong)
    stranger = await make_user(services)
    runtime = services.parties
    assert await parties.find_party(runtime=runtime, caller=Caller(), code=live.code) is None
    caller = Caller(user=stranger.user)
    assert await parties.find_party(runtime=runtime, caller=caller, party_id=live.id) is None
    joined = await _join(services, live.code, display_name="Bo", password="s3cret!")
    found = await parties.find_party(
        runtime=runtime,
        caller=Caller(member=member_claims(secret=services.jwt_secret, token=joined.member_token)),
        party_id=live.id,
    )
    assert found is not None and found.member is not None
    listed = await parties.public_parties(runtime=runtime, video_id=live.video_id)
    assert live.id not in [p.id for p in listed]


async def test_full_ended_and_kicked(services: Services) -> None:
    host, live = await _party(services, max_members=2)
    member = await make_user(services)
    await _join(services, live.code, Caller(user=member.user))
    with pytest.raises(PartyFull):
        await _join(services, live.code, display_name="Third")
    host_caller = Caller(user=host.user)
    member_id = next(
        m.id
        for m in (await services.parties.get(live.id)).members.values()
        if m.user_id == member.user.id
    )
    with pytest.raises(Forbidden):
        await parties.kick_member(
            runtime=services.parties,
            caller=Caller(user=member.user),
            party_id=live.id,
            member_id=member_id,
        )
    assert await parties.kick_member(
        runtime=services.parties, caller=host_caller, party_id=live.id, member_id=member_id
    )
    with pytest.raises(Forbidden):
        await _join(services, live.code, Caller(user=member.user))
    await parties.end_party(runtime=services.parties, caller=host_caller, party_id=live.id)
    with pytest.raises(PartyEnded):
        await _join(services, live.code, display_name="Late")


async def test_the_log_is_written_behind_and_the_live_state_is_rebuilt_from_the_database(
    services: Services,
) -> None:
    host, live = await _party(services)
    await _join(services, live.code, display_name="Ana")
    runtime = services.parties
    await runtime.writer.flush()
    async with services.db.session() as session:
        logged = (await session.exec(select(PartyEvent.kind, PartyEvent.seq))).all()
    assert [(kind, seq) for kind, seq in logged] == [("member_joined", 1), ("member_joined", 2)]
    await runtime.store.forget(f"party:{live.id}")  # the live store lost it (a Redis flush)
    rebuilt = await runtime.get(live.id)
    assert [m.name for m in rebuilt.members.values()] == [host.user.username, "Ana"]
    assert rebuilt.seq == 2
