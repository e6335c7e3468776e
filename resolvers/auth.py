"""Accounts: signup, login, tokens."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import or_, select

from models import RevokedToken, User
from models.base import utcnow
from models.db import Database
from realtime.events import Publisher, revocation
from resolvers import lockout
from resolvers.errors import BadInput, Conflict, InvalidToken, Unauthenticated
from resolvers.hashing import DUMMY_HASH, PasswordHashing
from resolvers.lockout import Lockout
from resolvers.passwords import check_new_password

if TYPE_CHECKING:
    from resolvers.ratelimit import RateLimiter

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,30}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
JWT_ALGORITHM = "HS256"
COOKIE_NAME = "Authentication"
#: the `typ` claim of party member tokens (account tokens have none)
MEMBER_TOKEN = "party-member"

DEFAULT_LOCKOUT = Lockout()


@dataclass(frozen=True)
class Claims:
    user_id: str
    jti: str
    expires_at: datetime


def normalise_email(email: str) -> str:
    """One spelling per mailbox: NFKC (fullwidth and other look-alike forms fold), lower case."""
    folded = unicodedata.normalize("NFKC", email)
    try:
        return validate_email(folded, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise BadInput(f"email: {exc}", field="email") from exc


def _validate_signup(email: str, password: str, username: str) -> str:
    if not USERNAME_RE.fullmatch(username):  # `$` alone would let a trailing newline in
        raise BadInput(
            "username: 3 to 30 characters, letters, digits and underscores only", field="username"
        )
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"password: at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise BadInput(f"password: at most {MAX_PASSWORD} characters", field="password")
    check_new_password(password)
    return normalise_email(email)


async def signup(
    *, db: Database, hashing: PasswordHashing, email: str, password: str, username: str
) -> User:
    """Create an account; 409 when the username or email is taken."""
    email = _validate_signup(email, password, username)
    async with db.session() as session:
        taken = (
            await session.exec(
                select(User).where(or_(User.email == email, User.username_key == username.lower()))
            )
        ).first()
        if taken is not None:
            field = "email" if taken.email == email else "username"
            raise Conflict(f"{field} is already taken", field=field)
        password_hash = await hashing.hash(password)
        user = User(
            email=email,
            username=username,
            username_key=username.lower(),
            password_hash=password_hash,
        )
        session.add(user)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise Conflict("username or email is already taken") from exc
        return user


async def check_password(
    *,
    db: Database,
    hashing: PasswordHashing,
    email: str,
    password: str,
    policy: Lockout = DEFAULT_LOCKOUT,
    limiter: RateLimiter | None = None,
) -> User:
    """The user whose email and password these are; InvalidCredentials or AccountLocked otherwise.

    The attempt is reserved (counted) before the password is verified, so at most
    `policy.max_failures` guesses per window are ever verified, however many arrive at once.
    Unknown emails verify against a dummy hash and count the same way (see resolvers.lockout).
    """
    try:
        email = normalise_email(email)
    except BadInput:
        email = ""
    async with db.session() as session:
        user = (await session.exec(select(User).where(User.email == email))).first()
    attempt: int | None
    if user is not None:
        attempt = await lockout.reserve(db=db, user_id=user.id, policy=policy)
    else:
        attempt = await lockout.reserve_unknown(limiter=limiter, email=email, policy=policy)
    ok = await hashing.verify(user.password_hash if user else DUMMY_HASH, password)
    if user is None or not ok:
        raise lockout.failure(attempt, policy)
    await lockout.record_success(db=db, user_id=user.id)
    return user


def issue_token(*, secret: str, user_id: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def _verified(*, secret: str, token: str) -> dict[str, Any]:
    """The payload of a token whose signature, algorithm and expiry hold; InvalidToken else."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["sub", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("token is invalid") from exc
    return payload


def decode_token(*, secret: str, token: str) -> Claims:
    """Verify signature, algorithm and expiry; InvalidToken on anything wrong."""
    payload = _verified(secret=secret, token=token)
    if payload.get("typ") == MEMBER_TOKEN:
        raise InvalidToken("a party member token only works for its own party")
    return _claims(payload)


def _claims(payload: dict[str, Any]) -> Claims:
    if not isinstance(payload["sub"], str) or not isinstance(payload["jti"], str):
        raise InvalidToken("token is invalid")
    try:  # validly signed but absurd (exp=1e20): still just an invalid token
        expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    except (OverflowError, ValueError, OSError, TypeError) as exc:
        raise InvalidToken("token is invalid") from exc
    return Claims(user_id=payload["sub"], jti=payload["jti"], expires_at=expires_at)


@dataclass(frozen=True)
class MemberClaims:
    """A party member token: it stands for one member of one party, and for nothing else."""

    member_id: str
    party_id: str
    jti: str
    expires_at: datetime


