"""Page handlers: server-rendered HTML over the same resolvers the API faces call."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from models import User, Video, VideoStatus
from models.base import as_utc
from models.values import FeedItemValue, UserValue, VideoValue
from resolvers import auth, urls, videos
from resolvers.errors import BadInput, DomainError, InvalidToken
from resolvers.party_rules import REACTIONS
from resolvers.services import Services

PAGE_SIZE = 12
#: what each reaction button says to a screen reader, in REACTIONS' order
REACTION_NAMES = ("thumbs up", "heart", "laughing", "surprised", "sad", "applause", "fire", "party")
MAX_PAGE = 10_000

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def services(request: Request) -> Services:
    """The app's resources (built in app.py's lifespan); pages import no other face."""
    svc: Services = request.app.state.services
    return svc


async def viewer(request: Request) -> User | None:
    """The user the `Authentication` cookie names; anonymous when it is missing or stale."""
    try:
        svc = services(request)
        return await auth.presented_user(
            db=svc.db, secret=svc.jwt_secret, headers=request.headers, cookies=request.cookies
        )
    except InvalidToken:
        return None


def public_base(request: Request) -> str:
    """The origin this browser reaches us at (`COWATCH_PUBLIC_URL`, else the request's own)."""
    return urls.public_base(configured=services(request).settings.public_url, scope=request.scope)


async def media_url(request: Request, key: str) -> str:
    return urls.absolute(public_base(request), await services(request).storage.url(key))


def session_cookie(request: Request, token: str, *, ttl_s: int) -> str:
    configured = services(request).settings.public_url
    secure = urls.secure_cookie(configured=configured, scope=request.scope)
    return auth.session_cookie(token, ttl_s=ttl_s, secure=secure)


async def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    context.setdefault("viewer", await viewer(request))
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    # Security headers (the page CSP among them) come from rest_compat.headers for every page.
    response.headers["Cache-Control"] = "no-store"
    return response


# A path on this site: browsers drop tabs and newlines and read `\\` as `/`, so `/\t/x` or
# `/\\x` would become the protocol-relative `//x`; none of those characters may appear.
SAME_SITE_PATH = re.compile(r"/(?![/\\])[^\s\\\x00-\x1f\x7f]*")


def safe_next(value: str | None) -> str:
    """Only same-site paths, so `?next=` cannot send a fresh login elsewhere."""
    return value if value and SAME_SITE_PATH.fullmatch(value) else "/"


def _page_number(raw: str | None) -> int:
    try:
        return min(max(int(raw or "1"), 1), MAX_PAGE)
    except ValueError:
        return 1


def clock(seconds: float | None) -> str:
    """`1:05` or `1:02:03`; empty when unknown."""
    if seconds is None:
        return ""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def ago(when: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - as_utc(when)).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def page_links(current: int, total: int) -> list[int | None]:
    """Page numbers around the current one, None marking a gap."""
    wanted = {1, total, *range(current - 2, current + 3)}
    shown = sorted(n for n in wanted if 1 <= n <= total)
    links: list[int | None] = []
    previous = 0
    for n in shown:
        if previous and n - previous > 1:
            links.append(None)
        links.append(n)
        previous = n
    return links


async def card(
    request: Request, video: Video | VideoValue | FeedItemValue, creator: UserValue | None
) -> dict[str, Any]:
    thumbnail = await media_url(request, video.thumbnail_key) if video.thumbnail_key else None
    return {
        "id": video.id,
        "title": video.title,
        "category": video.category,
        "thumbnail": thumbnail,
        "creator": creator.username if creator else "",
        "views": video.view_count,
        "duration": clock(video.duration),
        "ago": ago(video.created_at),
        "created": as_utc(video.created_at).isoformat(),
    }


async def feed(request: Request) -> Response:
    svc = services(request)
    page = _page_number(request.query_params.get("page"))
    category = (request.query_params.get("category") or "").strip() or None
    try:
        result = await videos.feed(
            db=svc.db, counts=svc.counts, page=page, limit=PAGE_SIZE, category=category
        )
    except BadInput as exc:
        return await render(request, "error.html", {"message": exc.message}, 400)
    cards = [
        await card(request, video, result.creators.get(video.owner_id)) for video in result.videos
    ]
    return await render(
        request,
        "feed.html",
        {
            "cards": cards,
            "category": category,
            "categories": await videos.categories(db=svc.db),
            "page": result.current_page,
            "total_pages": result.total_pages,
            "page_links": page_links(result.current_page, result.total_pages),
        },
    )


async def _auth_page(request: Request, mode: str) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    return await render(request, "auth.html", {"mode": mode, "next": next_path})


async def login(request: Request) -> Response:
    return await _auth_page(request, "login")


async def signup(request: Request) -> Response:
    return await _auth_page(request, "signup")


async def logout(request: Request) -> Response:
    """Revoke the session's token and forget the cookie (the script forgets its own copy)."""
    svc = services(request)
    token = auth.token_from(headers=request.headers, cookies=request.cookies)
    with contextlib.suppress(DomainError):  # no token, or already invalid: nothing to revoke
        await auth.logout(db=svc.db, publisher=svc.bus, secret=svc.jwt_secret, token=token)
    response = RedirectResponse("/", status_code=303)
    response.headers.append("set-cookie", session_cookie(request, "", ttl_s=0))
    return response


async def upload(request: Request) -> Response:
    user = await viewer(request)
    if user is None:
        return RedirectResponse("/login?next=/upload", status_code=303)
    categories = await videos.categories(db=services(request).db, limit=50)
    return await render(request, "upload.html", {"viewer": user, "categories": categories})


async def watch(request: Request) -> Response:
    svc = services(request)
    video = await videos.find_video(db=svc.db, video_id=request.path_params["video_id"])
    if video is None:
        return await render(request, "error.html", {"message": "No such video."}, 404)
    (creator,) = await videos.users_by_ids(db=svc.db, ids=[video.owner_id])
    renditions: list[dict[str, Any]] = []
    if video.status == VideoStatus.TRANSCODED:
        await videos.record_view(db=svc.db, video_id=video.id)
        video.view_count += 1  # this view, as the REST details answer counts it
        (models,) = await videos.renditions_by_video_ids(db=svc.db, ids=[video.id])
        renditions = [
            {
                "quality": r.quality,
                "height": r.height,
                "url": await media_url(request, r.storage_key),
            }
            for r in models
        ]
    preferred = next((r for r in renditions if r["quality"] == "480p"), None)
    return await render(
        request,
        "watch.html",
        {
            "video": await card(request, video, creator),
            "description": video.description,
            "status": video.status.value,
            "progress": video.progress,
            "failure_reason": video.failure_reason,
            "duration": video.duration,
            "renditions": renditions,
            "selected": preferred or (renditions[-1] if renditions else None),
            "reactions": list(zip(REACTIONS, REACTION_NAMES, strict=True)),
        },
    )


async def party_invite(request: Request) -> Response:
    """An invite link: the page that joins (a name, a password) and opens the party's watch page.

    Nothing about the party is looked up here: an unknown code and a PRIVATE party's look alike
    until joinParty answers.
    """
    code = str(request.path_params["code"])
    return await render(request, "party_join.html", {"code": code})