def issue_member_token(*, secret: str, party_id: str, member_id: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": member_id,
        "pty": party_id,
        "typ": MEMBER_TOKEN,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def member_claims(*, secret: str, token: str) -> MemberClaims | None:
    """The claims of a member token; None for an account token; InvalidToken for a bad one."""
    payload = _verified(secret=secret, token=token)
    if payload.get("typ") != MEMBER_TOKEN:
        return None
    claims = _claims(payload)
    party = payload.get("pty")
    if not isinstance(party, str):
        raise InvalidToken("token is invalid")
    return MemberClaims(
        member_id=claims.user_id, party_id=party, jti=claims.jti, expires_at=claims.expires_at
    )


@dataclass(frozen=True)
class Caller:
    """Who calls a party operation: an account, a party member token, or nobody."""

    user: User | None = None
    member: MemberClaims | None = None
    #: the token's id and expiry (a socket closes when it is revoked or expires)
    claims: Claims | None = None


async def identify(*, db: Database, secret: str, token: str | None) -> Caller:
    """The caller a token stands for: a member token needs no database; an account does."""
    if token is None:
        return Caller()
    member = member_claims(secret=secret, token=token)
    if member is not None:
        claims = Claims(user_id=member.member_id, jti=member.jti, expires_at=member.expires_at)
        return Caller(member=member, claims=claims)
    session = await authenticate_session(db=db, secret=secret, token=token)
    return Caller(user=session.user, claims=session.claims)


@dataclass(frozen=True)
class Session:
    user: User
    claims: Claims


async def authenticate_session(*, db: Database, secret: str, token: str) -> Session:
    """The user a bearer token stands for, with its claims (a socket closes at its expiry)."""
    claims = decode_token(secret=secret, token=token)
    async with db.session() as session:
        user = await session.get(User, claims.user_id)
        revoked = await session.get(RevokedToken, claims.jti)
    if revoked is not None:
        raise InvalidToken("token has been revoked")
    if user is None:
        raise InvalidToken("token is invalid")
    return Session(user=user, claims=claims)


async def authenticate(*, db: Database, secret: str, token: str) -> User:
    """The user a bearer token stands for; InvalidToken if it is bad, expired or revoked."""
    return (await authenticate_session(db=db, secret=secret, token=token)).user


async def logout(*, db: Database, publisher: Publisher, secret: str, token: str | None) -> None:
    """Revoke the token's jti until it expires (expired revocations are pruned on the way), and
    tell every process, so each socket signed in with it closes (4401)."""
    if token is None:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    await authenticate(db=db, secret=secret, token=token)
    claims = decode_token(secret=secret, token=token)
    prune = delete(RevokedToken).where(RevokedToken.expires_at < utcnow())  # type: ignore[arg-type]
    revoke = insert(RevokedToken).values(jti=claims.jti, expires_at=claims.expires_at)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(prune)
            await conn.execute(revoke)
    except IntegrityError:
        pass  # revoked concurrently by another request: same outcome
    await publisher.publish(revocation(session_id=claims.jti, user_id=claims.user_id))


@dataclass(frozen=True)
class LoginResult:
    access_token: str
    user: User


async def login(
    *,
    db: Database,
    hashing: PasswordHashing,
    secret: str,
    ttl_s: int,
    email: str,
    password: str,
    policy: Lockout = DEFAULT_LOCKOUT,
    limiter: RateLimiter | None = None,
) -> LoginResult:
    """Check credentials (with the lockout) and issue a signed token."""
    if not email or not password:
        raise BadInput("email and password are required")
    user = await check_password(
        db=db, hashing=hashing, email=email, password=password, policy=policy, limiter=limiter
    )
    return LoginResult(
        access_token=issue_token(secret=secret, user_id=user.id, ttl_s=ttl_s), user=user
    )


def token_from(
    *,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    query: Mapping[str, str] | None = None,
) -> str | None:
    """The bearer token a client presented: header, then cookie, then `?token=` (sockets only)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        return credentials.strip() if scheme.lower() == "bearer" else authorization
    if cookies.get(COOKIE_NAME):
        return cookies[COOKIE_NAME]
    if query is not None and query.get("token"):
        return query["token"]
    return None


def session_cookie(token: str, *, ttl_s: int, secure: bool) -> str:
    """The seed's cookie, exactly: `Authentication=<jwt>; HttpOnly; Secure; SameSite=Strict`,
    except that `Secure` is left off where the browser would drop the cookie for it (plain
    HTTP at a LAN address: `resolvers.urls.secure_cookie` decides)."""
    flags = "HttpOnly; Secure" if secure else "HttpOnly"
    return f"{COOKIE_NAME}={token}; {flags}; SameSite=Strict; Path=/; Max-Age={ttl_s}"


async def presented_user(
    *, db: Database, secret: str, headers: Mapping[str, str], cookies: Mapping[str, str]
) -> User | None:
    """Whom a request's credentials name: None without any; InvalidToken for a bad one.

    Every face asks this (REST routes, pages, GraphQL over HTTP) instead of a copy of its own.
    """
    token = token_from(headers=headers, cookies=cookies)
    if token is None:
        return None
    return await authenticate(db=db, secret=secret, token=token)
